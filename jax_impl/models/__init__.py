"""The JAX models, one file per model kind (mirrors reference_torch/models/): `classifier.py`, `lm.py`.

`init`, `from_params`, `train_state` and `train_step` look the kind up (shared.kinds.Dispatch) and
call that kind's file; the classifier's functions are re-exported here under their historical names.
"""

from __future__ import annotations

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
from shared.kinds import Dispatch

_dispatch = Dispatch("jax_impl", config_of)
init, from_params = _dispatch.init, _dispatch.from_params
train_state, train_step = _dispatch.train_state, _dispatch.train_step
state_arrays, restore_state = _dispatch.state_arrays, _dispatch.restore_state


__all__ = [
    "Model",
    "Params",
    "SequenceClassifier",
    "_flatten",
    "_variables",
    "apply_batch",
    "batch_losses",
    "config_of",
    "enable_dtype",
    "from_params",
    "gradients",
    "init",
    "logits",
    "loss",
    "losses",
    "restore_state",
    "state_arrays",
    "to_params",
    "train_state",
    "train_step",
]
