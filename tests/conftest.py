"""Fixtures shared by every suite: tiny `<Label>.txt` folders built in tmp_path, the real data's path.

Test files are imported in pytest's `importlib` mode because `tests/reference_torch/test_models.py`
and `tests/jax_impl/test_models.py` share a basename, and the default `prepend` mode would either
refuse the second one or (with `__init__.py` files) let `tests/reference_torch` shadow the package
it tests.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

# Small models on a CPU shared with other jobs: torch's second thread only spins (a 150-step run
# took 25 s of CPU with two threads, 1 s with one). Set before any test imports torch.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# Many tests start `seqbatch` (or a parity check) in a fresh process, and each compiled its JAX
# step afresh: a run killed three times and resumed compiled the same programs four times. The
# suite's subprocesses share one persistent compilation cache instead (a temporary folder, removed
# at exit; the programs are the same ones, so the results are too). Set after this process imported
# JAX, whose configuration read the environment then: in-process compile counts are unchanged.
try:
    import jax  # noqa: F401
except ImportError:
    pass
else:
    _JAX_CACHE = tempfile.mkdtemp(prefix="seqbatch-tests-jax-cache-")
    atexit.register(shutil.rmtree, _JAX_CACHE, True)
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _JAX_CACHE)
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

# <repo>/../shared/data: read-only data beside the checkout, absent on a fresh machine.
DATA_ROOT = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"

# Three labels whose names differ in their letters, so that a few training steps already separate them.
TINY_NAMES: dict[str, list[str]] = {
    "Greek": ["Papadopoulos", "Georgiou", "Nikolaidis", "Konstantinou", "Dimitriou", "Ioannidis",
              "Vasilakis", "Christodoulou", "Karagiannis", "Antoniou", "Pappas", "Economou"],
    "Japanese": ["Tanaka", "Suzuki", "Takahashi", "Watanabe", "Yamamoto", "Nakamura", "Kobayashi",
                 "Yoshida", "Yamada", "Sasaki", "Matsumoto", "Inoue"],
    "Polish": ["Kowalski", "Wiśniewski", "Wójcik", "Kowalczyk", "Kamiński", "Lewandowski", "Zieliński",
               "Szymański", "Woźniak", "Dąbrowski", "Kozłowski", "Jankowski"],
}

NamesDir = Callable[..., Path]


REQUIRE_DATA_ENV = "SEQBATCH_REQUIRE_DATA"  # .ci/run sets it to 1 where ../shared/data is present


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """With SEQBATCH_REQUIRE_DATA=1 a test that skips for want of data fails instead: CI must not pass
    by silently not running the tests on the real data."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get(REQUIRE_DATA_ENV) == "1":
        reason = str(report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr)
        if re.search(r"\bdata\b", reason):
            report.outcome = "failed"
            report.longrepr = f"{REQUIRE_DATA_ENV}=1 but the test skipped: {reason}"


# The CPUs the suite started with (module-scoped fixtures may pin before a test's own fixtures run).
_CPU_MASK = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None


@pytest.fixture(autouse=True)
def _restore_cpu_mask() -> Iterator[None]:
    """Give the test process back its CPUs after each test. `seqbatch bench ... --threads 1` run
    in-process pins the calling process to one CPU (parity/bench.py `use_device`), and every process
    started after it inherits the mask: the suite then ran the rest of its work, subprocesses
    included, on one core (the two-process JAX check took 175 s instead of 40)."""
    yield
    if _CPU_MASK is not None and os.sched_getaffinity(0) != _CPU_MASK:
        os.sched_setaffinity(0, _CPU_MASK)


def pytest_configure(config: pytest.Config) -> None:
    config.option.importmode = "importlib"
    # Not yet `jax.config.update("jax_numpy_rank_promotion", "raise")` (equinox's habit): jax_impl/models.py
    # adds b_ih [G*H] to gi [T, G*H] by implicit rank promotion; `b_ih[None, :]` there would allow it.


def write_names_dir(folder: Path, files: Mapping[str, Sequence[str] | bytes]) -> Path:
    folder.mkdir(parents=True)
    for label, content in files.items():
        raw = content if isinstance(content, bytes) else "".join(f"{n}\n" for n in content).encode()
        (folder / f"{label}.txt").write_bytes(raw)
    return folder


@pytest.fixture(autouse=True, scope="module")
def _free_compiled_programs() -> Iterator[None]:
    """XLA keeps every program it compiled mapped in memory (about three memory maps each, measured);
    the whole suite in one process compiles enough of them to pass the kernel's limit of 65,530 maps
    per process (`vm.max_map_count`), and the next compile segfaults (it did, at 98 % of the suite).
    Drop them after each test module: jitted functions recompile when next called."""
    yield
    if "jax" in sys.modules:
        sys.modules["jax"].clear_caches()


@pytest.fixture
def make_names_dir(tmp_path: Path) -> NamesDir:
    """`make_names_dir({"Label": ["name", ...] or b"raw bytes"}, name="data")` -> a folder of `<Label>.txt`."""

    def make(files: Mapping[str, Sequence[str] | bytes] | None = None, *, name: str = "data") -> Path:
        return write_names_dir(tmp_path / name, TINY_NAMES if files is None else files)

    return make


@pytest.fixture(scope="session")
def tiny_names_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TINY_NAMES as a folder, written once per session (treat it as read-only)."""
    return write_names_dir(tmp_path_factory.mktemp("tiny") / "names", TINY_NAMES)


@pytest.fixture(scope="session")
def real_names_dir() -> Path:
    """The real surname folder (18 languages), or a skip where this checkout has no data beside it."""
    folder = DATA_ROOT / "names"
    if not (folder / "English.txt").is_file():
        pytest.skip(f"real names data not found at {folder}")
    return folder


@pytest.fixture(params=["torch", "jax"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Each backend in turn, torch on the CPU (a test file may define its own `backend` instead)."""
    from shared.backend import get_backend

    monkeypatch.setenv("SEQBATCH_TORCH_DEVICE", "cpu")
    return get_backend(request.param)
