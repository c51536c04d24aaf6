"""The JAX models, one file per model kind (mirrors reference_torch/models/): `classifier.py`, `lm.py`.

`init` and `from_params` look the config's kind up (shared/kinds) and call that kind's file; the
classifier's functions are re-exported here under their historical names.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jax_impl.models.classifier import (
    SequenceClassifier,
    apply_batch,
    batch_losses,
    gradients,
    logits,
    loss,
    losses,
)
from jax_impl.models.common import Model, Params, _flatten, _variables, config_of, enable_dtype, to_params
from shared.kinds import backend_module


def init(cfg: Any, seed: int) -> Any:
    """Fresh parameters of `cfg`'s kind with PyTorch's default distributions (not its random stream), seeded."""
    return backend_module("jax_impl", cfg).init(cfg, seed)


def from_params(cfg: Any, params: dict[str, np.ndarray]) -> Any:
    return backend_module("jax_impl", cfg).from_params(cfg, params)


__all__ = ["Model", "Params", "SequenceClassifier", "_flatten", "_variables", "apply_batch", "batch_losses",
           "config_of", "enable_dtype", "from_params", "gradients", "init", "logits", "loss", "losses",
           "to_params"]
