"""The reference model: embedding or one-hot -> nn.RNN/LSTM/GRU over a packed batch -> linear head.

Its behaviour defines what `jax_impl/models/classifier.py` must reproduce; the two files define the same names.

Two kernels compute the same function from the same `nn.RNN|LSTM|GRU` parameters:

- `packed` (the reference, default): `pack_padded_sequence` into the multi-layer module.
- `padded`: per layer and direction, one padded single-layer call; the reverse direction reads each
  sequence reversed within its own length (padding stays behind the real tokens), so no direction
  ever reads padding before a real token, and the final state is gathered at position length-1.
  On a CPU, PyTorch's packed backward slices the precomputed input projection once per time step
  and each slice's backward fills a zero tensor of the whole packed batch: O(T^2 * B) work
  (pytorch/pytorch#149194). The padded kernel's backward is linear in T; on IMDB-length
  reviews it is many times faster (see README). Choose it with `SEQBATCH_TORCH_KERNEL=padded` or
  `seqbatch train --torch-kernel padded`.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from reference_torch.models.common import DTYPES, default_device, load_checked, rnn_module, seeded
from shared.backend import TORCH_KERNEL_ENV
from shared.batching import Batch
from shared.config import ModelConfig
from shared.errors import SeqbatchError

__all__ = ["KERNELS", "SequenceClassifier", "default_kernel", "from_params", "gradients", "init", "logits", "loss",
           "losses", "model_of", "restore_state", "state_arrays", "train_state",
           "train_step"]

KERNELS = ("packed", "padded")
_VF_RNN = {"rnn_tanh": torch._VF.rnn_tanh, "rnn_relu": torch._VF.rnn_relu, "gru": torch._VF.gru,
           "lstm": torch._VF.lstm}


def default_kernel() -> str:
    """`SEQBATCH_TORCH_KERNEL` if set (packed or padded), else packed."""
    name = os.environ.get(TORCH_KERNEL_ENV) or "packed"
    if name not in KERNELS:
        raise SeqbatchError(f"{TORCH_KERNEL_ENV}={name!r}: choose {' or '.join(KERNELS)}")
    return name


class SequenceClassifier(nn.Module):
    """`forward(tokens[B, T], lengths[B]) -> logits[B, C]`; parameters named as in shared/layout.py."""

    def __init__(self, cfg: ModelConfig, kernel: str | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.kernel = kernel or default_kernel()
        if self.kernel not in KERNELS:
            raise SeqbatchError(f"unknown torch kernel {self.kernel!r}; choose {' or '.join(KERNELS)}")
        if cfg.embed_dim is not None:
            self.embedding = nn.Embedding(cfg.vocab_size, cfg.embed_dim)
        self.rnn = rnn_module(cfg)
        self.head = nn.Linear(cfg.feature_size, cfg.num_classes)
        self.to(device=default_device(), dtype=DTYPES[cfg.dtype])

    def forward(
        self, tokens: Int[torch.Tensor, "batch time"], lengths: Int[torch.Tensor, " batch"]
    ) -> Float[torch.Tensor, "batch classes"]:
        cfg = self.cfg
        if cfg.embed_dim is not None:
            x = self.embedding(tokens)  # (B, T, E)
        else:
            x = F.one_hot(tokens.long(), cfg.vocab_size).to(self.head.weight.dtype)  # (B, T, V)
        if self.kernel == "padded":
            last = self._padded_last_states(x, lengths)
        else:
            # enforce_sorted=False: torch sorts by length inside and returns h_n in the batch's order.
            packed = pack_padded_sequence(x, lengths.cpu().long(), batch_first=True, enforce_sorted=False)
            _, h_n = self.rnn(packed)
            if cfg.cell == "lstm":
                h_n = h_n[0]  # (h_n, c_n): the head reads h
            # h_n: (layers * directions, B, H); the last layer's directions, concatenated fwd|bwd.
            last = h_n[-cfg.directions :]  # (directions, B, H)
        features = last.transpose(0, 1).reshape(tokens.shape[0], cfg.feature_size)  # (B, D)
        return self.head(features)

    def _padded_last_states(
        self, x: Float[torch.Tensor, "batch time feature"], lengths: Int[torch.Tensor, " batch"]
    ) -> Float[torch.Tensor, "directions batch hidden"]:
        """The last layer's final states, from padded single-layer calls (the `padded` kernel)."""
        cfg, rnn = self.cfg, self.rnn
        batch, time = x.shape[:2]
        lens = lengths.to(x.device).long()
        steps = torch.arange(time, device=x.device)
        # Reverse each row within its length; positions past it map to themselves. An involution.
        flip = torch.where(steps < lens[:, None], lens[:, None] - 1 - steps, steps)  # (B, T)
        rows, last_step = torch.arange(batch, device=x.device), (lens - 1).clamp(min=0)
        fn = _VF_RNN[cfg.cell]
        inputs, finals = x, []
        for layer in range(cfg.num_layers):
            outputs, finals = [], []
            for direction in range(cfg.directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                weights = [getattr(rnn, f"{kind}{suffix}") for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
                seq = inputs if direction == 0 else _take_steps(inputs, flip)
                h0 = seq.new_zeros(1, batch, cfg.hidden_size)
                hx: torch.Tensor | tuple[torch.Tensor, torch.Tensor] = (h0, h0) if cfg.cell == "lstm" else h0
                # (input, hx, weights, has_biases, layers, dropout, train, bidirectional, batch_first)
                out = fn(seq, hx, weights, True, 1, 0.0, self.training, False, True)[0]  # (B, T, H)
                finals.append(out[rows, last_step])  # the state after the last real token
                outputs.append(out if direction == 0 else _take_steps(out, flip))
            inputs = torch.cat(outputs, dim=-1)
            if layer < cfg.num_layers - 1 and rnn.dropout > 0:
                inputs = F.dropout(inputs, rnn.dropout, training=self.training)
        return torch.stack(finals)


def _take_steps(x: Float[torch.Tensor, "batch time feature"], index: Int[torch.Tensor, "batch time"]
                ) -> Float[torch.Tensor, "batch time feature"]:
    """x[b, index[b, t]] for every b, t."""
    return x.gather(1, index[:, :, None].expand(-1, -1, x.shape[2]))


def init(cfg: ModelConfig, seed: int) -> SequenceClassifier:
    """A fresh model with PyTorch's default initialisation, seeded."""
    return seeded(SequenceClassifier, cfg, seed)


def from_params(cfg: Any, params: dict[str, np.ndarray]) -> SequenceClassifier:
    return load_checked(SequenceClassifier, cfg, params)


def _inputs(model: SequenceClassifier, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    device = model.head.weight.device
    return torch.as_tensor(batch.tokens, device=device), torch.as_tensor(batch.lengths)


def logits(model: SequenceClassifier, batch: Batch) -> Float[np.ndarray, "batch classes"]:
    model.eval()
    with torch.no_grad():
        return model(*_inputs(model, batch)).cpu().numpy()


def losses(model: SequenceClassifier, batch: Batch) -> Float[np.ndarray, " batch"]:
    """Per-example cross-entropy."""
    model.eval()
    with torch.no_grad():
        out = model(*_inputs(model, batch))
        target = torch.as_tensor(batch.labels, device=out.device).long()
        return F.cross_entropy(out, target, reduction="none").cpu().numpy()


def loss(model: SequenceClassifier, batch: Batch) -> float:
    """Mean cross-entropy over the batch."""
    return float(losses(model, batch).mean())


def gradients(model: SequenceClassifier, batch: Batch) -> dict[str, np.ndarray]:
    """d(mean cross-entropy)/d(parameter), by PyTorch name, without dropout.

    Train mode with dropout set to 0, not eval mode: cuDNN's RNN backward refuses eval mode.
    """
    model.train()
    saved, model.rnn.dropout = model.rnn.dropout, 0.0
    try:
        model.zero_grad(set_to_none=True)
        out = model(*_inputs(model, batch))
        F.cross_entropy(out, torch.as_tensor(batch.labels, device=out.device).long()).backward()
        grads = {k: p.grad.detach().cpu().numpy().copy() for k, p in model.named_parameters() if p.grad is not None}
    finally:
        model.rnn.dropout = saved
        model.zero_grad(set_to_none=True)
    return grads


def train_state(model: Any, cfg: Any, **kw: Any) -> Any:
    """The classifier trains in reference_torch/train.py (imported here lazily: it imports this file)."""
    from reference_torch import train

    return train.train_state(model, cfg, **kw)


def train_step(state: Any, batch: Batch) -> Any:
    from reference_torch import train

    return train.train_step(state, batch)


def state_arrays(state: Any) -> dict[str, np.ndarray]:
    """Optimizer state and dropout RNG as named arrays (reference_torch/train.py)."""
    from reference_torch import train

    return train.state_arrays(state)


def restore_state(model: Any, cfg: Any, arrays: dict[str, np.ndarray], step: int) -> Any:
    from reference_torch import train

    return train.restore_state(model, cfg, arrays, step)


def model_of(state: Any) -> Any:
    return state.model
