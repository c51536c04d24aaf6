"""The reference skip-gram model: batched embedding lookups, scores for the context and K negatives,
word2vec's negative-sampling loss (shared/kinds/skipgram.py). Mirrors jax_impl/models/skipgram.py
name for name.

DyNet's minibatching in the source maps here to: `lookup_batch` -> `nn.Embedding` on a [B] or
[B, 1+K] id tensor; the per-element loss -> `F.logsigmoid` on the [B, 1+K] scores; `sum_batches`
-> `.mean()` over the batch (a mean, so that the learning rate does not scale with B).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import nn

from reference_torch.models.common import DTYPES, default_device, load_checked, seeded
from reference_torch.train import (  # the classifier's train state serves this kind as it is
    TrainState,
    frozen_metrics,
    guarded_update,
    restore_state,
    rng_snapshot,
    state_arrays,
    train_state,
)
from shared.kinds.skipgram import SkipgramBatch, SkipgramConfig
from shared.layout import init_bound

__all__ = ["SkipGram", "TrainState", "from_params", "gradients", "init", "logits", "loss", "losses", "model_of",
           "restore_state", "state_arrays", "train_state", "train_step"]


class SkipGram(nn.Module):
    """`forward(centre[B], context[B], negatives[B, K]) -> scores[B, 1 + K]` (context first)."""

    def __init__(self, cfg: SkipgramConfig) -> None:
        super().__init__()
        self.cfg = cfg
        dtype = DTYPES[cfg.dtype]
        self.in_embed = nn.Embedding(cfg.vocab_size, cfg.embed_dim, dtype=dtype)
        self.out_embed = nn.Embedding(cfg.vocab_size, cfg.embed_dim, dtype=dtype)
        with torch.no_grad():
            for name, table in (("in_embed.weight", self.in_embed.weight), ("out_embed.weight", self.out_embed.weight)):
                bound = init_bound(cfg, name) or 0.0
                if bound:
                    table.uniform_(-bound, bound)
                else:
                    table.zero_()
        self.to(default_device())

    def forward(self, centre: torch.Tensor, context: torch.Tensor, negatives: torch.Tensor
                ) -> Float[torch.Tensor, "batch k1"]:
        v = self.in_embed(centre)  # (B, D)
        u = self.out_embed(torch.cat([context[:, None], negatives], dim=1))  # (B, 1 + K, D)
        return torch.einsum("bkd,bd->bk", u, v)


def pair_losses(scores: torch.Tensor) -> torch.Tensor:
    """-log sigma(context score) - sum_k log sigma(-negative score), per pair."""
    return -F.logsigmoid(scores[:, 0]) - F.logsigmoid(-scores[:, 1:]).sum(dim=1)


def init(cfg: SkipgramConfig, seed: int) -> SkipGram:
    """in_embed uniform on [-0.5/D, 0.5/D], out_embed zeros (word2vec's), seeded."""
    return seeded(SkipGram, cfg, seed)


def from_params(cfg: Any, params: dict[str, np.ndarray]) -> SkipGram:
    return load_checked(SkipGram, cfg, params)


def _device(model: SkipGram) -> torch.device:
    return model.in_embed.weight.device


def _forward(model: SkipGram, batch: SkipgramBatch) -> torch.Tensor:
    d = _device(model)
    return model(*(torch.as_tensor(np.asarray(x), device=d).long() for x in (batch.centre, batch.context,
                                                                              batch.negatives)))


def logits(model: SkipGram, batch: SkipgramBatch) -> Float[np.ndarray, "batch k1"]:
    """The scores u . v_c of the context (column 0) and the negatives."""
    with torch.no_grad():
        return _forward(model, batch).cpu().numpy()


def losses(model: SkipGram, batch: SkipgramBatch) -> Float[np.ndarray, " batch"]:
    with torch.no_grad():
        return pair_losses(_forward(model, batch)).cpu().numpy()


def loss(model: SkipGram, batch: SkipgramBatch) -> float:
    return float(losses(model, batch).mean())


def gradients(model: SkipGram, batch: SkipgramBatch) -> dict[str, np.ndarray]:
    """d(mean loss)/d(parameter), dense, by name."""
    model.zero_grad(set_to_none=True)
    pair_losses(_forward(model, batch)).mean().backward()
    grads = {k: p.grad.detach().cpu().numpy().copy() for k, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return grads


def train_step(state: TrainState, batch: SkipgramBatch) -> tuple[TrainState, dict[str, Any]]:
    """One update. Metrics: `loss` (mean over the batch, before the update), `grad_norm`, `ok`."""
    if state.frozen:
        state.step += 1
        return state, frozen_metrics()
    rng = rng_snapshot(_device(state.model))
    return state, guarded_update(state, pair_losses(_forward(state.model, batch)).mean(), rng)


def model_of(state: TrainState) -> SkipGram:
    return state.model
