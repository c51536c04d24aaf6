"""JAX/Flax backend: one sequence per masked lax.scan, vmap over the batch. See shared/backend.py.

The package exports `shared.backend.CONTRACT`. `init`, `from_params`, `to_params`, `config_of`,
`save`, `load`, `train_state`, `train_step` and `model_of` serve every model kind (they look the
kind up in shared/kinds); each kind's own functions are in `jax_impl/models/<kind>.py`.
"""

from typing import Any

from jax_impl.checkpoint import load, save
from jax_impl.models import (
    Model,
    SequenceClassifier,
    config_of,
    from_params,
    gradients,
    init,
    logits,
    loss,
    losses,
    restore_state,
    state_arrays,
    to_params,
    train_state,
    train_step,
)
from jax_impl.per_example import gradients as per_example_gradients
from jax_impl.per_example import train_step as per_example_step
from jax_impl.train import COMPILATIONS, TrainState

name = "jax"


def model_of(state: Any) -> Any:
    return state.model


__all__ = [  # shared.backend.CONTRACT and this backend's types (tests/test_contract.py checks it)
    "COMPILATIONS",
    "Model",
    "SequenceClassifier",
    "TrainState",
    "config_of",
    "from_params",
    "gradients",
    "init",
    "load",
    "logits",
    "loss",
    "losses",
    "model_of",
    "name",
    "per_example_gradients",
    "per_example_step",
    "restore_state",
    "save",
    "state_arrays",
    "to_params",
    "train_state",
    "train_step",
]
