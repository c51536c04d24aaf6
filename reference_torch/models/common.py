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


def seeded(model_class: type[nn.Module], cfg: Any, seed: int) -> Any:
    """`model_class(cfg)` with PyTorch's default initialisation drawn from `seed`; the global RNG restored."""
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        return model_class(cfg)
    finally:
        torch.random.set_rng_state(gen_state)


def load_checked(model_class: type[nn.Module], cfg: Any, params: dict[str, np.ndarray]) -> Any:
    """`model_class(cfg)` holding named NumPy arrays in the shared layout (checked first), in its dtype."""
    from shared.checkpoint import check_params

    check_params(cfg, params, "parameters")
    model = model_class(cfg)
    dtype = next(model.parameters()).dtype
    # np.array copies: arrays from JAX are read-only, and torch warns about sharing them.
    model.load_state_dict({k: torch.as_tensor(np.array(v)).to(dtype) for k, v in params.items()})
    return model


def to_params(model: nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}


def config_of(model: nn.Module) -> Any:
    return model.cfg  # type: ignore[return-value]
