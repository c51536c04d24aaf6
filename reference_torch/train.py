"""Training with torch.optim: SGD with momentum or Adam, mean cross-entropy, global-norm clipping."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from reference_torch.models import SequenceClassifier
from shared.batching import Batch
from shared.config import TrainConfig
from shared.host_memory import keep_freed_host_memory


@dataclass
class TrainState:
    model: SequenceClassifier
    optimizer: torch.optim.Optimizer
    cfg: TrainConfig
    step: int = 0


def make_optimizer(model: SequenceClassifier, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    return torch.optim.Adam(model.parameters(), lr=cfg.lr)


def train_state(model: SequenceClassifier, cfg: TrainConfig) -> TrainState:
    torch.manual_seed(cfg.seed)  # dropout masks
    if model.head.weight.device.type == "cpu":
        keep_freed_host_memory()
    return TrainState(model, make_optimizer(model, cfg), cfg)


def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, dict[str, Any]]:
    """One update on one batch. Metrics: `loss` (before the update) and `grad_norm` (before clipping)."""
    model = state.model
    model.train()
    device = model.head.weight.device
    out = model(torch.as_tensor(batch.tokens, device=device), torch.as_tensor(batch.lengths))
    loss = F.cross_entropy(out, torch.as_tensor(batch.labels, device=device).long())
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    # clip_grad_norm_ scales by max_norm / (norm + 1e-6) when that is < 1; jax_impl copies it.
    max_norm = state.cfg.clip_norm if state.cfg.clip_norm is not None else float("inf")
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    state.optimizer.step()
    state.step += 1
    return state, {"loss": loss.detach(), "grad_norm": grad_norm.detach()}


def model_of(state: TrainState) -> SequenceClassifier:
    return state.model
