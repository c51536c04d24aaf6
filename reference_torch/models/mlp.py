"""The reference MLP (shared/kinds/mlp.py): an `nn.ModuleList` of `nn.Linear`, ReLU between them, mean
cross-entropy. Mirrors jax_impl/models/mlp.py name for name.

The training path is the lesson's: the split as one `TensorDataset`, a `DataLoader` whose
`batch_sampler` yields the index batches shared/tabular.py drew from its seeded generator (so the
JAX port, reading the same batches, sees the same examples in the same order), `for xb, yb in
loader`, one optimizer step per batch.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import nn
from torch.utils.data import DataLoader, Sampler, TensorDataset

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
from shared.kinds.mlp import MLPConfig, TabularBatch
from shared.tabular import TabularSplit

__all__ = ["MLP", "SharedOrder", "TrainState", "from_params", "gradients", "init", "loader", "logits", "loss",
           "losses", "model_of", "restore_state", "state_arrays", "train_state", "train_step"]

# What `loader` yields and `train_step` takes besides a TabularBatch: (features [B, F], labels [B]).
Pair = tuple[Float[torch.Tensor, "batch features"], Int[torch.Tensor, " batch"]]


class MLP(nn.Module):
    """`forward(features[B, F]) -> logits[B, C]`; parameters `layers.<i>.weight|bias` (the last is the head)."""

    def __init__(self, cfg: MLPConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.layers = nn.ModuleList(nn.Linear(fan_in, fan_out) for fan_in, fan_out in itertools.pairwise(cfg.widths))
        self.to(device=default_device(), dtype=DTYPES[cfg.dtype])

    def forward(self, x: Float[torch.Tensor, "batch features"]) -> Float[torch.Tensor, "batch classes"]:
        *hidden, head = self.layers
        for layer in hidden:
            x = F.relu(layer(x))
        return head(x)


class SharedOrder(Sampler[list[int]]):
    """A batch sampler yielding the index batches it is given, in their order: shared/tabular.py's
    seeded shuffle drives the DataLoader (torch's own RandomSampler would draw another order)."""

    def __init__(self, batches: Iterable[Int[np.ndarray, " batch"]]) -> None:
        super().__init__()
        self.batches = batches

    def __iter__(self) -> Iterator[list[int]]:
        for index in self.batches:
            yield np.asarray(index).tolist()


def init(cfg: MLPConfig, seed: int) -> MLP:
    """nn.Linear's default initialisation (uniform on +-1/sqrt(fan_in)), seeded."""
    return seeded(MLP, cfg, seed)


def from_params(cfg: Any, params: dict[str, np.ndarray]) -> MLP:
    return load_checked(MLP, cfg, params)


def _weight(model: MLP) -> torch.Tensor:
    return model.layers[0].weight


def loader(model: MLP, split: TabularSplit, batches: Iterable[Int[np.ndarray, " batch"]]) -> DataLoader:
    """`(features [B, F], labels [B])` per index batch of `batches`, through TensorDataset + DataLoader,
    the tensors on the model's device and in its dtype (converted once, for the whole split)."""
    w = _weight(model)
    data = TensorDataset(torch.as_tensor(np.asarray(split.features), dtype=w.dtype, device=w.device),
                         torch.as_tensor(np.asarray(split.labels), device=w.device).long())
    return DataLoader(data, batch_sampler=SharedOrder(batches))


def _inputs(model: MLP, batch: TabularBatch | Pair) -> Pair:
    """A TabularBatch (NumPy) converted here, at the boundary; a `loader` pair as it is."""
    if not isinstance(batch, TabularBatch):
        features, labels = batch
        return features, labels
    w = _weight(model)
    return (torch.as_tensor(np.asarray(batch.features), dtype=w.dtype, device=w.device),
            torch.as_tensor(np.asarray(batch.labels), device=w.device).long())


def logits(model: MLP, batch: TabularBatch | Pair) -> Float[np.ndarray, "batch classes"]:
    with torch.no_grad():
        return model(_inputs(model, batch)[0]).cpu().numpy()


def losses(model: MLP, batch: TabularBatch | Pair) -> Float[np.ndarray, " batch"]:
    """Per-example cross-entropy."""
    features, labels = _inputs(model, batch)
    with torch.no_grad():
        return F.cross_entropy(model(features), labels, reduction="none").cpu().numpy()


def loss(model: MLP, batch: TabularBatch | Pair) -> float:
    """Mean cross-entropy over the batch."""
    return float(losses(model, batch).mean())


def gradients(model: MLP, batch: TabularBatch | Pair) -> dict[str, np.ndarray]:
    """d(mean cross-entropy)/d(parameter), by name."""
    features, labels = _inputs(model, batch)
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(features), labels).backward()
    grads = {k: p.grad.detach().cpu().numpy().copy() for k, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return grads


def train_step(state: TrainState, batch: TabularBatch | Pair) -> tuple[TrainState, dict[str, Any]]:
    """One update. Metrics: `loss` (mean over the batch, before the update), `grad_norm`, `ok`
    (shared/guard.py), `correct` (examples the pre-update logits classify right)."""
    if state.frozen:
        state.step += 1
        return state, {**frozen_metrics(), "correct": torch.tensor(0)}
    model = state.model
    features, labels = _inputs(model, batch)
    rng = rng_snapshot(_weight(model).device)
    out = model(features)
    correct = (out.detach().argmax(dim=1) == labels).sum()
    metrics = guarded_update(state, F.cross_entropy(out, labels), rng)
    return state, {**metrics, "correct": correct}


def model_of(state: TrainState) -> MLP:
    return state.model
