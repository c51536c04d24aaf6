"""Flag checks shared by `seqbatch parity`, `bench`, `bench-lm` and `bench-kernels`.

Every command calls these on all of its flags before it imports a framework or measures anything,
then checks its output path (shared.paths) last, so that a bad value costs a second, not the run.
Each raises `SeqbatchError` naming the flag and the value: `--threads must be >= 1, got 0`.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path

from shared.errors import SeqbatchError
from shared.paths import writable_file

SEED_LIMIT = 2**32  # numpy's SeedSequence and jax.random.key take any int, torch.manual_seed < 2**64: the common range


def at_least(value: int | None, low: int, flag: str) -> None:
    """`value` (if given) is an int >= `low`."""
    if value is not None and (isinstance(value, bool) or value < low):
        raise SeqbatchError(f"{flag} must be >= {low}, got {value}")


def all_at_least(values: Sequence[int], low: int, flag: str) -> None:
    """A non-empty list of ints, each >= `low`."""
    if not values:
        raise SeqbatchError(f"{flag}: give at least one value")
    bad = [v for v in values if v < low]
    if bad:
        raise SeqbatchError(f"{flag} values must be >= {low}, got {','.join(map(str, bad))}")


def seed(value: int, flag: str = "--seed") -> None:
    if not 0 <= value < SEED_LIMIT:
        raise SeqbatchError(f"{flag} must be in [0, 2**32), got {value}")


def positive_seconds(value: float, flag: str) -> None:
    """A finite number of seconds > 0 (`nan > 0` is False, `inf` never ends a loop)."""
    if not (math.isfinite(value) and value > 0):
        raise SeqbatchError(f"{flag} must be a finite number > 0, got {value}")


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def threads(value: int | None, flag: str = "--threads") -> None:
    """None (each library's default) or 1 .. the CPUs this process may use."""
    if value is None:
        return
    at_least(value, 1, flag)
    cpus = available_cpus()
    if value > cpus:
        raise SeqbatchError(f"{flag} {value}: this process may use {cpus} CPU{'s' if cpus > 1 else ''}")


def names(values: Iterable[str], known: Collection[str], flag: str) -> tuple[str, ...]:
    """A non-empty list of known names, in the order given, without repeats."""
    out = tuple(dict.fromkeys(values))
    if not out:
        raise SeqbatchError(f"{flag}: give at least one of {', '.join(known)}")
    bad = [v for v in out if v not in known]
    if bad:
        raise SeqbatchError(f"{flag} {','.join(bad) or repr('')}: choose among {', '.join(known)}")
    return out


def split(text: str) -> list[str]:
    """'a,b,,c' -> ['a', 'b', '', 'c']: empty items stay, so that `names` refuses them."""
    return [t.strip() for t in text.split(",")]


def int_list(text: str) -> tuple[int, ...]:
    """argparse type: comma-separated integers."""
    try:
        return tuple(int(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def embed(text: str) -> int | None:
    """argparse type: an embedding size or 'one-hot'."""
    if text in ("one-hot", "onehot"):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an embedding size or 'one-hot', got {text!r}") from None


def existing(path: Path | None, flag: str = "--data") -> None:
    """An input path that must exist (None: the embedded default)."""
    if path is not None and not path.exists():
        raise SeqbatchError(f"{flag} {path}: no such file or folder")


def report_paths(given: Path | None, default: Path, dtypes: Sequence[str], flag: str = "--json") -> dict[str, Path]:
    """The JSON report per dtype, each checked writable: `given` for one dtype, `<given stem>-<dtype>`
    beside it for several; `<default>-<dtype>.json` when nothing is given."""
    if given is not None and given.is_dir():
        raise SeqbatchError(f"{flag} {given}: is a folder; name a file")
    if given is None:
        paths = {d: default.with_name(f"{default.name}-{d}.json") for d in dtypes}
    elif len(dtypes) > 1:
        paths = {d: given.with_name(f"{given.stem}-{d}{given.suffix}") for d in dtypes}
    else:
        paths = {dtypes[0]: given}
    for path in paths.values():
        writable_file(path, flag)
    return paths


def check_parity(a: argparse.Namespace, results: Path) -> dict[str, Path]:
    """Every flag of `seqbatch parity` (either kind), then the JSON report paths, one per dtype
    (default `<results>/parity[-lm]-<device>-<dtype>.json`), checked writable."""
    lm = a.kind == "lm"
    if lm and a.bidirectional:
        raise SeqbatchError("--bidirectional: a language model reads left to right only")
    at_least(a.layers, 1, "--layers")
    at_least(a.hidden, 1, "--hidden")
    at_least(a.embed_dim, 1, "--embed-dim")
    at_least(a.steps, 1 if lm else 0, "--steps")  # the LM's trajectory needs one window at least
    at_least(a.grid_steps, 0, "--grid-steps")
    seed(a.seed)
    dtypes = ["float32", "float64"] if a.dtype == "both" else [a.dtype]
    prefix = "" if a.kind == "classifier" else f"{a.kind}-"
    return report_paths(a.json, results / f"parity-{prefix}{a.device}", dtypes)
