"""`seqbatch train`'s run-folder flags: --out, --resume, --overwrite, --checkpoint-every, the guard.

`open_run` is called before any data is read: it checks the folder (writable, not holding another
run, not locked by a live process), takes its lock, and for --resume puts the run's own flags back
into the namespace, refusing flags that would change the result.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from shared.config import TrainConfig, check_seed
from shared.errors import SeqbatchError
from shared.runs import RUN_FILES, RunFolder

# Flags --resume accepts beside it: they do not change what the finished run computes (or, for
# --steps/--epochs, only make it longer).
# --procs too: data parallel over any number of processes trains the same model (issue 15's checks).
RESUME_MAY_CHANGE = frozenset({"steps", "epochs", "no_progress", "on_nan", "max_loss", "checkpoint_every", "resume",
                               "out", "overwrite", "time_limit", "procs"})
NOT_RECORDED = frozenset({"func", "train_parser", "command", "argv"})
PATH_FLAGS = frozenset({"data", "init_embeddings"})  # recorded as strings, restored as paths


def add_run_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("run folder, saving and resuming")
    g.add_argument("--out", type=Path, default=None,
                   help="run folder to write (refused if it holds a run, unless --overwrite or --resume)")
    g.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR",
                   help="continue the run in RUN_DIR from its last saved state, with its own flags; --steps or "
                        "--epochs may be raised to extend a finished run, and --procs N resumes it data parallel "
                        "(any N; names, imdb, charlm). The result is bit-identical to an uninterrupted run on a CPU")
    g.add_argument("--overwrite", action="store_true",
                   help=f"remove an earlier run's files from --out first ({', '.join(RUN_FILES)}; nothing else)")
    g.add_argument("--checkpoint-every", type=int, default=None, metavar="N",
                   help="save the run state (state/) every N steps; default: at each validation and at least "
                        "every 10 minutes")
    g.add_argument("--on-nan", choices=("stop", "skip"), default="stop",
                   help="a step whose loss or gradient norm is not finite, or whose loss exceeds --max-loss: stop "
                        "(exit 3, the last good state kept) or skip that batch and count it (default stop)")
    g.add_argument("--max-loss", type=float, default=100.0,
                   help="mean loss (nats) above which a step counts as diverged (default 100: a cross-entropy "
                        "no training run reaches after its first steps)")
    p.add_argument("--init", choices=("library", "shared"), default="library",
                   help="initial weights: library, each backend's own seeded init (torch and jax draw different "
                        "numbers from the same distributions); shared, drawn once in NumPy from those "
                        "distributions, so that both backends start from identical weights (default library)")
    p.set_defaults(train_parser=p)


def recorded_flags(a: argparse.Namespace) -> dict[str, Any]:
    """The namespace as JSON (paths as strings), for config.json's `cli` entry."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items() if k not in NOT_RECORDED}


def _given(a: argparse.Namespace, key: str) -> bool:
    return getattr(a, key) != a.train_parser.get_default(key)


def open_run(a: argparse.Namespace, log: Any, *, read_only: bool = False) -> RunFolder:
    """Validate --out/--resume/--overwrite/--checkpoint-every, lock the folder; with --resume, restore
    the run's flags into `a` (in place). `read_only` (the ranks after the first of a data-parallel
    --resume): the folder is only read, not locked."""
    restored = a.resume is not None and a.out is not None and Path(a.out) == Path(a.resume)  # flags put back before
    if (a.out is None) == (a.resume is None) and not restored:
        raise SeqbatchError("give --out RUN_DIR for a new run, or --resume RUN_DIR to continue one")
    if a.checkpoint_every is not None and a.checkpoint_every < 1:
        raise SeqbatchError(f"--checkpoint-every must be >= 1, got {a.checkpoint_every}")
    if a.resume is None:
        return RunFolder(a.out, "overwrite" if a.overwrite else "new", log=log)
    if a.overwrite:
        raise SeqbatchError("--overwrite and --resume exclude each other")
    folder = RunFolder(a.resume, "read" if read_only else "resume", log=log)
    try:
        _restore_flags(a, folder)
    except BaseException:
        folder.close()
        raise
    return folder


