"""PyTorch reference backend: `pack_padded_sequence` into nn.RNN/LSTM/GRU. See shared/backend.py."""

from reference_torch.checkpoint import load, save
from reference_torch.models import (
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
from reference_torch.per_example import gradients as per_example_gradients
from reference_torch.per_example import train_step as per_example_step
from reference_torch.train import TrainState, model_of, train_state, train_step

name = "torch"

__all__ = [
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
