"""`seqbatch train --resume` continues a run with its own flags: any flag that would change what
the run computes is refused with one line naming it and the run's value; the run is left as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.cli import run_captured as cli


@pytest.fixture(autouse=True)
def _cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQBATCH_TORCH_DEVICE", "cpu")


@pytest.fixture(scope="module")
def run(tiny_names_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("resume") / "run"
    code, _, err = cli("train", "--data", str(tiny_names_dir), "--hidden", "6", "--embed-dim", "4", "--batch-size",
                       "8", "--steps", "2", "--eval-every", "2", "--seed", "4", "--out", str(out), "--no-progress")
    assert code == 0, err
    return out


@pytest.mark.parametrize("flag, value, has", [
    ("--seed", "9", "4"), ("--hidden", "7", "6"), ("--batch-size", "3", "8"), ("--cell", "gru", "lstm"),
    ("--dropout", "0.5", ""), ("--clip-norm", "1.0", ""), ("--sampler", "epoch", ""), ("--optimizer", "adam", ""),
])
def test_a_flag_that_changes_the_run_is_refused(run: Path, flag: str, value: str, has: str) -> None:
    """`has`: the run's value as the message names it ("": the task default, which the run left unset)."""
    before = (run / "metrics.jsonl").read_bytes()
    code, _, err = cli("train", "--resume", str(run), flag, value, "--steps", "3", "--no-progress")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("seqbatch: error: "), err
    said = f"has {has})" if has else "left it at its default)"
    assert f"{flag} {value} (the run {said}" in lines[0]
    assert (run / "metrics.jsonl").read_bytes() == before
