"""JAX/Flax backend: one sequence per masked lax.scan, vmap over the batch. See shared/backend.py."""

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
    to_params,
)
from jax_impl.train import COMPILATIONS, TrainState, model_of, train_state, train_step

name = "jax"

__all__ = [
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
    "save",
    "to_params",
    "train_state",
    "train_step",
]
