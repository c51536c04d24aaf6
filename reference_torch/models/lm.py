"""The reference language model: embedding or one-hot -> nn.RNN/LSTM/GRU -> dropout -> head at every step.

Its behaviour defines what `jax_impl/models/lm.py` must reproduce; the two files define the same
names. Equal-length windows (a stream) go straight into the multi-layer module with the carried
state; ragged documents go through `pack_padded_sequence` / `pad_packed_sequence`. The carried
state crosses the boundary as NumPy `[layers, B, H]` (h, and c for an LSTM); training keeps it in
the TrainState, detached at each window edge (truncated backpropagation through time).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from reference_torch import parallel
from reference_torch.models.common import DTYPES, default_device, load_checked, rnn_module, seeded
from reference_torch.train import (
    frozen_metrics,
    guarded_update,
    load_optimizer_arrays,
    load_rng_arrays,
    make_optimizer,
    optimizer_arrays,
    rng_arrays,
    rng_snapshot,
)
from shared.config import TrainConfig
from shared.errors import SeqbatchError
from shared.host_memory import keep_freed_host_memory
from shared.kinds.lm import Carry, LMBatch, LMConfig, row_block

__all__ = ["CharLM", "TrainState", "from_params", "gradients", "init", "logits", "loss", "losses", "model_of",
           "restore_state", "state_arrays", "train_state", "train_step"]

TorchCarry = tuple[torch.Tensor, ...]  # (h,) or (h, c), each [layers, B, H]


class CharLM(nn.Module):
    """`forward(inputs[B, T], lengths[B], carry) -> (logits[B, T, V], carry)`; names as in shared/layout.py."""

    def __init__(self, cfg: LMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.embed_dim is not None:
            self.embedding = nn.Embedding(cfg.vocab_size, cfg.embed_dim)
        self.rnn = rnn_module(cfg)
        self.drop = nn.Dropout(cfg.dropout)  # before the head; the rnn drops between its layers
        self.head = nn.Linear(cfg.hidden_size, cfg.vocab_size)
        self.to(device=default_device(), dtype=DTYPES[cfg.dtype])

    def forward(
        self, inputs: Int[torch.Tensor, "batch time"], lengths: Int[torch.Tensor, " batch"], carry: TorchCarry
    ) -> tuple[Float[torch.Tensor, "batch time vocab"], TorchCarry]:
        cfg = self.cfg
        if cfg.embed_dim is not None:
            x = self.embedding(inputs)  # (B, T, E)
        else:
            x = F.one_hot(inputs.long(), cfg.vocab_size).to(self.head.weight.dtype)  # (B, T, V)
        hx = carry if cfg.cell == "lstm" else carry[0]
        time = inputs.shape[1]
        if bool((lengths == time).all()):  # a stream window: nothing to pack
            out, h_n = self.rnn(x, hx)
        else:
            # enforce_sorted=False: torch sorts by length, permutes hx to match and h_n back.
            packed = pack_padded_sequence(x, lengths.cpu().long(), batch_first=True, enforce_sorted=False)
            out_packed, h_n = self.rnn(packed, hx)
            out, _ = pad_packed_sequence(out_packed, batch_first=True, total_length=time)  # zeros past length
        new = tuple(h_n) if cfg.cell == "lstm" else (h_n,)
        return self.head(self.drop(out)), new


def init(cfg: LMConfig, seed: int) -> CharLM:
    """A fresh model with PyTorch's default initialisation, seeded."""
    return seeded(CharLM, cfg, seed)


def from_params(cfg: Any, params: dict[str, np.ndarray]) -> CharLM:
    return load_checked(CharLM, cfg, params)


def _device(model: CharLM) -> torch.device:
    return model.head.weight.device


