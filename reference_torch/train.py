"""Training with torch.optim: SGD with momentum or Adam, mean cross-entropy (class-weighted with
`TrainConfig.class_weights`), global-norm clipping.

Also the run state a resumed run needs beyond the weights (shared/runs.py writes it): the
optimizer's `state_dict()["state"]` as named arrays `optim/<parameter name>/<key>` (Adam: `step`,
`exp_avg`, `exp_avg_sq`; SGD: `momentum_buffer`) and the dropout generator `rng/torch` (plus
`rng/torch_cuda` on a GPU). The hyper-parameters come from the TrainConfig, never from the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from reference_torch import parallel
from reference_torch.models import SequenceClassifier
from shared.batching import Batch
from shared.config import TrainConfig
from shared.errors import SeqbatchError
from shared.guard import step_ok
from shared.host_memory import keep_freed_host_memory
from shared.layout import check_freeze


@dataclass
class TrainState:
    model: SequenceClassifier
    optimizer: torch.optim.Optimizer
    cfg: TrainConfig
    step: int = 0
    frozen: bool = False  # a bad step came with on_nan="stop": later steps do nothing (shared/guard.py)
    ddp: torch.nn.Module | None = None  # data parallel over processes: `model` inside DDP (parallel.py)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    return torch.optim.Adam(model.parameters(), lr=cfg.lr)


def freeze(model: SequenceClassifier, names: tuple[str, ...]) -> None:
    """Parameters `names` get no gradient (the others do): the optimizers skip a parameter without
    one (no step, no state) and clip_grad_norm_ leaves it out of the norm. The optimizer still lists
    every parameter, so that its state's indices keep naming `model.named_parameters()`."""
    if names:
        check_freeze(model.cfg, names)
    for name, p in model.named_parameters():
        p.requires_grad_(name not in names)


