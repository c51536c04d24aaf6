"""`seqbatch sweep` (issue 14, item 1): a grid of `seqbatch train` runs over backends x grid points x seeds,
summarised over the seeds.

    seqbatch sweep --task wine --backends torch,jax --seeds 0-4 --grid batch_size=1,32,full --out runs/sweep-wine
    seqbatch sweep --task wine --seeds 0,1 --grid lr=0.01,0.1 optimizer=sgd,adam --out runs/s --epochs 20

Every argument that is not the sweep's own is handed to each `seqbatch train` unchanged. Each cell is a
normal run folder OUT/<backend>/<key=value,...>/seed-<s>, trained in this process. Rerunning the same
command skips the cells that finished (model.safetensors and a test record in metrics.jsonl), resumes
the ones that died with a saved state (`train --resume`) and retrains the others (`--overwrite`); a
finished cell made with other flags is refused (`_same_flags`). Writes OUT/sweep.jsonl, summary.md, curves.png
and final.png.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from shared.errors import SeqbatchError

# Flags the sweep sets for each cell, refused in --grid and among the pass-through flags.
SWEEP_OWNS: dict[str, str] = {"backend": "--backends", "seed": "--seeds", "out": "--out", "resume": "(rerunning)",
                              "overwrite": "(rerunning)", "no_progress": "(always given)"}
FULL = "full"  # --grid batch_size=full: the whole training split in one batch (wine and tabular)


class _PassThroughParser(argparse.ArgumentParser):
    """A sub-command parser that keeps the arguments it does not know in `train_args` instead of
    handing them back to the top-level parser (which would refuse them)."""

    def parse_known_args(self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
                         ) -> tuple[argparse.Namespace, list[str]]:
        ns, extras = super().parse_known_args(args, namespace)
        ns.train_args = [*getattr(ns, "train_args", []), *extras]
        return ns, []


def add_sweep(sub: Any) -> None:
    p = sub.add_parser(
        "sweep", help="train a grid of runs (backends x grid points x seeds) and summarise them",
        description="Run `seqbatch train` for every backend, grid point and seed into OUT/<backend>/<point>/"
                    "seed-<s> (resumable: finished runs are skipped), then write OUT/sweep.jsonl, summary.md "
                    "(mean ± std over seeds, paired torch - jax), curves.png and final.png. Any other argument "
                    "(--task wine --epochs 20 ...) is passed to every `seqbatch train`.",
        allow_abbrev=False)
    p.__class__ = _PassThroughParser
    p.add_argument("--backends", default="torch", metavar="B1,B2",
                   help="backends to train on, separated by commas: torch, jax (default torch)")
    p.add_argument("--seeds", default="0", metavar="SPEC",
                   help="seeds: ranges and/or numbers separated by commas, e.g. 0-4 or 0,3,7 (default 0)")
    p.add_argument("--grid", nargs="+", action="extend", default=[], metavar="KEY=V1,V2",
                   help="a `seqbatch train` flag (underscores or dashes: batch_size, lr, optimizer, hidden_sizes) "
                        "and its values separated by commas (by semicolons where values hold commas: "
                        "hidden_sizes=10,10;32); repeatable, the grid is every combination. batch_size=full: the "
                        "whole training split per step (wine, tabular). Default: one point, the train defaults")
    p.add_argument("--out", type=Path, default=None, help="the sweep's folder (required)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar over the runs")
    p.set_defaults(func=cmd_sweep, train_args=[])


def _train_parser() -> argparse.ArgumentParser:
    """A fresh `seqbatch train` parser whose errors are one-line SeqbatchErrors instead of usage + exit."""
    from shared.cli import build_parser

    top = build_parser()
    action = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    train = action.choices["train"]

    def error(message: str) -> NoReturn:
        raise SeqbatchError(f"train flags: {message}")

    train.error = error  # type: ignore[method-assign]
    return train


def _grid_flags(parser: argparse.ArgumentParser, point: dict[str, str]) -> list[str]:
    """The `seqbatch train` arguments of one grid point; SeqbatchError for a key that is not a train flag."""
    argv: list[str] = []
    for key, value in point.items():
        flag = "--" + key.replace("_", "-")
        action = parser._option_string_actions.get(flag)
        if action is None or action.dest in SWEEP_OWNS:
            why = f"the sweep sets it ({SWEEP_OWNS[action.dest]})" if action is not None else "no such flag"
            raise SeqbatchError(f"--grid {key}: not a `seqbatch train` flag the grid can vary ({why})")
        if action.nargs == 0:  # store_true or --x/--no-x
            if value.lower() not in ("true", "false"):
                raise SeqbatchError(f"--grid {key}={value}: {flag} takes no value; give true or false")
            if value.lower() == "true":
                argv.append(flag)
            elif isinstance(action, argparse.BooleanOptionalAction):
                argv.append("--no-" + flag[2:])
        else:
            argv += [flag, value]
    return argv


def _full_batch(ns: argparse.Namespace, cache: dict[tuple[Any, ...], int]) -> int:
    """The training split's size for `--grid batch_size=full` (wine and tabular, which split by seed)."""
    from shared.cli.tabular import TASK_KINDS, load_table
    from shared.tabular import split_table

    if ns.task not in TASK_KINDS:
        raise SeqbatchError(f"--grid batch_size={FULL} applies to --task wine and tabular only, not {ns.task}")
    key = (ns.task, ns.data, ns.target, ns.seed)
    if key not in cache:
        cache[key] = len(split_table(load_table(ns.task, ns.data, ns.target), ns.seed).train)
    return cache[key]


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def _run_cell(argv: list[str]) -> tuple[int, str]:
    """`seqbatch train ARGV` in this process: (exit status, the last line it printed to stderr)."""
    from shared.cli import run_captured

    try:
        code, _, err = run_captured("train", *argv)
    except Exception as e:  # a crash in one cell must not end the sweep
        return 1, f"{type(e).__name__}: {e}"
    return code, _last_line(err)