def _carry_in(model: CharLM, batch: LMBatch, carry: Carry | TorchCarry | None) -> TorchCarry:
    """The starting state: zeros where the batch resets or none is given, else the one given."""
    cfg, b = model.cfg, len(batch)
    like = model.head.weight
    if carry is None or batch.reset:
        return tuple(like.new_zeros(cfg.num_layers, b, cfg.hidden_size) for _ in range(cfg.state_count))
    if carry[0].shape[1] != b:
        raise SeqbatchError(f"carried state is for {carry[0].shape[1]} rows, the batch has {b}")
    return tuple(torch.as_tensor(np.asarray(c) if not isinstance(c, torch.Tensor) else c, device=like.device,
                                 dtype=like.dtype) for c in carry)


def _forward(model: CharLM, batch: LMBatch, carry: Any, runner: torch.nn.Module | None = None
             ) -> tuple[torch.Tensor, TorchCarry]:
    """`runner`: the module to call instead of `model` (its DistributedDataParallel wrapper)."""
    inputs = torch.as_tensor(batch.inputs, device=_device(model))
    return (runner or model)(inputs, torch.as_tensor(batch.lengths), _carry_in(model, batch, carry))


def token_losses(
    out: Float[torch.Tensor, "batch time vocab"], batch: LMBatch
) -> Float[torch.Tensor, "batch time"]:
    """Cross-entropy per position, 0 past each row's length."""
    targets = torch.as_tensor(batch.targets, device=out.device).long()
    ce = F.cross_entropy(out.reshape(-1, out.shape[-1]), targets.reshape(-1), reduction="none").reshape(targets.shape)
    mask = torch.as_tensor(batch.mask, device=out.device)
    return ce * mask


def mean_loss(out: torch.Tensor, batch: LMBatch) -> torch.Tensor:
    """Mean over real positions: sum of token losses / number of real tokens."""
    return token_losses(out, batch).sum() / batch.n_tokens


def _numpy(carry: TorchCarry) -> Carry:
    return tuple(c.detach().cpu().numpy() for c in carry)


def logits(model: CharLM, batch: LMBatch, carry: Carry | None = None
           ) -> tuple[Float[np.ndarray, "batch time vocab"], Carry]:
    """Next-token logits at every step, and the state after each row's last real step."""
    model.eval()
    with torch.no_grad():
        out, new = _forward(model, batch, carry)
    return out.cpu().numpy(), _numpy(new)


def losses(model: CharLM, batch: LMBatch, carry: Carry | None = None
           ) -> tuple[Float[np.ndarray, "batch time"], Carry]:
    """Per-position cross-entropy (0 past each length), and the new state."""
    model.eval()
    with torch.no_grad():
        out, new = _forward(model, batch, carry)
        return token_losses(out, batch).cpu().numpy(), _numpy(new)


def loss(model: CharLM, batch: LMBatch, carry: Carry | None = None) -> float:
    """Mean cross-entropy over the batch's real positions."""
    per_token, _ = losses(model, batch, carry)
    return float(per_token.sum() / batch.n_tokens)


def gradients(model: CharLM, batch: LMBatch, carry: Carry | None = None) -> dict[str, np.ndarray]:
    """d(mean loss)/d(parameter), by PyTorch name, without dropout (train mode for cuDNN's backward)."""
    model.train()
    saved = model.rnn.dropout, model.drop.p
    model.rnn.dropout, model.drop.p = 0.0, 0.0
    try:
        model.zero_grad(set_to_none=True)
        out, _ = _forward(model, batch, carry)
        mean_loss(out, batch).backward()
        grads = {k: p.grad.detach().cpu().numpy().copy() for k, p in model.named_parameters() if p.grad is not None}
    finally:
        model.rnn.dropout, model.drop.p = saved
        model.zero_grad(set_to_none=True)
    return grads


@dataclass
class TrainState:
    model: CharLM
    optimizer: torch.optim.Optimizer
    cfg: TrainConfig
    step: int = 0
    carry: TorchCarry | None = None  # the state the last window left, detached
    frozen: bool = False  # a bad step came with on_nan="stop": later steps do nothing (shared/guard.py)
    ddp: torch.nn.Module | None = None  # data parallel over processes: `model` inside DDP (reference_torch/parallel.py)
    global_carry: Carry | None = None  # under DDP: every rank's rows of `carry`, gathered each step (what a save holds)


