"""parity/study_curves.py reads a sweep's cells back: examples seen add up per epoch, seconds grow."""

from __future__ import annotations

from pathlib import Path

import pytest

from parity.study_curves import curves, plot
from shared.cli import run_captured


@pytest.fixture(autouse=True)
def _cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQBATCH_TORCH_DEVICE", "cpu")


def test_a_sweeps_curves_count_examples_and_seconds(tmp_path: Path) -> None:
    code, _, stderr = run_captured("sweep", "--task", "wine", "--backends", "torch", "--seeds", "0-1", "--grid",
                                   "batch_size=8,full", "--epochs", "3", "--out", str(tmp_path), "--no-progress")
    assert code == 0, stderr
    data = curves(tmp_path)
    assert sorted(data) == [("batch_size=8", "torch"), ("batch_size=full", "torch")]
    for runs in data.values():
        assert len(runs) == 2  # two seeds
        for rows in runs:
            assert [r["examples"] for r in rows] == [106, 212, 318]  # the wine training split, each epoch
            assert rows[0]["seconds"] <= rows[-1]["seconds"]
    plot(data, tmp_path / "study.png", "t")
    assert (tmp_path / "study.png").read_bytes()[:4] == b"\x89PNG"
