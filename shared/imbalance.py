"""Class imbalance: per-class loss weights, computed once from the training labels.

The weights are a TrainConfig field (`class_weights`, one float per class, () for none), so both
backends read the same numbers and `config.json` records them. The loss with weights is torch's
weighted mean, `sum_i w[y_i] * ce_i / sum_i w[y_i]` over a batch (`F.cross_entropy(weight=w)`);
jax_impl/train.py computes the same sum. The sampler that draws the classes equally often is
`Sampler(kind="uniform")` in shared/batching.py.
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Int
from sklearn.utils.class_weight import compute_class_weight

from shared.errors import SeqbatchError

__all__ = ["CLASS_WEIGHTS", "class_weights"]

# none: every example counts the same; inverse: scikit-learn's "balanced" weights n / (C * n_c), so
# each class carries the same total weight; sqrt: their square roots, halfway in log scale.
CLASS_WEIGHTS: tuple[str, ...] = ("none", "sqrt", "inverse")


def class_weights(labels: Int[np.ndarray, " n"], mode: str, num_classes: int) -> tuple[float, ...]:
    """Per-class loss weights for `mode` (see CLASS_WEIGHTS) from the training labels; () for none.

    A class with no training example gets weight 1.0 (it never enters the loss). The weights are
    rounded to 12 significant digits, so that config.json holds them exactly as the run used them.
    """
    if mode not in CLASS_WEIGHTS:
        raise SeqbatchError(f"class weights must be one of {', '.join(CLASS_WEIGHTS)}, got {mode!r}")
    if mode == "none":
        return ()
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        raise SeqbatchError("class weights need training labels; the training split is empty")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise SeqbatchError(f"labels must be in [0, {num_classes}), got {labels.min()}..{labels.max()}")
    present = np.unique(labels)
    weights = np.ones(num_classes)
    weights[present] = compute_class_weight("balanced", classes=present, y=labels)
    if mode == "sqrt":
        weights = np.sqrt(weights)
    return tuple(float(f"{w:.12g}") for w in weights)