def train_state(model: CharLM, cfg: TrainConfig, *, ddp: bool | None = None) -> TrainState:
    """`ddp`: wrap the model in DistributedDataParallel (each rank then trains on its rows of every
    global batch, `shared.kinds.lm.shard_rows`, carrying their state); None: when a process group of
    2 or more ranks runs."""
    torch.manual_seed(cfg.seed)  # dropout masks
    if _device(model).type == "cpu":
        keep_freed_host_memory()  # 40 % of a CPU step went to page faults without it
    if ddp is None:
        ddp = parallel.active()
    return TrainState(model, make_optimizer(model, cfg), cfg, ddp=parallel.wrap(model) if ddp else None)


def train_step(state: TrainState, batch: LMBatch) -> tuple[TrainState, dict[str, Any]]:
    """One update; the state carries over unless `batch.reset`. Metrics: `loss` (mean per real
    position, before the update), `grad_norm` (before clipping) and `ok` (False: a bad step, not
    applied, the carried state left as it was; shared/guard.py)."""
    if state.frozen:
        state.step += 1
        return state, frozen_metrics()
    model = state.model
    model.train()
    rng = rng_snapshot(_device(model))
    out, new = _forward(model, batch, state.carry, state.ddp)
    if state.ddp is None:
        metrics = guarded_update(state, mean_loss(out, batch), rng)
    else:
        # This rank's share of the global batch's mean over real tokens; DDP averages the gradients
        # over the ranks, so the objective is scaled by the world size; the loss reported is the sum of
        # the shares: the global mean, whatever each rank's count of real tokens.
        share = token_losses(out, batch).sum() / (batch.global_tokens or batch.n_tokens * parallel.world())
        metrics = guarded_update(state, parallel.all_reduce_sum(share), rng, share * parallel.world())
    if metrics["ok"]:
        state.carry = tuple(c.detach() for c in new)  # truncated BPTT: no gradient crosses the window edge
        if state.ddp is not None:  # so that rank 0's save holds the state of every row (a small all-gather)
            state.global_carry = parallel.gather_rows(state.carry)
    return state, metrics


def state_arrays(state: TrainState) -> dict[str, np.ndarray]:
    """Optimizer state, dropout RNG and the carried state `carry/<i>` ([layers, B, H]; under DDP, the
    global batch's B rows) as named arrays."""
    if state.ddp is not None and state.global_carry is not None:
        carry = {f"carry/{i}": c for i, c in enumerate(state.global_carry)}
    else:
        local = () if state.carry is None else state.carry
        carry = {f"carry/{i}": c.detach().cpu().numpy() for i, c in enumerate(local)}
    return {**optimizer_arrays(model_of(state), state.optimizer), **rng_arrays(_device(state.model)), **carry}


def restore_state(model: CharLM, cfg: TrainConfig, arrays: dict[str, np.ndarray], step: int) -> TrainState:
    """The train state `state_arrays` described, around `model` (its weights already loaded)."""
    state = train_state(model, cfg)
    load_optimizer_arrays(model, state.optimizer, arrays)
    load_rng_arrays(_device(model), arrays)
    carry = [arrays[k] for k in sorted(k for k in arrays if k.startswith("carry/"))]
    if carry:
        like = model.head.weight
        if state.ddp is not None:  # the saved state is every row's; this rank carries its own block
            state.global_carry = tuple(np.array(c) for c in carry)
            rows = row_block(carry[0].shape[1], parallel.rank(), parallel.world())
            carry = [c[:, rows] for c in carry]
        state.carry = tuple(torch.as_tensor(np.array(c), device=like.device, dtype=like.dtype) for c in carry)
    state.step = step
    return state


def model_of(state: TrainState) -> CharLM:
    return state.model
