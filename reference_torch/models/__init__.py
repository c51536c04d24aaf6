"""The torch models, one file per model kind (mirrored by jax_impl/models/): `classifier.py`, `lm.py`.

`init` and `from_params` look the config's kind up (shared/kinds) and call that kind's file; the
classifier's functions are re-exported here under their historical names.
"""

from __future__ import annotations

from typing import Any

import numpy as np

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
from shared.kinds import backend_module


def init(cfg: Any, seed: int) -> Any:
    """A fresh model of `cfg`'s kind with PyTorch's default initialisation, seeded."""
    return backend_module("reference_torch", cfg).init(cfg, seed)


def from_params(cfg: Any, params: dict[str, np.ndarray]) -> Any:
    return backend_module("reference_torch", cfg).from_params(cfg, params)


__all__ = ["DTYPES", "KERNELS", "SequenceClassifier", "config_of", "default_device", "default_kernel",
           "from_params", "gradients", "init", "logits", "loss", "losses", "to_params"]
