"""`python -m parity.mutants`: run every semantic mutant against the tests that should kill it.

    python -m parity.mutants                      # all mutants, table + parity/results/mutants/
    python -m parity.mutants --list
    python -m parity.mutants --catalog shared         # one catalog: shared/, the CLI and parity/
    python -m parity.mutants --only eval-ignores-backend,split-seed-ignored --jobs 2

Each distinct test selection first runs once on the unpatched copy (its baseline: a selection that
fails there is BROKEN BASELINE, never a kill); then each mutant is applied to a scratch copy and its
tests run (parity/mutants/runner.py). Exit 0 only if every mutant is killed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from queue import Queue
from typing import Any

from parity.mutants import Mutant
from parity.mutants import runner as R

REPO = Path(__file__).resolve().parents[2]
CATALOGS = ("parity.mutants.catalog_shared", "parity.mutants.catalog_backends")
DEFAULT_OUT = REPO / "parity" / "results" / "mutants"
TIMEOUT = 600.0


@dataclass
class Result:
    mutant: Mutant
    result: str
    killed_by: str = ""
    seconds: float = 0.0
    detail: str = ""  # output tail for anything but a kill

    @property
    def killed(self) -> bool:
        return self.result == R.KILLED


def collect(catalogs: Sequence[str] = CATALOGS) -> list[Mutant]:
    """Every catalog's MUTANTS, in order; a catalog module that does not exist yet is skipped."""
    found: list[Mutant] = []
    for name in catalogs:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue
        found += list(getattr(module, "MUTANTS", []))
    names = [m.name for m in found]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise R.HarnessError(f"mutant names must be unique: {', '.join(twice)}")
    return found


def catalogs(names: str | None) -> tuple[str, ...]:
    if not names:
        return CATALOGS
    known = {c.rsplit("_", 1)[1]: c for c in CATALOGS}
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = sorted(set(wanted) - known.keys())
    if unknown:
        raise R.HarnessError(f"unknown catalog(s): {', '.join(unknown)}; choose from {', '.join(known)}")
    return tuple(known[n] for n in wanted)


def select(mutants: list[Mutant], only: str | None) -> list[Mutant]:
    if not only:
        return mutants
    wanted = [n.strip() for n in only.split(",") if n.strip()]
    unknown = sorted(set(wanted) - {m.name for m in mutants})
    if unknown:
        raise R.HarnessError(f"unknown mutant(s): {', '.join(unknown)} (see --list)")
    return [m for m in mutants if m.name in wanted]


class Workers:
    """`jobs` scratch copies, each used by one thread at a time."""

    def __init__(self, root: Path, jobs: int) -> None:
        files = R.repository_files(REPO)
        self.free: Queue[tuple[Path, dict[str, str]]] = Queue()
        for i in range(jobs):
            scratch = R.make_scratch(REPO, files, root / f"w{i}" / "repo")
            env = R.scratch_env(scratch, root / f"w{i}" / "pytest-tmp")
            R.sanity_check(scratch, env)
            self.free.put((scratch, env))

    def run(self, mutant: Mutant | None, tests: Sequence[str], timeout: float) -> tuple[R.Outcome | None, bool]:
        """(outcome, applied): the tests on a copy patched with `mutant` (None: the baseline);
        (None, False) if the mutant is stale in the copy."""
        scratch, env = self.free.get()
        try:
            original = None
            if mutant is not None:
                original = R.apply(scratch, mutant)
                if original is None:
                    return None, False
            try:
                return R.run_pytest(scratch, env, tests, timeout), True
            finally:
                if mutant is not None and original is not None:
                    R.restore(scratch, mutant, original)
        finally:
            self.free.put((scratch, env))


def run_all(mutants: list[Mutant], *, jobs: int, timeout: float, progress: bool) -> list[Result]:
    results: dict[str, Result] = {}
    live = []
    for m in mutants:
        n = R.occurrences(REPO, m)
        if n != 1:
            results[m.name] = Result(m, R.STALE, detail=f"`old` occurs {n} times in {m.path}, not once")
        else:
            live.append(m)
    say = (lambda line: print(line, file=sys.stderr, flush=True)) if progress else (lambda line: None)
    lock = threading.Lock()
    with tempfile.TemporaryDirectory(prefix="seqbatch-mutants-") as tmp:
        workers = Workers(Path(tmp), max(1, jobs))
        selections = sorted({m.tests for m in live})
        baselines: dict[tuple[str, ...], R.Outcome] = {}

        def baseline(tests: tuple[str, ...]) -> None:
            outcome, _ = workers.run(None, tests, timeout)
            assert outcome is not None
            with lock:
                baselines[tests] = outcome
            say(f"baseline {'ok  ' if outcome.code == 0 else 'FAIL'} {outcome.seconds:6.1f} s  {' '.join(tests)}")

        def one(m: Mutant) -> None:
            base = baselines[m.tests]
            if base.code != 0:
                r = Result(m, R.BROKEN, detail=f"the tests fail without the mutant (exit {base.code}):\n{base.tail}")
            else:
                outcome, applied = workers.run(m, m.tests, timeout)
                if not applied or outcome is None:
                    r = Result(m, R.STALE, detail="`old` not found once in the scratch copy")
                else:
                    v = R.verdict(outcome)
                    r = Result(m, v, outcome.first_failure if v == R.KILLED else "", outcome.seconds,
                               "" if v == R.KILLED else outcome.tail)
            with lock:
                results[m.name] = r
            say(f"{r.result:<9} {r.seconds:6.1f} s  {m.name}  {r.killed_by}")

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            list(pool.map(baseline, selections))
            list(pool.map(one, live))
    return [results[m.name] for m in mutants]


