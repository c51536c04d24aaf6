"""`seqbatch bench-lm` on a tiny size: every implementation runs, records have the documented keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.cli import main


def test_bench_lm_writes_records_for_ours_and_the_anchors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench"
    code = main(["bench-lm", "--sizes", "tiny", "--cells", "lstm", "--min-seconds", "0.01", "--threads", "1",
                 "--out", str(out), "--no-progress"])
    assert code == 0
    result = json.loads((out / "bench.json").read_text())
    impls = {(r["backend"], r["impl"]) for r in result["records"]}
    assert impls == {("torch", "seqbatch"), ("jax", "seqbatch"), ("torch", "nn.LSTM"), ("jax", "flax nn.RNN")}
    for r in result["records"]:
        keys = {"task", "backend", "impl", "cell", "hidden", "batch_size", "seq_length", "device", "chars_per_s"}
        assert keys <= r.keys()
        assert r["task"] == "charlm" and r["chars_per_s"] > 0 and r["seq_length"] == 100
    assert (out / "throughput.png").read_bytes()[:4] == b"\x89PNG"
    assert "chars/s" in (out / "bench.md").read_text()


def test_bench_lm_refuses_bad_flags_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench-lm", "--sizes", "huge", "--out", str(tmp_path / "b")]) == 2
    assert main(["bench-lm", "--threads", "0", "--out", str(tmp_path / "b")]) == 2
    assert "seqbatch: error: --threads" in capsys.readouterr().err
