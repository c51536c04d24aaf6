"""`seqbatch bench-lm` on a tiny size: every implementation runs, records have the documented keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from parity.bench_lm import EMBED, VOCAB, step_flops
from shared.cli import main
from shared.kinds.lm import LMConfig


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
        cfg = LMConfig(VOCAB, cell=r["cell"], num_layers=2, hidden_size=r["hidden"], embed_dim=EMBED)
        rate = step_flops(cfg, r["batch_size"], 100) / (r["step_ms"] / 1e3)
        assert r["gflop_per_s"] == pytest.approx(rate / 1e9, rel=1e-2)  # step_ms is rounded to the microsecond
        assert r["flops_fraction"] == pytest.approx(rate / max(result["matmul_peak_flops"].values()), rel=1e-2)
        assert r["peak_mem_mb"] > 0
    assert (out / "throughput.png").read_bytes()[:4] == b"\x89PNG"
    assert "chars/s" in (out / "bench.md").read_text()


def test_bench_lm_refuses_bad_flags_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench-lm", "--sizes", "huge", "--out", str(tmp_path / "b")]) == 2
    assert main(["bench-lm", "--threads", "0", "--out", str(tmp_path / "b")]) == 2
    assert "seqbatch: error: --threads" in capsys.readouterr().err


def test_step_flops_count_both_projections_of_every_layer_and_the_head_three_times() -> None:
    # LSTM, hidden 5, embedding 4, vocabulary 10, batch 2 x 3 characters:
    # layer 0: 2*4*5*4 (input) + 2*4*5*5 (hidden); layer 1: 2 * 2*4*5*5; head 2*5*10 -> 860 per character
    cfg = LMConfig(10, cell="lstm", num_layers=2, hidden_size=5, embed_dim=4)
    assert step_flops(cfg, 2, 3) == 3 * 860 * 6
    gru = LMConfig(10, cell="gru", num_layers=1, hidden_size=5, embed_dim=None)  # one-hot: a lookup
    assert step_flops(gru, 1, 1) == 3 * (2 * 3 * 5 * 5 + 2 * 5 * 10)