def _restore_flags(a: argparse.Namespace, folder: RunFolder) -> None:
    config = folder.read_config()
    saved = config.get("cli")
    if not isinstance(saved, dict):
        raise SeqbatchError(f"{folder.path}/config.json has no `cli` entry (written by an older seqbatch); "
                            "it cannot be resumed")
    changed = []
    for key, value in saved.items():
        if not hasattr(a, key) or key in RESUME_MAY_CHANGE:
            continue
        now = getattr(a, key)
        now = str(now) if isinstance(now, Path) else now
        if _given(a, key) and now != value:
            had = "left it at its default" if value is None else f"has {value}"
            changed.append(f"--{key.replace('_', '-')} {now} (the run {had})")
    if changed:
        raise SeqbatchError(f"--resume {folder.path}: these flags would change the run: {'; '.join(changed)}. "
                            "Only --steps/--epochs (to extend it), --on-nan, --max-loss, --checkpoint-every, "
                            "--time-limit, --procs and --no-progress may be given")
    for key, value in saved.items():  # the run's own flags, unless a flag it may change was given anew
        if not hasattr(a, key) or key in ("resume", "out", "overwrite", "no_progress"):
            continue
        if key in RESUME_MAY_CHANGE and _given(a, key):
            continue
        setattr(a, key, Path(value) if key in PATH_FLAGS and value is not None else value)
    if a.steps is not None and saved.get("epochs") is not None and saved.get("steps") is None:
        raise SeqbatchError(f"--resume {folder.path}: the run counts --epochs ({saved['epochs']}); extend it with "
                            "--epochs, not --steps")
    if a.epochs is not None and saved.get("steps") is not None:
        raise SeqbatchError(f"--resume {folder.path}: the run counts --steps ({saved['steps']}); extend it with "
                            "--steps, not --epochs")
    a.out = folder.path


def train_config(a: argparse.Namespace, pick: dict[str, Any], eval_every: int, d: dict[str, Any]) -> TrainConfig:
    """The TrainConfig of `train`'s flags (`pick`: the task-dependent ones resolved; `d`: the task's defaults)."""
    epochs = a.epochs if a.steps is None else None
    steps = a.steps
    if steps is None and epochs is None:
        steps, epochs = d.get("steps"), d.get("epochs")
    return TrainConfig(
        optimizer=pick["optimizer"], lr=pick["lr"], momentum=a.momentum, batch_size=pick["batch_size"], steps=steps,
        epochs=epochs, clip_norm=pick["clip_norm"], seed=a.seed, sampler=pick["sampler"] or "random",
        eval_every=eval_every, on_nan=a.on_nan, max_loss=a.max_loss, init=a.init,
    )


def check_train_flags(a: argparse.Namespace, pick: dict[str, Any], d: dict[str, Any]) -> None:
    """Every flag of `train`, checked before the run folder is touched or any data read."""
    check_seed(a.seed, "--seed")
    for key in ("bucket", "eval_every", "batch_size", "hidden", "layers"):
        if pick.get(key) is not None and pick[key] < 1:
            raise SeqbatchError(f"--{key.replace('_', '-')} must be >= 1, got {pick[key]}")
    if pick.get("bucket_chunk") is not None and pick["bucket_chunk"] < 0:
        raise SeqbatchError(f"--bucket-chunk must be >= 0 (0: off), got {pick['bucket_chunk']}")
    if pick.get("embed_dim") is not None and pick["embed_dim"] < 1:
        raise SeqbatchError(f"--embed-dim must be >= 1, got {pick['embed_dim']}")
    if not 0 <= pick["dropout"] < 1:  # false for nan too
        raise SeqbatchError(f"--dropout must be in [0, 1), got {pick['dropout']}")
    train_config(a, pick, pick["eval_every"] or 1, d)  # TrainConfig's own checks (lr, momentum, steps, ...)
