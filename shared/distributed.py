"""Data-parallel batching (issue 15): the single-process sampler's global batches, dealt to ranks.

A data-parallel run must train the same model as one process on the same global batches. So the
batches come from the one `Sampler` (shared/batching.py) every rank builds with the same seed, and
each global batch of B examples is cut into `world` disjoint shards, one per rank:

- **stratified**: a batch's members are ordered by class (each class in its sampled order) and
  dealt round-robin, so every rank gets each class floor or ceil of (its count in the batch) /
  world: within one example of the global proportion, in every batch;
- **sizes**: with B divisible by `world`, every shard has B / world examples. An epoch's last,
  shorter batch (the `epoch` and `balanced` samplers keep it) is dealt the same way, so shard
  sizes differ by at most one; a last batch with fewer examples than ranks is dropped (a rank
  cannot take part in the gradient all-reduce with nothing), and `dropped` counts them;
- **the global mean**: a rank's loss is its shard's sum divided by the global batch size
  (`loss_scale`), so the sum over ranks (the all-reduce) is the global batch's mean, also when
  the shards are uneven; a mean of per-rank means would weight the short shard's examples more;
- **length bucketing** stays per global batch: the sampler sorts and cuts global batches as in a
  single process, and the shards of one batch share its length range;
- **epochs**: `set_epoch(e)` then iterating gives epoch e's shards (as
  `torch.utils.data.DistributedSampler.set_epoch`); without it, iteration runs on through the
  epochs as the single-process stream does.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from jaxtyping import Int

from shared.batching import Sampler
from shared.errors import SeqbatchError

__all__ = ["ShardedSampler", "World", "check_world", "deal", "loss_scale", "request_host_devices", "shard_of",
           "world_size_from_env"]


@dataclass(frozen=True)
class World:
    """This process's place in a data-parallel run over processes, and the one collective the
    training loop needs (the backend supplies it: reference_torch/parallel.py). Only rank 0 writes."""

    rank: int
    size: int
    gather: Callable[[np.ndarray], list[np.ndarray]]  # every rank's array, in rank order, on every rank
    close: Callable[[], None] = lambda: None  # wait for every rank, then leave the group (before exiting)
    # True (torch DDP): each rank trains on its shard of every global batch (`ShardedSampler`).
    # False (JAX over processes): one program; every rank passes the whole global batch, and the
    # backend places each device's rows (jax_impl/parallel.py).
    shards_batches: bool = True
    devices: int = 1  # devices the batch axis is sharded over (JAX over processes: all processes' devices)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def gather_rows(self, local: np.ndarray, n: int) -> np.ndarray:
        """The rows of an n-row array from each rank's `shard_of` part (rows rank, rank + size, ...)."""
        parts = self.gather(local)
        out = np.empty((n, *local.shape[1:]), local.dtype)
        for r, part in enumerate(parts):
            out[r :: self.size] = part
        return out


def world_size_from_env() -> int:
    """WORLD_SIZE as a launcher (torchrun, `seqbatch train --procs`) sets it; 1 without one."""
    value = os.environ.get("WORLD_SIZE", "1")
    if not value.isdigit() or int(value) < 1:
        raise SeqbatchError(f"WORLD_SIZE={value!r} is not a number of processes")
    return int(value)


def shard_of(n: int, rank: int, size: int) -> np.ndarray:
    """The rows of an n-row split one rank evaluates: rank, rank + size, ..."""
    return np.arange(rank, n, size)


def check_world(world: int, batch_size: int) -> None:
    """A world size the run can use: >= 1, and dividing the global batch size."""
    if world < 1:
        raise SeqbatchError(f"the number of processes or devices must be >= 1, got {world}")
    if batch_size % world:
        raise SeqbatchError(f"--batch-size {batch_size} is not divisible by {world} ranks: every rank takes an "
                            f"equal share of each global batch; give a multiple of {world}")


def deal(index: Int[np.ndarray, " batch"], labels: Int[np.ndarray, " n"], world: int) -> list[np.ndarray]:
    """One global batch's indices cut into `world` shards, stratified by class (see the module)."""
    index = np.asarray(index)
    ordered = index[np.argsort(labels[index], kind="stable")]  # by class, each class in sampled order
    return [ordered[r::world] for r in range(world)]


def loss_scale(shard_size: int, global_size: int) -> float:
    """The factor that turns a shard's mean loss into its share of the global batch's mean."""
    return shard_size / global_size


class ShardedSampler:
    """Rank `rank` of `world`: its shard of each global batch of `sampler` (built identically on
    every rank: same labels, batch size, kind, seed, lengths and bucketing)."""

    def __init__(self, sampler: Sampler, rank: int, world: int) -> None:
        check_world(world, sampler.batch_size)
        if not 0 <= rank < world:
            raise SeqbatchError(f"rank {rank} is not in 0..{world - 1}")
        self.sampler, self.rank, self.world = sampler, rank, world
        self.dropped = 0  # global batches left out because they had fewer examples than ranks
        self._epoch: int | None = None
        self._seed_state = sampler.rng.bit_generator.state

    def set_epoch(self, epoch: int) -> None:
        """Iterate over epoch `epoch` (0-based) only, whatever was iterated before."""
        if epoch < 0:
            raise SeqbatchError(f"epoch must be >= 0, got {epoch}")
        self._epoch = epoch

    def global_batches(self) -> Iterator[np.ndarray]:
        """The single-process stream of global batches (one epoch after `set_epoch`)."""
        if self._epoch is None:
            yield from self.sampler
            return
        self.sampler.rng.bit_generator.state = self._seed_state
        for _ in range(self._epoch):  # the stream is a function of the seed: replay to the epoch
            self.sampler.epoch()
        yield from self.sampler.epoch()

    def __iter__(self) -> Iterator[tuple[np.ndarray, int]]:
        """(this rank's indices, the global batch's size) per global batch."""
        for batch in self.global_batches():
            if len(batch) < self.world:
                self.dropped += 1
                continue
            yield deal(batch, self.sampler.labels, self.world)[self.rank], len(batch)


HOST_DEVICES_FLAG = "--xla_force_host_platform_device_count"


def request_host_devices(n: int) -> None:
    """Ask XLA for `n` CPU devices (JAX's host platform), before JAX starts: XLA reads XLA_FLAGS
    once, when its first backend is made (set later, the flag has no effect). A count already in
    XLA_FLAGS is replaced. The JAX backend then checks that it sees enough devices
    (jax_impl/parallel.py `data_mesh`), which tells a process where JAX had started too early."""
    if n < 1:
        raise SeqbatchError(f"--devices must be >= 1, got {n}")
    if n == 1:
        return
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith(HOST_DEVICES_FLAG)]
    os.environ["XLA_FLAGS"] = " ".join([*flags, f"{HOST_DEVICES_FLAG}={n}"])
