"""`seqbatch bench-scaling`: the grid it measures, the slopes it reports and the batches it builds."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from parity.scaling import IMPLS, QUICK_SWEEPS, batches, markdown, plan, slopes
from shared.cli import main


def test_quick_run_measures_every_impl_at_every_point(tmp_path: Path) -> None:
    out = tmp_path / "scaling"
    assert main(["bench-scaling", "--quick", "--min-seconds", "0.01", "--threads", "1", "--out", str(out),
                 "--no-progress"]) == 0
    report = json.loads((out / "scaling.json").read_text())
    got = {(r["sweep"], r["impl"], r[r["sweep"]]) for r in report["records"]}
    assert got == {(axis, impl, v) for axis, values in QUICK_SWEEPS.items() for v in values for impl in IMPLS}
    for r in report["records"]:
        assert r["step_ms"] > 0 and r["tokens_per_s"] > 0 and r["gflop_per_s"] > 0 and r["peak_mem_mb"] > 0
        others = {k: v for k, v in report["base"].items() if k != r["sweep"]}
        assert all(r[k] == v for k, v in others.items()), f"{r} left the base point off its own axis"
    md = (out / "scaling.md").read_text()
    assert "## sequence length (T)" in md and "Log-log slope of step time against B" in md
    assert (out / "scaling.png").read_bytes()[:4] == b"\x89PNG"


def test_slopes_name_a_quadratic_path_super_linear_and_a_linear_one_not() -> None:
    def rec(impl: str, t: int, ms: float) -> dict[str, object]:
        return {"sweep": "T", "impl": impl, "T": t, "step_ms": ms, "tokens_per_s": 1.0, "gflop_per_s": 1.0}

    recs = [rec("torch_packed", t, 0.01 * t * t) for t in (10, 100, 1000)]
    recs += [rec("jax_scan", t, 3.0 * t) for t in (10, 100, 1000)]
    assert [round(s, 6) for *_, s in slopes(recs, "T", "torch_packed")] == [2.0, 2.0]
    assert [round(s, 6) for *_, s in slopes(recs, "T", "jax_scan")] == [1.0, 1.0]
    report = {"records": recs, "machine": {"versions": {}}, "threads": 1, "base": {"T": 100, "B": 128, "H": 128}}
    lines = markdown(report).splitlines()
    assert "super-linear" in next(line for line in lines if line.startswith("- torch_packed"))
    assert "super-linear" not in next(line for line in lines if line.startswith("- jax_scan"))


def test_batches_are_ragged_within_half_to_full_length_and_padded_to_t() -> None:
    for t in (1, 7, 30):
        for b in batches(t, 64, 2, seed=1):
            assert b.tokens.shape == (64, t)
            assert b.lengths.min() >= math.ceil(t / 2) and b.lengths.max() <= t
            for row, n in zip(b.tokens, b.lengths, strict=True):
                assert (row[n:] == 0).all() and (row[:n] >= 2).all()
    assert len({int(n) for n in batches(30, 256, 1)[0].lengths}) > 5  # ragged, not one length


def test_plan_varies_one_axis_at_a_time_around_the_base() -> None:
    jobs = plan({"T": (10, 20), "B": (1,)}, {"T": 100, "B": 8, "H": 16}, ("jax_scan",))
    assert [(j["sweep"], j["T"], j["B"], j["H"]) for j in jobs] == [("T", 10, 8, 16), ("T", 20, 8, 16),
                                                                     ("B", 100, 1, 16)]


def test_bad_flags_fail_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench-scaling", "--impls", "torch_compiled", "--out", str(tmp_path / "s")]) == 2
    assert "--impls torch_compiled" in capsys.readouterr().err
    assert main(["bench-scaling", "--min-seconds", "0", "--out", str(tmp_path / "s")]) == 2
    assert not (tmp_path / "s").exists()
