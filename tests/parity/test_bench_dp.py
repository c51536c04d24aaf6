"""`seqbatch bench-dp` at a tiny size: every layout runs in its own processes and reports a record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.cli import main


def test_every_layout_reports_throughput_and_its_speedup_over_one_worker(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # Without the suite's shared compilation cache (tests/conftest.py): JAX processes that compile the
    # same program at once would read each other's half-written entries (a warning, then a compile).
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    out = tmp_path / "dp"
    assert main(["bench-dp", "--hidden", "8", "--batch-size", "16", "--min-seconds", "0.01", "--out", str(out),
                 "--no-progress"]) == 0
    report = json.loads((out / "dp.json").read_text())
    got = {(r["layout"], r["n"]) for r in report["records"]}
    assert got == {(layout, n) for layout in ("torch_procs", "jax_devices", "jax_procs") for n in (1, 2)}
    for r in report["records"]:
        assert r["examples_per_s"] == pytest.approx(16 / (r["step_ms"] / 1e3), rel=1e-2)  # step_ms is rounded
        base = next(b for b in report["records"] if b["n"] == 1 and b["layout"][:3] == r["layout"][:3])
        assert r["speedup"] == pytest.approx(r["examples_per_s"] / base["examples_per_s"], rel=1e-2)
        assert r["efficiency"] == pytest.approx(r["speedup"] / r["n"], rel=1e-2)
    assert sorted(p.name for p in out.iterdir()) == ["dp.json", "dp.md", "dp.png"]  # no scratch records left


def test_bad_flags_fail_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench-dp", "--batch-size", "15", "--out", str(tmp_path / "d")]) == 2
    assert "not divisible by 2" in capsys.readouterr().err
    assert main(["bench-dp", "--layouts", "torch_devices", "--out", str(tmp_path / "d")]) == 2
    assert "--layouts torch_devices" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()
