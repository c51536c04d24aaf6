"""`seqbatch train --procs N`: data parallel over N processes (issue 15). The command relaunches
itself under `torch.distributed.run` (torchrun, standalone on this machine), which starts N workers
with RANK / WORLD_SIZE / MASTER_ADDR set; a worker (or a process of a torchrun command the user
wrote, on one node or several) sees WORLD_SIZE > 1 and joins the process group. Only rank 0 opens the
run folder, logs and shows progress. Built for the torch backend and the classifier tasks (names,
imdb); JAX data parallel runs in one program over devices (`--devices`).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from typing import Any

from shared.distributed import World, world_size_from_env
from shared.errors import SeqbatchError

__all__ = ["add_procs_arg", "check_procs", "launch", "worker_world"]


def add_procs_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--procs", type=int, default=None,
                   help="torch, names and imdb: data parallel over N processes on this machine "
                        "(DistributedDataParallel, gloo on a CPU, nccl on GPUs, launched through "
                        "torch.distributed.run); each takes --batch-size / N of every global batch (default 1)")


def check_procs(a: argparse.Namespace, classifier: bool) -> None:
    """--procs (or a launcher's WORLD_SIZE) with the other flags: what a data-parallel run supports."""
    n = a.procs if a.procs is not None else world_size_from_env()
    if n < 1:
        raise SeqbatchError(f"--procs must be >= 1, got {n}")
    if n == 1:
        return
    why = ("the jax backend" if a.backend != "torch" else "--task " + a.task if not classifier
           else "--resume" if a.resume is not None else "--class-weights" if a.class_weights not in (None, "none")
           else "--devices" if (a.devices or 1) > 1 else None)
    if why is not None:
        raise SeqbatchError(f"data parallel over {n} processes is built for the torch backend's names and imdb "
                            f"training, without --resume, --class-weights or --devices; not with {why}")
    if a.batch_size is not None and a.batch_size % n:
        raise SeqbatchError(f"--batch-size {a.batch_size} is not divisible by {n} processes: each takes an equal "
                            f"share of every global batch; give a multiple of {n}")


def launch(a: argparse.Namespace) -> int:
    """Run this same command under torch.distributed.run with N workers; its exit status, or 2 with
    one line when a worker failed (the workers printed their own errors above)."""
    argv = strip_procs(list(a.argv))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={a.procs}",
           "-m", "shared.cli", *argv]
    code = subprocess.run(cmd, check=False).returncode
    if code != 0:
        print(f"seqbatch: error: the data-parallel run over {a.procs} processes failed (torch.distributed.run "
              f"exit {code}); each worker's own message is above", file=sys.stderr)
        return 2
    return 0


def strip_procs(argv: list[str]) -> list[str]:
    """The command line without its --procs N (or --procs=N)."""
    out: list[str] = []
    skip = False
    for item in argv:
        if skip:
            skip = False
        elif item == "--procs":
            skip = True
        elif not item.startswith("--procs="):
            out.append(item)
    return out


def worker_world(a: argparse.Namespace) -> World | None:
    """This worker's World when a launcher started it (WORLD_SIZE > 1), else None."""
    if world_size_from_env() == 1:
        return None
    from shared.backend import backend_file

    return backend_file("torch", "parallel").init_world()


def quiet(*_: Any) -> None:
    """The log of a rank that is not rank 0."""
