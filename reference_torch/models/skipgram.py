"""The reference skip-gram model: batched embedding lookups, scores for the context and K negatives,
word2vec's negative-sampling loss (shared/kinds/skipgram.py). Mirrors jax_impl/models/skipgram.py
name for name.

DyNet's minibatching in the source maps here to: `lookup_batch` -> `nn.Embedding` on a [B] or
[B, 1+K] id tensor; the per-element loss -> `F.logsigmoid` on the [B, 1+K] scores; `sum_batches`
-> `.mean()` over the batch (a mean, so that the learning rate does not scale with B).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
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
from shared.guard import step_ok
from shared.kinds.skipgram import SkipgramBatch, SkipgramConfig
from shared.layout import init_bound

__all__ = ["SkipGram", "TrainState", "from_params", "gradients", "host_metrics", "init", "logits", "loss", "losses",
           "model_of", "restore_state", "sparse_step", "sparse_steps", "state_arrays", "train_state", "train_step",
           "training_threads"]


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
        return scores(u, v)


def scores(u: Float[torch.Tensor, "batch k1 dim"], v: Float[torch.Tensor, "batch dim"]
           ) -> Float[torch.Tensor, "batch k1"]:
    """u . v per row: a broadcast product and a sum, 3x faster on a CPU than bmm/einsum for these shapes."""
    return (u * v[:, None, :]).sum(-1)


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


def sparse_step(state: TrainState, batch: SkipgramBatch, lr: float) -> tuple[TrainState, dict[str, Any]]:
    """word2vec's update: plain SGD at rate `lr` on each pair's loss, applied to the rows the batch
    touches only (`scatter_add_`, so a row met twice gets both updates), i.e. `lr * B` times the mean
    loss's gradient, computed in closed form for the gathered rows (3x faster than autograd here).
    Metrics: `loss` (mean, before the update), `grad_norm` (of the per-pair row gradients,
    before rows met twice are summed), `ok` (shared/guard.py: a bad step is not applied)."""
    if state.frozen:
        state.step += 1
        return state, frozen_metrics()
    model = state.model
    w_in, w_out = model.in_embed.weight, model.out_embed.weight
    d = w_in.device
    centre = torch.as_tensor(np.asarray(batch.centre), device=d).long()
    rows = torch.as_tensor(np.concatenate([np.asarray(batch.context)[:, None], np.asarray(batch.negatives)], 1),
                           device=d).long()
    with torch.no_grad():
        v = F.embedding(centre, w_in)  # (B, D)
        u = F.embedding(rows, w_out)  # (B, 1 + K, D)
        s = scores(u, v)
        per_pair = pair_losses(s)
        # d(pair loss)/d(score): sigma(s) - 1 for the context, sigma(s) for a negative (the closed
        # form of autograd's; tests/parity/test_parity_skipgram.py checks the update against dense SGD).
        g = torch.sigmoid(s)
        g[:, 0] -= 1
        grad_v = torch.bmm(g[:, None, :], u)[:, 0]  # (B, D): sum_k g_k u_k
        loss = per_pair.mean()
        # |grad_u|^2 = sum_b |v_b|^2 sum_k g_bk^2, without building grad_u unscaled
        grad_norm = torch.sqrt(grad_v.square().sum() + (g.square().sum(1) * v.square().sum(1)).sum()) / len(centre)
        ok = step_ok(float(loss), float(grad_norm), state.cfg.max_loss)
        if ok:  # scatter_add_, not index_add_: 4x faster on a CPU for rows that repeat (frequent words)
            dim = grad_v.shape[-1]
            step_u = (g * -lr)[:, :, None] * v[:, None, :]  # (B, 1 + K, D): -lr * grad_u in one pass
            w_in.scatter_add_(0, centre[:, None].expand(-1, dim), grad_v.mul_(-lr))
            w_out.scatter_add_(0, rows.reshape(-1, 1).expand(-1, dim), step_u.reshape(-1, dim))
        else:
            state.frozen = state.cfg.on_nan == "stop"
    state.step += 1
    return state, {"loss": loss, "grad_norm": grad_norm, "ok": ok}


def sparse_steps(state: TrainState, batches: Sequence[SkipgramBatch], lrs: Sequence[float]
                 ) -> tuple[TrainState, list[dict[str, Any]]]:
    """`sparse_step` on each batch in turn (the JAX port runs them in one jitted scan)."""
    metrics = []
    for batch, lr in zip(batches, lrs, strict=True):
        state, m = sparse_step(state, batch, lr)
        metrics.append(m)
    return state, metrics


def host_metrics(pending: list[dict[str, Any]]) -> list[dict[str, float]]:
    """Many steps' metrics as Python floats (on a CPU they are there already)."""
    return [{k: float(v) for k, v in m.items()} for m in pending]


@contextlib.contextmanager
def training_threads() -> Iterator[Callable[[bool], None]]:
    """Yields `share(producing)`, called before each group of steps: one intra-op thread while the
    batch generator (shared/skipgram_training.py) is at work on a core, torch's own number when it
    waits. Two OpenMP threads sharing a core with the generator stall at every barrier (measured on
    the 2-core machine: 190,000-360,000 words/s from one run to the next), one thread throughout
    leaves a core idle most of the time (the generator makes batches ~8x faster than a step uses
    them); switching costs nothing measurable and the steps' results do not depend on the number of
    threads (tests/reference_torch/test_skipgram_threads.py)."""
    before = torch.get_num_threads()

    def share(producing: bool) -> None:
        torch.set_num_threads(1 if producing else before)

    try:
        yield share
    finally:
        torch.set_num_threads(before)


def model_of(state: TrainState) -> SkipGram:
    return state.model
