"""Data parallel over processes with torch.distributed (issue 15, item 2): DistributedDataParallel
over a process group that a launcher made (torchrun, or `seqbatch train --procs N`, which runs
`torch.distributed.run`). gloo on a CPU, nccl when the model is on a GPU. The group has a 60 s
timeout: a rank that dies makes the others' next collective fail within it instead of hanging
(and torchrun's agent stops the remaining workers when one exits with an error).

The mirror of jax_impl/parallel.py, which shards the batch over the devices of one program.
"""

from __future__ import annotations

import datetime
import os

import numpy as np
import torch
import torch.distributed as dist

from shared.distributed import World, world_size_from_env
from shared.errors import SeqbatchError

__all__ = ["TIMEOUT_S", "active", "all_reduce_sum", "close_world", "gather_rows", "init_world", "rank", "world",
           "wrap"]

TIMEOUT_S = 60


def init_world() -> World | None:
    """The process group of this run (made once), or None outside a launcher (WORLD_SIZE unset or 1)."""
    size = world_size_from_env()
    if size == 1:
        return None
    if not dist.is_initialized():
        cuda = torch.cuda.is_available() and os.environ.get("SEQBATCH_TORCH_DEVICE", "") != "cpu"
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        try:
            dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(seconds=TIMEOUT_S))
        except (RuntimeError, ValueError) as e:
            raise SeqbatchError(f"torch.distributed could not start ({e}); launch with torchrun or --procs") from e
    return World(dist.get_rank(), dist.get_world_size(), _gather, close_world)


def close_world() -> None:
    """Wait for every rank, then destroy the group. A rank that exits with the group alive can abort
    in gloo's teardown ("terminate called without an active exception") while another still works."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _gather(local: np.ndarray) -> list[np.ndarray]:
    parts: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, np.ascontiguousarray(local))
    return [np.asarray(p) for p in parts]


def active() -> bool:
    """Whether a process group of two or more ranks runs."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world() -> int:
    return dist.get_world_size() if active() else 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def wrap(model: torch.nn.Module) -> torch.nn.Module:
    """`model` inside DistributedDataParallel (which broadcasts rank 0's weights). The caller keeps
    the bare module for weights and checkpoints: no `module.` prefix reaches a file."""
    from torch.nn.parallel import DistributedDataParallel

    device = next(model.parameters()).device
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """The sum over ranks (a copy; autograd does not flow through it)."""
    y = x.detach().clone()
    dist.all_reduce(y, op=dist.ReduceOp.SUM)
    return y


def gather_rows(local: tuple[torch.Tensor, ...], axis: int = 1) -> tuple[np.ndarray, ...]:
    """Every rank's block of rows of each tensor, concatenated in rank order along `axis`: for rows
    that `shared.kinds.lm.shard_rows` dealt out (contiguous blocks, in rank order), the global batch's
    tensors. A collective: every rank calls it."""
    parts: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, [t.detach().cpu().numpy() for t in local])
    return tuple(np.concatenate([np.asarray(p[i]) for p in parts], axis=axis)  # type: ignore[index]
                 for i in range(len(local)))
