"""PyTorch reference backend: `pack_padded_sequence` into nn.RNN/LSTM/GRU. See shared/backend.py.

The package exports `shared.backend.CONTRACT`. `init`, `from_params`, `to_params`, `config_of`,
`save`, `load`, `train_state`, `train_step` and `model_of` serve every model kind (they look the
kind up in shared/kinds); each kind's own functions are in `reference_torch/models/<kind>.py`.
"""

from typing import Any

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
    restore_state,
    state_arrays,
    to_params,
    train_state,
    train_step,
)
from reference_torch.per_example import gradients as per_example_gradients
from reference_torch.per_example import train_step as per_example_step
from reference_torch.train import TrainState

name = "torch"


def model_of(state: Any) -> Any:
    return state.model


__all__ = [  # shared.backend.CONTRACT and this backend's types (tests/test_contract.py checks it)
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
