"""The torch models, one file per model kind (mirrored by jax_impl/models/): `classifier.py`, `lm.py`.

`init`, `from_params`, `train_state` and `train_step` look the kind up (shared.kinds.Dispatch) and
call that kind's file; the classifier's functions are re-exported here under their historical names.
"""

from __future__ import annotations

from reference_torch.models.classifier import (
    KERNELS,
    SequenceClassifier,
    default_kernel,
    gradients,
    logits,
    loss,
    losses,
)
from reference_torch.models.common import DTYPES, config_of, default_device, to_params
from shared.kinds import Dispatch

_dispatch = Dispatch("reference_torch", config_of)
init, from_params = _dispatch.init, _dispatch.from_params
train_state, train_step = _dispatch.train_state, _dispatch.train_step
state_arrays, restore_state = _dispatch.state_arrays, _dispatch.restore_state


__all__ = [
    "DTYPES",
    "KERNELS",
    "SequenceClassifier",
    "config_of",
    "default_device",
    "default_kernel",
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
