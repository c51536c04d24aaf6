"""The per-example baseline: the seed tutorial's way of training, one sequence at a time.

Every example of a batch runs alone and unpadded through the reference model (a batch of one),
its gradient accumulates in `.grad`, and one optimizer update is made from the mean, so a step
here is the same update as `reference_torch.train.train_step` on the same batch, only B forward
and backward passes slower. Mirrors jax_impl/per_example.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from reference_torch.models import SequenceClassifier
from reference_torch.train import TrainState
from shared.batching import Batch


def _accumulate(model: SequenceClassifier, batch: Batch) -> torch.Tensor:
    """Run each example alone, summing its gradient into `.grad`; returns the summed loss."""
    device = model.head.weight.device
    loss_sum = torch.zeros((), dtype=model.head.weight.dtype, device=device)
    for i in range(len(batch)):
        n = int(batch.lengths[i])
        tokens = torch.as_tensor(batch.tokens[i : i + 1, :n], device=device)  # (1, n): no padding
        out = model(tokens, torch.as_tensor(batch.lengths[i : i + 1]))
        loss = F.cross_entropy(out, torch.as_tensor(batch.labels[i : i + 1], device=device).long())
        loss.backward()  # adds into .grad: the seed tutorial's accumulation
        loss_sum += loss.detach()
    return loss_sum


def _mean_of_sums(model: SequenceClassifier, n: int) -> None:
    for p in model.parameters():
        if p.grad is not None:
            p.grad /= n


def gradients(model: SequenceClassifier, batch: Batch) -> dict[str, np.ndarray]:
    """d(mean cross-entropy)/d(parameter) as the mean of per-example gradients, in eval mode."""
    model.eval()
    model.zero_grad(set_to_none=True)
    _accumulate(model, batch)
    _mean_of_sums(model, len(batch))
    grads = {k: p.grad.detach().cpu().numpy().copy() for k, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return grads


def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, dict[str, Any]]:
    """One optimizer update from B per-example gradients; the same update as `train.train_step`.

    Metrics: `loss` (mean, before the update) and `grad_norm` (before clipping).
    """
    model = state.model
    model.train()
    state.optimizer.zero_grad(set_to_none=True)
    loss_sum = _accumulate(model, batch)
    _mean_of_sums(model, len(batch))
    max_norm = state.cfg.clip_norm if state.cfg.clip_norm is not None else float("inf")
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    state.optimizer.step()
    state.step += 1
    return state, {"loss": loss_sum / len(batch), "grad_norm": grad_norm.detach()}


def compilations() -> int:
    """Eager PyTorch compiles nothing; the same question as jax_impl.per_example.compilations."""
    return 0
