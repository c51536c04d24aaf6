"""Data parallel in one program (issue 15, item 3): a `Mesh` over the devices with the batch axis
sharded (`NamedSharding`), parameters and optimizer state replicated, and the same jitted train
step, which XLA partitions (the gradient all-reduce is its own). The loss is the mean over the
global batch, because the program still sees the whole batch.

On a CPU, the devices are host devices made by `XLA_FLAGS=--xla_force_host_platform_device_count=N`
(`seqbatch train --devices N` sets it before JAX starts: shared/distributed.py).
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from shared.errors import SeqbatchError

__all__ = ["data_mesh", "replicate", "shard_batch"]

AXIS = "batch"


@lru_cache(maxsize=8)
def data_mesh(n: int) -> Mesh:
    """A one-axis mesh over the first `n` devices of the default backend."""
    devices = jax.devices()
    cores = os.cpu_count() or 1
    if jax.default_backend() == "cpu" and n > cores:
        raise SeqbatchError(f"--devices {n}: JAX's host devices share this machine's {cores} CPU cores; more "
                            f"devices than cores only add synchronisation (give at most {cores})")
    if n > len(devices):
        raise SeqbatchError(f"--devices {n}: JAX sees {len(devices)} {jax.default_backend()} device(s) "
                            f"({'XLA_FLAGS was read before --devices could set it; ' if n > 1 else ''}"
                            f"on a CPU, start a fresh process with --devices {n})")
    return Mesh(np.array(devices[:n]), (AXIS,))


def replicate(mesh: Mesh, tree: Any) -> Any:
    """Every leaf on every device of the mesh."""
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def shard_batch(mesh: Mesh, *arrays: np.ndarray) -> tuple[Any, ...]:
    """Arrays split along their first (batch) axis over the mesh; a batch that does not divide
    evenly (an epoch's last, shorter one) is replicated instead and computed whole on each device."""
    n = mesh.devices.size
    spec = PartitionSpec(AXIS) if all(len(a) % n == 0 for a in arrays) else PartitionSpec()
    return tuple(jax.device_put(a, NamedSharding(mesh, spec)) for a in arrays)
