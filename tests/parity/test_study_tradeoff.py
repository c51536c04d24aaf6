"""parity/study_tradeoff.py summarises sweeps of the imbalance study: the table's means and
standard deviations are over the finished runs of each (grid point, backend), failed runs are
left out, and several sweep folders are told apart by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from parity.study_tradeoff import main, runs, table


def write_sweep(folder: Path, cells: list[dict]) -> Path:
    folder.mkdir(parents=True)
    (folder / "sweep.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cells))
    return folder


def cell(backend: str, weights: str, top1: float, balanced: float, status: str = "ok") -> dict:
    return {"backend": backend, "grid": {"class_weights": weights}, "seed": 0, "status": status,
            "test": {"top1": top1, "top2": top1 + 0.1, "balanced_accuracy": balanced}, "train_seconds": 10.0}


def test_the_table_is_mean_and_std_over_the_finished_runs(tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path / "a", [cell("torch", "none", 0.80, 0.40), cell("torch", "none", 0.82, 0.50),
                                         cell("torch", "none", 0.10, 0.10, status="failed"),
                                         cell("jax", "inverse", 0.70, 0.60)])
    data = runs([sweep])
    assert sorted(data) == [("class_weights=inverse", "jax"), ("class_weights=none", "torch")]
    text = table(data)
    assert "| class_weights=none | torch | 2 | 81.0 ± 1.4 | 91.0 ± 1.4 | 45.0 ± 7.1 | 10.0 ± 0.0 |" in text
    assert "| class_weights=inverse | jax | 1 | 70.0 ± 0.0 |" in text


def test_two_sweeps_are_labelled_by_folder_and_plotted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write_sweep(tmp_path / "weights", [cell("torch", "none", 0.8, 0.4)])
    b = write_sweep(tmp_path / "uniform", [cell("torch", "none", 0.7, 0.6)])
    assert main([str(tmp_path / "t.png"), str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "| weights: class_weights=none | torch |" in out and "| uniform: class_weights=none | torch |" in out
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"
