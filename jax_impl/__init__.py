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
from jax_impl.per_example import gradients as per_example_gradients
from jax_impl.per_example import train_step as per_example_step
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
    "per_example_gradients",
    "per_example_step",
    "save",
    "to_params",
    "train_state",
    "train_step",
]
