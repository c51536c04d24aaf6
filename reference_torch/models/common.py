"""What every torch model kind shares: dtypes, the device, the recurrent module, parameter transfer."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from torch import nn

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def default_device() -> torch.device:
    """`SEQBATCH_TORCH_DEVICE` if set, else CUDA when present, else CPU (as JAX picks its default)."""
    name = os.environ.get("SEQBATCH_TORCH_DEVICE")
    return torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))


def rnn_module(cfg: Any) -> nn.RNNBase:
    """torch's multi-layer nn.RNN/LSTM/GRU for a recurrent config of any kind (batch first).

    Its parameters are the `rnn.*` names of shared/layout.py; `dropout` acts between layers.
    """
    rnn_class = {"rnn_tanh": nn.RNN, "rnn_relu": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cfg.cell]
    extra = {"nonlinearity": cfg.cell.removeprefix("rnn_")} if cfg.cell.startswith("rnn_") else {}
    return rnn_class(
        cfg.input_size,
        cfg.hidden_size,
        num_layers=cfg.num_layers,
        batch_first=True,
        bidirectional=cfg.bidirectional,
        dropout=cfg.dropout if cfg.num_layers > 1 else 0.0,
        **extra,
    )


def load_params(model: nn.Module, params: dict[str, np.ndarray]) -> Any:
    """Copy named NumPy arrays (shared layout, already checked) into `model`, in the model's dtype."""
    dtype = next(model.parameters()).dtype
    # np.array copies: arrays from JAX are read-only, and torch warns about sharing them.
    model.load_state_dict({k: torch.as_tensor(np.array(v)).to(dtype) for k, v in params.items()})
    return model


def to_params(model: nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}


def config_of(model: nn.Module) -> Any:
    return model.cfg  # type: ignore[return-value]
