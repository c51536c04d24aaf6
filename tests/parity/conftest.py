"""Parity suites: both backends, CPU only, under the harness's precision settings.

Every test runs inside `backend_settings("cpu", "float32")` (one torch thread, no TF32, JAX matmul
precision "highest"); float64 tests nest a float64 block, which turns JAX's x64 on for that block
only. Results of the grid are computed once per session and shared by the tests that read them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import pytest

pytest.importorskip("torch")
pytest.importorskip("jax")

from parity import harness as H
from parity.harness_cli import backend_settings


@pytest.fixture(autouse=True)
def cpu_float32() -> Iterator[None]:
    with backend_settings("cpu", "float32"):
        yield


def describe(c: H.Comparison) -> str:
    return (f"{c.quantity} differs on {c.case}" + (f" for {c.name}" if c.name else "")
            + f": max abs {c.max_abs:.3e}, max rel {c.max_rel:.3e}, tolerance {c.tol:.0e} ({c.on})")


def _assert_parity(comparisons: Iterable[H.Comparison], where: str) -> None:
    comparisons = list(comparisons)
    assert comparisons, f"{where}: nothing was compared"
    bad = [describe(c) for c in comparisons if not c.passed]
    assert not bad, f"{where}:\n  " + "\n  ".join(bad)


AssertParity = Callable[[Iterable[H.Comparison], str], None]


@pytest.fixture
def assert_parity() -> AssertParity:
    """`assert_parity(comparisons, where)`: fail naming every quantity and parameter out of tolerance."""
    return _assert_parity
