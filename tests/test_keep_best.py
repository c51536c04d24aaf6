"""--keep-best: the weights saved and tested are those of the best validation (the earliest among
equals), chosen on validation only; for a classifier the highest top-1, for a language model the
lowest loss. Scripted validation figures make the choice certain; a real run checks the saved file."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load_file

import shared.lm_training
import shared.training
from shared.backend import get_backend
from shared.cli import main
from shared.config import ModelConfig, TrainConfig
from shared.dataset import names_dataset
from shared.kinds.lm import LMConfig
from shared.lm_data import LMDataConfig, default_corpus, load_lm_data

TOP1 = [0.2, 0.6, 0.6, 0.4]  # validation top-1 at steps 1..4: the best is step 2, tied with step 3
NATS = [2.0, 1.5, 1.5, 1.8]  # validation loss at steps 1..4: the best is step 2, tied with step 3
BEST = 2


@pytest.fixture(autouse=True)
def _cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQBATCH_TORCH_DEVICE", "cpu")


def last_record(run: Path) -> dict[str, Any]:
    return json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])


def test_a_classifier_keeps_the_weights_of_its_best_validation(tiny_names_dir: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    backend = get_backend("torch")
    data = names_dataset(tiny_names_dir, seed=0)
    real = shared.training.evaluate
    seen: list[dict[str, np.ndarray]] = []  # the weights each validation judged

    def scripted(b: Any, model: Any, split: Any, **kw: Any) -> tuple[dict[str, float | int], np.ndarray]:
        if split is not data.val:
            return real(b, model, split, **kw)
        seen.append(b.to_params(model))
        top1 = TOP1[len(seen) - 1]
        report = {"top1": top1, "top2": top1, "balanced_accuracy": top1, "n": len(split), "loss": 1 - top1}
        return report, np.zeros((len(split), data.num_classes), np.float32)

    monkeypatch.setattr(shared.training, "evaluate", scripted)
    cfg = ModelConfig(vocab_size=len(data.vocab), num_classes=data.num_classes, cell="gru", hidden_size=6,
                      embed_dim=4)
    train = TrainConfig(optimizer="adam", lr=0.05, batch_size=8, steps=len(TOP1), eval_every=1)
    result = shared.training.fit(backend, cfg, train, data, tmp_path / "run", progress=False, log=lambda m: None,
                                 keep_best=True)
    assert len(seen) == len(TOP1)
    assert result.val["top1"] == max(TOP1)
    final = last_record(tmp_path / "run")
    assert final["best_step"] == BEST and final["best_val_top1"] == max(TOP1)
    saved = load_file(str(tmp_path / "run" / "model.safetensors"))
    kept = seen[BEST - 1]
    assert all(np.array_equal(saved[k], kept[k]) for k in kept), "the saved weights are not the best validation's"
    assert not all(np.array_equal(saved[k], seen[-1][k]) for k in kept), "the last weights were saved"
    tested = backend.to_params(result.model)
    assert all(np.array_equal(tested[k], kept[k]) for k in kept), "the test figure is not the best weights'"


def test_a_language_model_keeps_the_weights_of_its_lowest_validation_loss(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    backend = get_backend("torch")
    text = tmp_path / "corpus.txt"
    text.write_text(default_corpus()[0][:6_000])
    data = load_lm_data(text, LMDataConfig())
    real = shared.lm_training.evaluate_split
    seen: list[dict[str, np.ndarray]] = []

    def scripted(b: Any, model: Any, d: Any, split: str, seq_length: int) -> dict[str, float | int]:
        if split != "val":
            return real(b, model, d, split, seq_length)
        seen.append(b.to_params(model))
        nats = NATS[len(seen) - 1]
        return {"nats_per_char": nats, "bits_per_char": nats / np.log(2), "perplexity": float(np.exp(nats)), "n": 1}

    monkeypatch.setattr(shared.lm_training, "evaluate_split", scripted)
    cfg = LMConfig(vocab_size=len(data.vocab), cell="gru", num_layers=1, hidden_size=8, embed_dim=4)
    train = TrainConfig(optimizer="adam", lr=0.01, batch_size=4, steps=len(NATS), eval_every=1)
    shared.lm_training.fit_lm(backend, cfg, train, data, tmp_path / "run", seq_length=16, progress=False,
                              log=lambda m: None, keep_best=True)
    final = last_record(tmp_path / "run")
    assert final["best_step"] == BEST and final["best_val_nats_per_char"] == min(NATS)
    saved = load_file(str(tmp_path / "run" / "model.safetensors"))
    kept = seen[BEST - 1]
    assert all(np.array_equal(saved[k], kept[k]) for k in kept), "the saved weights are not the best validation's"


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_the_saved_checkpoint_scores_the_best_validation_figure(tiny_names_dir: Path, tmp_path: Path) -> None:
    """End to end: the model file, evaluated again on validation, gives the figure of the step it
    claims to come from, and that step is the first of the best validations."""
    out = tmp_path / "run"
    code, _, err = cli("train", "--data", str(tiny_names_dir), "--cell", "gru", "--hidden", "8", "--embed-dim", "4",
                       "--optimizer", "adam", "--lr", "0.05", "--batch-size", "8", "--steps", "8", "--eval-every", "1",
                       "--keep-best", "--out", str(out), "--no-progress")
    assert code == 0, err
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    vals = [r for r in records if r.get("split") == "val"]
    best = max(r["top1"] for r in vals)
    first_best = next(r for r in vals if r["top1"] == best)
    assert records[-1]["best_step"] == first_best["step"] and records[-1]["best_val_top1"] == best
    code, stdout, err = cli("eval", "--checkpoint", str(out / "model.safetensors"), "--data", str(tiny_names_dir),
                            "--split", "val")
    assert code == 0, err
    again = json.loads(stdout)
    assert again["top1"] == best
    assert again["loss"] == pytest.approx(first_best["loss"], abs=1e-6)
