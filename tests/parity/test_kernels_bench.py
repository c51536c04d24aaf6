"""`seqbatch bench-kernels` at a tiny size on the synthetic reviews: the report's structure, not speed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from shared.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


def test_bench_kernels_times_every_kernel_and_writes_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import jax

    monkeypatch.setenv("SEQBATCH_TORCH_DEVICE", "cpu")
    monkeypatch.delenv("SEQBATCH_TORCH_KERNEL", raising=False)
    out = tmp_path / "k"
    try:
        code = main(["bench-kernels", "--cells", "gru", "--shapes", "1bi", "--max-lens", "16,32", "--batch-size", "4",
                     "--pool", "1", "--max-train", "60", "--no-progress", "--out", str(out)])
    finally:
        jax.config.update("jax_default_device", None)
    assert code == 0
    report = json.loads((out / "kernels.json").read_text())
    rows = report["results"]
    assert {(r["impl"], r["max_len"]) for r in rows} == {
        (impl, L) for impl in ("torch_packed", "torch_padded", "jax_scan") for L in (16, 32)}
    for r in rows:
        assert r["step_ms"] > 0 and r["batch_size"] == 4 and 0 <= r["padding_waste"] < 1
    assert max(r["time_steps"] for r in rows if r["max_len"] == 16) <= 16 + 15  # padded to a bucket at most
    table = (out / "kernels.md").read_text()
    assert table.count("| gru | 1bi |") == 2 and "x |" in table
    assert (out / "kernels.png").read_bytes().startswith(PNG)
    assert "torch packed ms" in capsys.readouterr().out
    assert "SEQBATCH_TORCH_KERNEL" not in os.environ  # restored


def test_bench_kernels_names_a_bad_shape(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench-kernels", "--shapes", "4bi", "--out", "unused"]) == 2
    assert "--shapes 4bi: choose among 1, 3bi, 2bi, 1bi" in capsys.readouterr().err
