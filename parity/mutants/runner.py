"""Running one mutant: a scratch copy of the repository, the patch, pytest, the verdict.

The checkout itself is never written. Each worker gets one scratch copy (the files
`git ls-files --cached --others --exclude-standard` lists), patches one file in place for a mutant,
runs the mutant's tests there with `PYTHONPATH` pointing at the copy (the editable install points
at the checkout; `sanity_check` proves the copy wins), and puts the file's original text back.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from parity.mutants import Mutant

PACKAGES = ("shared", "parity", "reference_torch", "jax_impl")
# Verdicts. Only KILLED counts as a success of the run.
KILLED, SURVIVED, STALE, BROKEN, TIMEOUT, IMPORT_ERROR = (
    "killed", "SURVIVED", "STALE", "BROKEN BASELINE", "timeout", "import error")
PYTEST_CODES = {2: "interrupted/collection error (exit 2)", 3: "pytest internal error (exit 3)",
                4: "pytest usage error (exit 4)", 5: "no tests collected (exit 5)"}
_FIRST_FAILURE = re.compile(r"^(FAILED|ERROR) (\S+)", re.MULTILINE)
_IMPORT_TROUBLE = re.compile(r"\b(ImportError|ModuleNotFoundError|SyntaxError|IndentationError)\b")


class HarnessError(Exception):
    """The harness cannot run at all (no git, a scratch copy that does not shadow the checkout)."""


@dataclass(frozen=True)
class Outcome:
    """What one pytest run of a test selection gave, patched or not."""

    code: int | None  # pytest's exit status; None: killed at the timeout
    seconds: float
    first_failure: str  # "FAILED tests/...::test_x" or "ERROR ...", "" if none
    tail: str  # the last lines of the output, for the report of anything but a kill

    @property
    def import_trouble(self) -> bool:
        return bool(_IMPORT_TROUBLE.search(self.tail))


def repository_files(repo: Path) -> list[str]:
    """Tracked files and untracked ones git does not ignore, relative to `repo`."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=repo,
                             check=True, capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise HarnessError(f"git ls-files failed in {repo}: {e}") from e
    return sorted({name for name in out.decode().split("\0") if name})


def make_scratch(repo: Path, files: Sequence[str], dest: Path) -> Path:
    """Copy `files` of `repo` into `dest` (created). Files listed by git but deleted are skipped.

    Data the tests read from beside the checkout (`<repo>/../shared/data`) is reachable from the
    copy too: `dest/../shared` links to it, so a test skips or runs as it would in the checkout.
    """
    dest.mkdir(parents=True)
    for name in files:
        src = repo / name
        if not src.is_file():
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    sibling, link = repo.parent / "shared", dest.parent / "shared"
    if sibling.is_dir() and not link.exists():
        link.symlink_to(sibling.resolve(), target_is_directory=True)
    return dest


def scratch_env(scratch: Path, temp_root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(scratch), *filter(None, [os.environ.get("PYTHONPATH")])])
    env["OMP_NUM_THREADS"] = "1"
    env["SEQBATCH_TORCH_DEVICE"] = "cpu"
    # No .pyc files: a patch and its undo within one second, of equal size, would otherwise let
    # Python reuse bytecode compiled from the other text (the pyc check is mtime + size).
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["MPLBACKEND"] = "Agg"
    # pytest's tmp_path root per worker: parallel runs (and other pytest sessions) never share it.
    env["PYTEST_DEBUG_TEMPROOT"] = str(temp_root)
    temp_root.mkdir(parents=True, exist_ok=True)
    return env


def sanity_check(scratch: Path, env: dict[str, str]) -> None:
    """Abort unless every package imports from the scratch copy, not the editable checkout."""
    code = f"import importlib; print('\\n'.join(importlib.import_module(p).__file__ for p in {PACKAGES!r}))"
    try:
        out = subprocess.run([sys.executable, "-c", code], cwd=scratch, env=env, capture_output=True, text=True,
                             timeout=300, check=True).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise HarnessError(f"importing {', '.join(PACKAGES)} in the scratch copy failed: {e}") from e
    root = scratch.resolve()
    for package, where in zip(PACKAGES, out.split(), strict=True):
        if not Path(where).resolve().is_relative_to(root):
            raise HarnessError(f"{package} imports from {where}, not from the scratch copy {root}; "
                               "PYTHONPATH does not shadow the installed package, so mutants would go untested")


def pytest_command(tests: Sequence[str]) -> list[str]:
    # -rfE: the summary names failed tests and errored ones (a fixture that crashed under the mutant).
    return [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-rfE", *tests]


def run_pytest(scratch: Path, env: dict[str, str], tests: Sequence[str], timeout: float) -> Outcome:
    """pytest on `tests` in `scratch`, in its own process group (killed whole at the timeout)."""
    start = time.perf_counter()
    proc = subprocess.Popen(pytest_command(tests), cwd=scratch, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # this pytest and the workers it started, nothing else
        output, _ = proc.communicate()
        code = None
    seconds = time.perf_counter() - start
    found = _FIRST_FAILURE.search(output)
    first = f"{found.group(1)} {found.group(2)}" if found else ""
    return Outcome(code, seconds, first, "\n".join(output.splitlines()[-40:]))


def apply(scratch: Path, mutant: Mutant) -> str | None:
    """Patch the mutant's file in `scratch`; returns the original text, or None if `old` does not
    occur exactly once (a stale mutant: the code it was written against has changed)."""
    path = scratch / mutant.path
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    if text.count(mutant.old) != 1:
        return None
    path.write_text(text.replace(mutant.old, mutant.new, 1), encoding="utf-8")
    return text


def restore(scratch: Path, mutant: Mutant, original: str) -> None:
    (scratch / mutant.path).write_text(original, encoding="utf-8")


def occurrences(repo: Path, mutant: Mutant) -> int:
    path = repo / mutant.path
    return path.read_text(encoding="utf-8").count(mutant.old) if path.is_file() else 0


def verdict(outcome: Outcome) -> str:
    """pytest's exit status as a mutant's result: 1 (tests failed) is a kill, 0 a survivor."""
    if outcome.code is None:
        return TIMEOUT
    if outcome.code == 1:
        return KILLED
    if outcome.code == 0:
        return SURVIVED
    if outcome.code == 2 and outcome.import_trouble:
        # The mutant does not even import: no test judged its behaviour. Reported, and a failure of
        # the run: a catalog entry must be a bug that imports fine.
        return IMPORT_ERROR
    return PYTEST_CODES.get(outcome.code, f"pytest exit {outcome.code}")