# ---- the report ---------------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in ("pytest", "numpy", "torch", "jax"):
        try:
            out[name] = importlib.import_module(name).__version__
        except ImportError:
            out[name] = "not installed"
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True,
                               check=True).stdout.strip()
        out["commit"] = rev + (" (working tree modified)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        out["commit"] = "unknown"
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(results: list[Result]) -> str:
    rows = ["| mutant | where | what | result | killed by | seconds |", "| --- | --- | --- | --- | --- | ---: |"]
    for r in results:
        m = r.mutant
        rows.append(f"| {m.name} | {m.path} | {_cell(m.what)} | {r.result} | {_cell(r.killed_by)} | "
                    f"{r.seconds:.1f} |")
    return "\n".join(rows)


def summary(results: list[Result], seconds: float) -> str:
    killed = sum(r.killed for r in results)
    return f"{killed} of {len(results)} mutants killed ({100 * killed / max(1, len(results)):.0f} %) in {seconds:.0f} s"


def write_report(out: Path, results: list[Result], command: list[str], seconds: float, jobs: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    when = time.strftime("%Y-%m-%d %H:%M:%S %z")
    versions = _versions()
    lines = ["# Semantic mutants (issue 12)", "",
             "Each mutant is a small, plausible bug patched into a scratch copy of the repository; the tests it "
             "names then run there (`python " + " ".join(R.pytest_command(["<tests>"])[1:]) + "`). *killed*: pytest "
             "exited 1 (a test failed). Anything else (SURVIVED, STALE, BROKEN BASELINE, timeout, import error, "
             "other pytest exits) fails the run.", "",
             f"- command: `{' '.join(command)}`", f"- date: {when}", f"- jobs: {jobs}",
             "- versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
             f"- result: {summary(results, seconds)}", "", table(results), ""]
    failing = [r for r in results if not r.killed]
    if failing:
        lines += ["## Not killed", ""]
        for r in failing:
            lines += [f"### {r.mutant.name}: {r.result}", "", "```", r.detail.strip(), "```", ""]
    (out / "mutants.md").write_text("\n".join(lines))
    doc: dict[str, Any] = {
        "format": "seqbatch-mutants/1", "command": command, "date": when, "jobs": jobs, "versions": versions,
        "seconds": round(seconds, 1), "killed": sum(r.killed for r in results), "total": len(results),
        "mutants": [{**asdict(r.mutant), "tests": list(r.mutant.tests), "result": r.result,
                     "killed_by": r.killed_by, "seconds": round(r.seconds, 2), "detail": r.detail}
                    for r in results],
    }
    (out / "mutants.json").write_text(json.dumps(doc, indent=1) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m parity.mutants", description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default=None, metavar="NAME[,NAME]", help="run only these mutants")
    p.add_argument("--catalog", default=None, metavar="NAME[,NAME]",
                   help="run only these catalogs: shared (shared/, the CLI, parity/), backends; default all")
    p.add_argument("--list", action="store_true", help="list the mutants and their tests, run nothing")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"report folder (default {DEFAULT_OUT})")
    p.add_argument("--jobs", type=int, default=1, help="mutants run at once, one scratch copy each (default 1)")
    p.add_argument("--timeout", type=float, default=TIMEOUT, help=f"seconds per pytest run (default {TIMEOUT:.0f})")
    p.add_argument("--no-progress", action="store_true", help="no line per finished run on stderr")
    a = p.parse_args(argv)
    try:
        if a.jobs < 1:
            raise R.HarnessError(f"--jobs must be >= 1, got {a.jobs}")
        mutants = select(collect(catalogs(a.catalog)), a.only)
        if a.list:
            for m in mutants:
                n = R.occurrences(REPO, m)
                stale = "" if n == 1 else f"  [STALE: `old` occurs {n} times]"
                print(f"{m.name:<32} {m.path:<28} {' '.join(m.tests)}{stale}\n{'':<32} {m.what}")
            return 0
        if not mutants:
            raise R.HarnessError("no mutants: the catalogs are empty")
        start = time.perf_counter()
        results = run_all(mutants, jobs=a.jobs, timeout=a.timeout, progress=not a.no_progress)
    except R.HarnessError as e:
        print(f"parity.mutants: error: {e}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - start
    write_report(a.out, results, ["python", "-m", "parity.mutants", *(argv if argv is not None else sys.argv[1:])],
                 seconds, a.jobs)
    print(table(results))
    print(summary(results, seconds))
    print(f"wrote {a.out / 'mutants.md'}, {a.out / 'mutants.json'}")
    return 0 if all(r.killed for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
