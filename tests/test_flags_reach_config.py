"""Every `seqbatch train` flag reaches the run unchanged: non-default values show up in config.json's
`model` and `train` entries, in the checkpoint's own config, and (--keep-best) in what the run did."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from shared import checkpoint
from shared.cli import main


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def records(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def assert_reached(run: Path, model: dict[str, Any], train: dict[str, Any]) -> None:
    """config.json's model/train entries and both checkpoints' configs hold the given values."""
    config = json.loads((run / "config.json").read_text())
    assert {k: config["model"][k] for k in model} == model
    assert {k: config["train"][k] for k in train} == train
    for path in (run / "model.safetensors", run / "state" / "model.safetensors"):
        saved = checkpoint.load(path).config
        assert {k: getattr(saved, k) for k in model} == model, path


@pytest.fixture(autouse=True)
def _cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQBATCH_TORCH_DEVICE", "cpu")


def test_classifier_flags_reach_the_model_and_training_config(tiny_names_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, _, err = cli("train", "--data", str(tiny_names_dir), "--cell", "gru", "--layers", "2", "--hidden", "6",
                       "--embed-dim", "3", "--dropout", "0.25", "--bidirectional", "--dtype", "float64",
                       "--optimizer", "adam", "--lr", "0.02", "--momentum", "0.5", "--batch-size", "5",
                       "--clip-norm", "0.7", "--sampler", "epoch", "--eval-every", "2", "--seed", "3", "--steps", "4",
                       "--keep-best", "--out", str(out), "--no-progress")
    assert code == 0, err
    assert_reached(out, {"cell": "gru", "num_layers": 2, "hidden_size": 6, "embed_dim": 3, "dropout": 0.25,
                         "bidirectional": True, "dtype": "float64"},
                   {"optimizer": "adam", "lr": 0.02, "momentum": 0.5, "batch_size": 5, "clip_norm": 0.7,
                    "sampler": "epoch", "eval_every": 2, "seed": 3, "steps": 4, "epochs": None})
    history = records(out)
    assert [r["step"] for r in history if r.get("split") == "val"] == [2, 4]
    assert "best_step" in history[-1], "--keep-best was given: the run must pick the best validation"


def test_no_keep_best_turns_the_imdb_default_off(tmp_path: Path) -> None:
    out = tmp_path / "imdb"
    code, _, err = cli("train", "--task", "imdb", "--max-train", "100", "--max-test", "40", "--hidden", "5",
                       "--embed-dim", "6", "--max-len", "16", "--bucket", "16", "--epochs", "1", "--clip-norm", "1.5",
                       "--no-keep-best", "--out", str(out), "--no-progress")
    assert code == 0, err
    assert_reached(out, {"hidden_size": 5, "embed_dim": 6}, {"epochs": 1, "steps": None, "clip_norm": 1.5})
    assert "best_step" not in records(out)[-1], "--no-keep-best: the last weights are tested, no best is chosen"


def test_language_model_flags_reach_the_model_and_training_config(tmp_path: Path) -> None:
    from shared.lm_data import default_corpus

    text = tmp_path / "corpus.txt"
    text.write_text(default_corpus()[0][:6_000])
    out = tmp_path / "lm"
    code, _, err = cli("train", "--task", "charlm", "--data", str(text), "--cell", "gru", "--layers", "1",
                       "--hidden", "8", "--embed-dim", "4", "--dropout", "0.1", "--optimizer", "sgd", "--lr", "0.01",
                       "--momentum", "0.8", "--batch-size", "4", "--clip-norm", "2.5", "--seq-length", "12",
                       "--steps", "2", "--eval-every", "1", "--seed", "2", "--no-keep-best", "--out", str(out),
                       "--no-progress")
    assert code == 0, err
    assert_reached(out, {"cell": "gru", "num_layers": 1, "hidden_size": 8, "embed_dim": 4, "dropout": 0.1},
                   {"optimizer": "sgd", "lr": 0.01, "momentum": 0.8, "batch_size": 4, "clip_norm": 2.5,
                    "eval_every": 1, "seed": 2, "steps": 2})
    assert json.loads((out / "config.json").read_text())["seq_length"] == 12
    assert "best_step" not in records(out)[-1]
