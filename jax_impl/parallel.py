"""Data parallel in one program (issue 15, item 3): a `Mesh` over the devices with the batch axis
sharded (`NamedSharding`), parameters and optimizer state replicated, and the same jitted train
step, which XLA partitions (the gradient all-reduce is its own). The loss is the mean over the
global batch, because the program still sees the whole batch.

On a CPU, the devices are host devices made by `XLA_FLAGS=--xla_force_host_platform_device_count=N`
(`seqbatch train --devices N` sets it before JAX starts: shared/distributed.py).

Over processes (`seqbatch train --backend jax --procs N`, or one command per process on one node or
several): `jax.distributed.initialize` joins the processes (the coordinator at
`JAX_COORDINATOR_ADDRESS`, WORLD_SIZE processes, this one RANK; CPU collectives through gloo), and
the mesh spans every process's devices. It is still one program: every process builds the same
global batch from the same seeded sampler and hands its devices their rows of it
(`jax.make_array_from_callback`), so the loss is the global mean, uneven last batches included.
The mirror of reference_torch/parallel.py (DistributedDataParallel, one shard per rank).
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from shared.distributed import World, world_size_from_env
from shared.errors import SeqbatchError

__all__ = ["TIMEOUT_S", "close_world", "data_mesh", "init_world", "local_copy", "replicate", "replicate_global",
           "shard_batch"]

AXIS = "batch"
TIMEOUT_S = 60  # joining, and noticing a process that stopped sending heartbeats (half of it)


def init_world() -> World | None:
    """Join the processes a launcher started (WORLD_SIZE > 1; RANK; JAX_COORDINATOR_ADDRESS), once,
    before JAX makes its backends; None outside a launcher."""
    size = world_size_from_env()
    if size == 1:
        return None
    if not jax.distributed.is_initialized():
        address = os.environ.get("JAX_COORDINATOR_ADDRESS")
        rank = os.environ.get("RANK", "")
        if not address or not rank.isdigit() or int(rank) >= size:
            raise SeqbatchError(f"a JAX run over {size} processes needs JAX_COORDINATOR_ADDRESS=host:port and "
                                f"RANK in 0..{size - 1} (got {address!r}, {rank!r}); or use --procs")
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        try:
            jax.distributed.initialize(address, num_processes=size, process_id=int(rank),
                                       initialization_timeout=TIMEOUT_S, heartbeat_timeout_seconds=TIMEOUT_S // 2,
                                       shutdown_timeout_seconds=TIMEOUT_S)
        except (RuntimeError, ValueError) as e:
            raise SeqbatchError(f"jax.distributed could not start ({e})") from e
        # What a process computes alone (initial weights, evaluation) stays on its own device.
        jax.config.update("jax_default_device", jax.local_devices()[0])
    return World(jax.process_index(), jax.process_count(), _gather, close_world, shards_batches=False,
                 devices=jax.device_count())


def close_world() -> None:
    if jax.distributed.is_initialized():
        jax.distributed.shutdown()


def _gather(local: np.ndarray) -> list[np.ndarray]:
    """Every process's array (lengths may differ by a row) in process order, on every process."""
    from jax.experimental import multihost_utils

    sizes = np.asarray(multihost_utils.process_allgather(np.array([len(local)], np.int32))).reshape(-1)
    padded = np.zeros((int(sizes.max()), *local.shape[1:]), local.dtype)
    padded[: len(local)] = local
    parts = np.asarray(multihost_utils.process_allgather(padded))
    return [parts[r][: int(n)] for r, n in enumerate(sizes)]


@lru_cache(maxsize=8)
def data_mesh(n: int) -> Mesh:
    """A one-axis mesh over the first `n` devices of the default backend (every process's, in a
    run over processes)."""
    devices = jax.devices()
    cores = os.cpu_count() or 1
    if jax.default_backend() == "cpu" and min(n, jax.local_device_count()) > cores:
        raise SeqbatchError(f"--devices {n}: JAX's host devices share this machine's {cores} CPU cores; more "
                            f"devices than cores only add synchronisation (give at most {cores})")
    if n > len(devices):
        raise SeqbatchError(f"--devices {n}: JAX sees {len(devices)} {jax.default_backend()} device(s) "
                            f"({'XLA_FLAGS was read before --devices could set it; ' if n > 1 else ''}"
                            f"on a CPU, start a fresh process with --devices {n})")
    return Mesh(np.array(devices[:n]), (AXIS,))


def replicate(mesh: Mesh, tree: Any) -> Any:
    """Every leaf on every device of the mesh. Over processes, each process holds the same values (the
    same seed made them) and places its own devices' copies."""
    sharding = NamedSharding(mesh, PartitionSpec())
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)

    def one(x: Any) -> Any:
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):  # a typed key: its raw data, re-wrapped
            return jax.random.wrap_key_data(one(jax.random.key_data(x)), impl=jax.random.key_impl(x))
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])

    return jax.tree.map(one, tree)


def replicate_global(mesh: Mesh, tree: Any) -> Any:
    """Arrays already on the mesh (sharded over processes), gathered whole onto every device: every
    process must call it (a collective)."""
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def shard_batch(mesh: Mesh, *arrays: Any, axis: int = 0) -> tuple[Any, ...]:
    """Arrays split along their batch axis (`axis`: 0, or 1 for a carried state [layers, B, H]) over
    the mesh; a batch that does not divide evenly (an epoch's last, shorter one) is replicated instead
    and computed whole on each device. Each process passes the whole global batch and places only
    its own devices' rows."""
    n = mesh.devices.size
    even = all(a.shape[axis] % n == 0 for a in arrays)
    spec = PartitionSpec(*([None] * axis), AXIS) if even else PartitionSpec()
    sharding = NamedSharding(mesh, spec)

    def one(a: Any) -> Any:
        # A state the previous step left on the mesh moves device to device (if at all); a global
        # array of several processes cannot come to the host whole.
        if isinstance(a, jax.Array) and (jax.process_count() == 1 or not a.is_fully_addressable):
            return jax.device_put(a, sharding)
        host = np.asarray(a)
        return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])

    return tuple(one(a) for a in arrays)


def local_copy(tree: Any) -> Any:
    """Replicated arrays of a mesh that spans processes, as this process's own single-device copies
    (for computations one process runs alone: evaluation, prediction); other trees unchanged."""
    def one(x: Any) -> Any:
        return x.addressable_data(0) if isinstance(x, jax.Array) and not x.is_fully_addressable else x

    return jax.tree.map(one, tree)