# Recorded flags that differ between two runs of the same cell without changing what it computes.
NOT_COMPARED = frozenset({"out", "overwrite", "resume", "no_progress", "checkpoint_every"})


def _same_flags(folder: Path, now: dict[str, Any], name: str) -> None:
    """A cell folder holding a run of other flags (the sweep was rerun with, say, another --epochs)
    is refused: reusing or resuming it would mix two settings in one summary."""
    from shared.runs import read_config

    config = folder / "config.json"
    if not config.is_file():
        return
    before = read_config(config).get("cli")
    if not isinstance(before, dict):
        return
    differ = sorted(k for k in set(before) | set(now)
                    if k not in NOT_COMPARED and k in now and before.get(k) != now.get(k))
    if differ:
        shown = "; ".join(f"--{k.replace('_', '-')} {now.get(k)} (the run has {before.get(k)})" for k in differ)
        raise SeqbatchError(f"{name}: {folder} holds a run with other flags: {shown}. Give another --out, or "
                            "remove that folder to train it again")


def cmd_sweep(a: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from shared import sweep
    from shared.cli.classify import _checked_flags
    from shared.cli.runflags import recorded_flags
    from shared.runs import atomic_text
    from shared.runs import dumps as strict_json

    if a.out is None:
        raise SeqbatchError("give --out SWEEP_DIR, the folder the sweep's runs and summary go to")
    backends = sweep.parse_backends(a.backends)
    seeds = sweep.parse_seeds(a.seeds)
    points = sweep.parse_grid(a.grid)
    parser = _train_parser()
    passed = list(a.train_args)
    alone = parser.parse_args(passed)
    owned = [flag for dest, flag in SWEEP_OWNS.items() if getattr(alone, dest) != parser.get_default(dest)]
    if owned:
        raise SeqbatchError(f"the sweep sets {', '.join(owned)} for each run; leave it out of the train flags")
    grid_argv = {sweep.point_name(p): _grid_flags(parser, p) for p in points}

    # Every cell's flags checked before anything runs: a bad flag fails in a second, not after hours.
    plan: list[tuple[sweep.Cell, list[str]]] = []
    sizes: dict[tuple[Any, ...], int] = {}
    for cell in sweep.cells(a.out, backends, points, seeds):
        argv = [*passed, *grid_argv[sweep.point_name(cell.point)], "--backend", cell.backend,
                "--seed", str(cell.seed)]
        if cell.point.get("batch_size") == FULL:
            at = len(passed) + grid_argv[sweep.point_name(cell.point)].index("--batch-size") + 1
            argv[at] = str(_full_batch(parser.parse_args([*argv[:at], "1", *argv[at + 1:]]), sizes))
        ns = parser.parse_args([*argv, "--out", str(cell.folder), "--no-progress"])
        try:
            _checked_flags(ns)
        except SeqbatchError as e:
            raise SeqbatchError(f"{cell.name}: {e}") from None
        _same_flags(cell.folder, recorded_flags(ns), cell.name)
        plan.append((cell, argv))

    a.out.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    ran = 0
    bar = tqdm(plan, desc="sweep", unit="run", disable=a.no_progress, file=sys.stderr)
    for cell, argv in bar:
        bar.set_postfix_str(cell.name)
        final = sweep.final_record(cell.folder)
        if final is not None:
            records.append(sweep.cell_record(cell, final, reused=True))
            continue
        ran += 1
        if (cell.folder / "state" / "run.safetensors").is_file() and (cell.folder / "config.json").is_file():
            code, error = _run_cell(["--resume", str(cell.folder), "--no-progress"])
            if code == 2:  # a state it cannot resume from: start the cell again
                code, error = _run_cell([*argv, "--out", str(cell.folder), "--overwrite", "--no-progress"])
        else:
            again = ["--overwrite"] if cell.folder.exists() else []
            code, error = _run_cell([*argv, "--out", str(cell.folder), *again, "--no-progress"])
        final = sweep.final_record(cell.folder) if code == 0 else None
        if final is None:
            records.append(sweep.failed_record(cell, code or 1, error or "no test record in metrics.jsonl"))
        else:
            records.append(sweep.cell_record(cell, final, reused=False))
        atomic_text(a.out / "sweep.jsonl", "".join(strict_json(r) + "\n" for r in records))
    bar.close()

    atomic_text(a.out / "sweep.jsonl", "".join(strict_json(r) + "\n" for r in records))
    atomic_text(a.out / "summary.md", sweep.summary_markdown(records, str(a.out)))
    sweep.plot_curves(records, a.out / "curves.png")
    sweep.plot_final(records, a.out / "final.png")
    failed = sum(r["status"] != "ok" for r in records)
    print(f"sweep: {len(records)} runs ({ran} trained now, {len(records) - ran} already finished), {failed} failed; "
          f"wrote {a.out}/sweep.jsonl, summary.md, curves.png, final.png", file=sys.stderr)
    if failed:
        print(f"seqbatch: sweep: {failed} of {len(records)} runs failed (see {a.out}/sweep.jsonl)", file=sys.stderr)
        return 1
    return 0
