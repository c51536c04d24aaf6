"""Class imbalance options (issue 14, study 3): class-weighted loss, the class-uniform sampler and
keep-best on balanced accuracy. What users rely on: the weights are scikit-learn's "balanced" ones
(or their roots), the loss is torch's weighted mean on both backends, the uniform sampler really
draws the classes equally often, and the CLI records and refuses what it should."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import shared.training
from shared.backend import get_backend
from shared.batching import Sampler, pad
from shared.cli import main
from shared.config import ModelConfig, TrainConfig
from shared.dataset import names_dataset
from shared.errors import SeqbatchError
from shared.imbalance import class_weights
from shared.metrics import cross_entropy

LABELS = np.array([0] * 60 + [1] * 30 + [2] * 10)


def test_inverse_weights_give_every_class_the_same_total_weight() -> None:
    w = np.array(class_weights(LABELS, "inverse", 3))
    counts = np.bincount(LABELS)
    np.testing.assert_allclose(w * counts, len(LABELS) / 3)  # n / (C * n_c) * n_c
    np.testing.assert_allclose(w[counts > 0] @ counts / len(LABELS), 1.0)  # mean example weight 1


def test_sqrt_weights_are_the_roots_and_none_is_empty() -> None:
    np.testing.assert_allclose(class_weights(LABELS, "sqrt", 3), np.sqrt(class_weights(LABELS, "inverse", 3)))
    assert class_weights(LABELS, "none", 3) == ()


def test_a_class_without_training_examples_gets_weight_one() -> None:
    w = class_weights(np.array([0, 0, 2]), "inverse", 4)
    assert w[1] == w[3] == 1.0 and w[0] < w[2]


def test_bad_weight_requests_are_user_errors() -> None:
    with pytest.raises(SeqbatchError, match="class weights must be one of"):
        class_weights(LABELS, "balanced", 3)
    with pytest.raises(SeqbatchError, match="labels must be in"):
        class_weights(LABELS, "inverse", 2)
    with pytest.raises(SeqbatchError, match="class_weights must be > 0"):
        TrainConfig(class_weights=(1.0, 0.0))


@pytest.mark.parametrize("name", ["torch", "jax"])
def test_the_weighted_step_loss_is_torchs_weighted_mean(name: str) -> None:
    """The loss a train step reports = sum w[y] ce / sum w[y] of the logits before the step
    (not mean(w[y] ce), not the unweighted mean)."""
    b = get_backend(name)
    cfg = ModelConfig(12, 3, cell="gru", hidden_size=6, embed_dim=4)
    rng = np.random.default_rng(0)
    batch = pad([rng.integers(1, 12, n).astype(np.int32) for n in (3, 5, 2, 7, 4, 6)], [0, 0, 0, 0, 1, 2])
    weights = (0.5, 2.0, 4.0)
    model = b.init(cfg, 0)
    ce = cross_entropy(b.logits(model, batch), batch.labels)
    w = np.asarray(weights)[batch.labels]
    state = b.train_state(model, TrainConfig(optimizer="sgd", lr=0.1, batch_size=6, steps=1, class_weights=weights))
    _, metrics = b.train_step(state, batch)
    assert float(metrics["loss"]) == pytest.approx((w * ce).sum() / w.sum(), rel=1e-5)
    assert abs(float(metrics["loss"]) - ce.mean()) > 1e-3  # the weights change the figure here


def test_the_uniform_sampler_draws_every_class_equally_often() -> None:
    sampler = Sampler(LABELS, 50, kind="uniform", seed=3)
    drawn = np.concatenate([b for _ in range(200) for b in sampler.epoch()])
    share = np.bincount(LABELS[drawn], minlength=3) / len(drawn)
    np.testing.assert_allclose(share, 1 / 3, atol=0.02)
    assert set(np.unique(drawn[LABELS[drawn] == 2])) == set(np.flatnonzero(LABELS == 2))  # all rare ones seen
    again = Sampler(LABELS, 50, kind="uniform", seed=3).epoch()
    assert all(np.array_equal(x, y) for x, y in zip(again, Sampler(LABELS, 50, kind="uniform", seed=3).epoch(),
                                                    strict=True))
    assert len(again) == len(LABELS) // 50


def test_keep_best_can_select_on_balanced_accuracy(tiny_names_dir: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Scripted validations where top-1 and balanced accuracy peak at different steps."""
    top1, balanced = [0.9, 0.5, 0.7], [0.3, 0.8, 0.6]
    data = names_dataset(tiny_names_dir, seed=0)
    real, seen = shared.training.evaluate, []

    def scripted(b: Any, model: Any, split: Any, **kw: Any) -> tuple[dict[str, float | int], np.ndarray]:
        if split is not data.val:
            return real(b, model, split, **kw)
        i = len(seen)
        seen.append(i)
        return ({"top1": top1[i], "top2": 1.0, "balanced_accuracy": balanced[i], "n": len(split), "loss": 1.0},
                np.zeros((len(split), data.num_classes), np.float32))

    monkeypatch.setattr(shared.training, "evaluate", scripted)
    cfg = ModelConfig(len(data.vocab), data.num_classes, cell="gru", hidden_size=4, embed_dim=4)
    train = TrainConfig(optimizer="adam", lr=0.05, batch_size=8, steps=3, eval_every=1)
    for select, step in (("top1", 1), ("balanced_accuracy", 2)):
        seen.clear()
        result = shared.training.fit(get_backend("torch"), cfg, train, data, progress=False, log=lambda m: None,
                                     keep_best=True, select=select)
        assert result.history[-1]["best_step"] == step and result.history[-1]["selected_on"] == select


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_cli_records_the_weights_and_the_selection(tiny_names_dir: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    code, _, err = run(capsys, "train", "--data", str(tiny_names_dir), "--hidden", "4", "--steps", "4",
                       "--eval-every", "2", "--class-weights", "inverse", "--sampler", "uniform", "--keep-best",
                       "--select", "balanced_accuracy", "--no-progress", "--out", str(out))
    assert code == 0, err
    config = json.loads((out / "config.json").read_text())
    data = names_dataset(tiny_names_dir, seed=0)
    assert config["train"]["class_weights"] == list(class_weights(data.train.labels, "inverse", data.num_classes))
    assert config["train"]["sampler"] == "uniform"
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["selected_on"] == "balanced_accuracy"


@pytest.mark.parametrize("argv", [
    ["--task", "charlm", "--class-weights", "sqrt"],
    ["--task", "wine", "--select", "balanced_accuracy"],
    ["--class-weights", "half"],
])
def test_the_options_are_refused_where_they_mean_nothing(argv: list[str], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:  # argparse's choices, or our one-line error
        code = main(["train", *argv, "--out", str(tmp_path / "r"), "--no-progress"])
        raise SystemExit(code)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert re.match(r"seqbatch( train)?: error: ", err[-1]) and "Traceback" not in "".join(err)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("extra, selected", [([], "balanced_accuracy"), (["--select", "top1"], "top1")])
def test_names_keep_best_selects_on_balanced_accuracy_by_default(extra: list[str], selected: str,
                                                                  tiny_names_dir: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Study 3's pick: keep-best on validation balanced accuracy is the names default."""
    out = tmp_path / "run"
    code, _, err = run(capsys, "train", "--data", str(tiny_names_dir), "--hidden", "4", "--steps", "4",
                       "--eval-every", "2", "--keep-best", *extra, "--no-progress", "--out", str(out))
    assert code == 0, err
    assert json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])["selected_on"] == selected
