"""`seqbatch train --procs N`: data parallel over N processes (issue 15).

- torch: the command relaunches itself under `torch.distributed.run` (torchrun, standalone on this
  machine), which starts N workers with RANK / WORLD_SIZE / MASTER_ADDR set; a worker (or a process
  of a torchrun command the user wrote, on one node or several) sees WORLD_SIZE > 1 and joins the
  process group (DistributedDataParallel, reference_torch/parallel.py).
- jax: the command starts N copies of itself with WORLD_SIZE, RANK and JAX_COORDINATOR_ADDRESS
  (a free local port) set; each joins through `jax.distributed.initialize` (jax_impl/parallel.py).
  On several nodes, run the command once per process with those three set by hand. The launcher
  watches the workers: when one fails or dies, it stops the others and exits 2 with one line.

Only rank 0 opens (and locks) the run folder, logs and shows progress; with --resume the other ranks
read its saved state. Built for names, imdb and charlm.
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
                   help="names and imdb: data parallel over N processes on this machine; torch: "
                        "DistributedDataParallel (gloo on a CPU, nccl on GPUs) launched through "
                        "torch.distributed.run, each process taking --batch-size / N of every global batch; "
                        "jax: jax.distributed (gloo CPU collectives), one program whose batch axis spans every "
                        "process's devices (default 1)")


def check_procs(a: argparse.Namespace, batch_size: int | None) -> None:
    """--procs (or a launcher's WORLD_SIZE) with the other flags: what a data-parallel run supports
    (names, imdb and charlm; `batch_size` the global batch to check, None: not checked)."""
    n = a.procs if a.procs is not None else world_size_from_env()
    if n < 1:
        raise SeqbatchError(f"--procs must be >= 1, got {n}")
    if n == 1:
        return
    weighted = a.backend == "torch" and getattr(a, "class_weights", None) not in (None, "none")
    why = "--class-weights on torch" if weighted else "--devices" if (a.devices or 1) > 1 else None
    if why is not None:
        raise SeqbatchError(f"data parallel over {n} processes is built without --devices (nor "
                            f"--class-weights on torch); not with {why}")
    if batch_size is not None and batch_size % n:
        raise SeqbatchError(f"--batch-size {batch_size} is not divisible by {n} processes: each takes an equal "
                            f"share of every global batch; give a multiple of {n}")


def launch(a: argparse.Namespace) -> int:
    """Run this same command as N workers (torch: under torch.distributed.run; jax: `launch_jax`); 0,
    or 2 with one line when a worker failed (the workers printed their own errors above)."""
    argv = strip_procs(list(a.argv))
    if a.backend == "jax":
        code, how = launch_jax(argv, a.procs), "a worker"
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={a.procs}",
               "-m", "shared.cli", *argv]
        code, how = subprocess.run(cmd, check=False).returncode, "torch.distributed.run"
    if code != 0:
        print(f"seqbatch: error: the data-parallel run over {a.procs} processes failed ({how} exit {code}); "
              "each worker's own message is above", file=sys.stderr)
        return 2
    return 0


def launch_jax(argv: list[str], n: int, *, module: str = "shared.cli", poll_s: float = 0.2,
               grace_s: float = 10.0) -> int:
    """N workers of `python -m module argv` joined through a coordinator on a free local port.
    Returns 0 when all end with 0; else the first failure's exit status (negative: killed by a
    signal), after stopping the others (SIGTERM, then SIGKILL after `grace_s`)."""
    import os
    import signal
    import socket
    import time

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = {**os.environ, "WORLD_SIZE": str(n), "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}"}
    workers = [subprocess.Popen([sys.executable, "-m", module, *argv],
                                env={**base, "RANK": str(r), "LOCAL_RANK": str(r)}) for r in range(n)]
    failed = 0
    try:
        while True:
            codes = [w.poll() for w in workers]
            failed = next((c for c in codes if c not in (None, 0)), 0)
            if failed or all(c == 0 for c in codes):
                break
            time.sleep(poll_s)
    except KeyboardInterrupt:
        failed = 128 + signal.SIGINT
    finally:
        for w in workers:
            if w.poll() is None:
                w.terminate()
        deadline = time.monotonic() + grace_s
        for w in workers:
            try:
                w.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                w.kill()
                w.wait()
    return failed


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

    return backend_file(a.backend, "parallel").init_world()


def quiet(*_: Any) -> None:
    """The log of a rank that is not rank 0."""
