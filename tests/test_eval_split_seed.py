"""The split seed travels from `train --seed` to `eval`: a run trained with a non-default seed is
evaluated on its own validation and test splits (its figures come back exactly), and `eval --seed`
chooses another split on purpose."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shared.cli import run_captured as cli

SEED = 7




@pytest.fixture(autouse=True)
def _cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQBATCH_TORCH_DEVICE", "cpu")


@pytest.fixture(scope="module")
def run(tiny_names_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("seeded") / "run"
    code, _, err = cli("train", "--data", str(tiny_names_dir), "--cell", "gru", "--hidden", "8", "--embed-dim", "4",
                       "--optimizer", "adam", "--lr", "0.05", "--batch-size", "8", "--steps", "4", "--eval-every", "4",
                       "--seed", str(SEED), "--out", str(out), "--no-progress")
    assert code == 0, err
    return out


def evaluate(run: Path, data: Path, *extra: str) -> dict[str, Any]:
    code, out, err = cli("eval", "--checkpoint", str(run / "model.safetensors"), "--data", str(data), *extra)
    assert code == 0, err
    return json.loads(out)


def test_eval_reproduces_the_figures_of_a_run_with_another_seed(run: Path, tiny_names_dir: Path) -> None:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    val = next(r for r in records if r.get("split") == "val" and r["step"] == 4)
    test = records[-1]
    for split, recorded in (("val", val), ("test", test)):
        again = evaluate(run, tiny_names_dir, "--split", split)
        assert again["n"] == recorded["n"] and again["top1"] == recorded["top1"], split
        assert again["loss"] == pytest.approx(recorded["loss"], abs=1e-6), f"{split}: another split was evaluated"


def test_eval_seed_flag_chooses_another_split(run: Path, tiny_names_dir: Path) -> None:
    own = evaluate(run, tiny_names_dir, "--split", "val")
    assert evaluate(run, tiny_names_dir, "--split", "val", "--seed", str(SEED)) == own
    other = evaluate(run, tiny_names_dir, "--split", "val", "--seed", "0")
    assert other["loss"] != pytest.approx(own["loss"], abs=1e-6), "--seed 0 evaluated the run's own split"