def train_state(model: SequenceClassifier, cfg: TrainConfig, *, ddp: bool | None = None) -> TrainState:
    """`ddp`: wrap the model in DistributedDataParallel; None: when a process group of 2 or more
    ranks runs (reference_torch/parallel.py)."""
    if cfg.devices > 1:
        raise SeqbatchError(f"devices={cfg.devices}: the torch backend trains on one device per process "
                            "(multi-device torch is DistributedDataParallel over processes, not built yet)")
    freeze(model, cfg.freeze)
    torch.manual_seed(cfg.seed)  # dropout masks
    if _device(model).type == "cpu":
        keep_freed_host_memory()
    if ddp is None:
        ddp = parallel.active()
    if ddp and cfg.class_weights:
        raise SeqbatchError("class weights with data parallel over processes are not built yet (the weighted "
                            "mean needs the global sum of weights)")
    return TrainState(model, make_optimizer(model, cfg), cfg, ddp=parallel.wrap(model) if ddp else None)


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def rng_snapshot(device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The generators dropout draws from (CPU, and the GPU's when the model is there)."""
    return torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def rng_restore(device: torch.device, snap: tuple[torch.Tensor, torch.Tensor | None]) -> None:
    torch.set_rng_state(snap[0])
    if snap[1] is not None:
        torch.cuda.set_rng_state(snap[1], device)


def guarded_update(state: Any, loss: torch.Tensor, rng: tuple[torch.Tensor, torch.Tensor | None],
                   objective: torch.Tensor | None = None) -> dict[str, Any]:
    """Backward (of `objective`, default `loss`), clip, and apply the update only if the step is good
    (shared/guard.py); a bad step puts the dropout RNG back as it was before the step. Returns the metrics."""
    model, cfg = state.model, state.cfg
    state.optimizer.zero_grad(set_to_none=True)
    (loss if objective is None else objective).backward()
    # clip_grad_norm_ scales by max_norm / (norm + 1e-6) when that is < 1; jax_impl copies it.
    max_norm = cfg.clip_norm if cfg.clip_norm is not None else float("inf")
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    ok = step_ok(float(loss.detach()), float(grad_norm), cfg.max_loss)
    if ok:
        state.optimizer.step()
    else:
        state.optimizer.zero_grad(set_to_none=True)
        rng_restore(_device(model), rng)
        state.frozen = cfg.on_nan == "stop"
    state.step += 1
    return {"loss": loss.detach(), "grad_norm": grad_norm.detach(), "ok": ok}


def frozen_metrics() -> dict[str, Any]:
    nan = torch.tensor(float("nan"))
    return {"loss": nan, "grad_norm": nan, "ok": False}


def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, dict[str, Any]]:
    """One update on one batch. Metrics: `loss` (before the update), `grad_norm` (before
    clipping) and `ok` (False: a bad step, not applied; shared/guard.py)."""
    if state.frozen:
        state.step += 1
        return state, frozen_metrics()
    model = state.model
    model.train()
    device = model.head.weight.device
    rng = rng_snapshot(device)
    out = (state.ddp or model)(torch.as_tensor(batch.tokens, device=device), torch.as_tensor(batch.lengths))
    labels = torch.as_tensor(batch.labels, device=device).long()
    weight = torch.tensor(state.cfg.class_weights, dtype=out.dtype, device=device) if state.cfg.class_weights else None
    loss = F.cross_entropy(out, labels, weight=weight)  # with weights: sum w[y] ce / sum w[y]
    if state.ddp is None:
        return state, guarded_update(state, loss, rng)
    # This rank's share of the global batch's mean; DDP averages the gradients over the ranks, so the
    # objective is scaled by the world size, and the reported loss is the sum of shares (global mean).
    share = loss * (len(batch) / (batch.global_size or len(batch) * parallel.world()))
    return state, guarded_update(state, parallel.all_reduce_sum(share), rng, share * parallel.world())


def model_of(state: TrainState) -> SequenceClassifier:
    return state.model


# ---- the run state beyond the weights (shared/runs.py)


def optimizer_arrays(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, np.ndarray]:
    names = [n for n, _ in model.named_parameters()]
    out: dict[str, np.ndarray] = {}
    for index, entries in optimizer.state_dict()["state"].items():
        for key, value in entries.items():
            if value is not None:
                out[f"optim/{names[index]}/{key}"] = torch.as_tensor(value).detach().cpu().numpy().copy()
    return out


def load_optimizer_arrays(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                          arrays: dict[str, np.ndarray]) -> None:
    params = list(model.named_parameters())
    state: dict[int, dict[str, torch.Tensor]] = {}
    known = set()
    for index, (name, p) in enumerate(params):
        prefix = f"optim/{name}/"
        entries = {k[len(prefix):]: torch.from_numpy(np.array(v)) for k, v in arrays.items() if k.startswith(prefix)}
        known |= {prefix + k for k in entries}
        for key, value in entries.items():
            if tuple(value.shape) != (() if key == "step" else tuple(p.shape)):
                raise SeqbatchError(f"optimizer state {prefix}{key} has shape {tuple(value.shape)}, "
                                    f"the parameter {tuple(p.shape)} (a step count: ())")
        if entries:
            state[index] = entries
    stray = sorted(k for k in arrays if k.startswith("optim/") and k not in known)
    if stray:
        raise SeqbatchError(f"optimizer state has entries for no parameter: {stray[:3]}")
    sd = optimizer.state_dict()
    sd["state"] = state
    optimizer.load_state_dict(sd)


def rng_arrays(device: torch.device) -> dict[str, np.ndarray]:
    cpu, gpu = rng_snapshot(device)
    out = {"rng/torch": cpu.numpy().copy()}
    if gpu is not None:
        out["rng/torch_cuda"] = gpu.cpu().numpy().copy()
    return out


def load_rng_arrays(device: torch.device, arrays: dict[str, np.ndarray]) -> None:
    if "rng/torch" not in arrays:
        raise SeqbatchError("the run state has no rng/torch entry")
    gpu = arrays.get("rng/torch_cuda")
    rng_restore(device, (torch.from_numpy(np.array(arrays["rng/torch"])),
                         None if gpu is None or device.type != "cuda" else torch.from_numpy(np.array(gpu))))


def state_arrays(state: Any) -> dict[str, np.ndarray]:
    """Optimizer state and dropout RNG as named arrays (the weights are saved apart); any kind's
    train state with `model` and `optimizer`."""
    return {**optimizer_arrays(state.model, state.optimizer), **rng_arrays(_device(state.model))}


def restored(state: Any, arrays: dict[str, np.ndarray], step: int) -> Any:
    """A fresh train state of any kind (fields `model`, `optimizer`, `step`) given the saved optimizer
    state, dropout generator and step."""
    load_optimizer_arrays(state.model, state.optimizer, arrays)
    load_rng_arrays(_device(state.model), arrays)
    state.step = step
    return state


def restore_state(model: SequenceClassifier, cfg: TrainConfig, arrays: dict[str, np.ndarray],
                  step: int) -> TrainState:
    """The train state `state_arrays` described, around `model` (its weights already loaded)."""
    return restored(train_state(model, cfg), arrays, step)
