"""Training through the backend contract, on both backends: single steps, and a short run that must
learn something. Written once and parametrized, since both backends promise the same behaviour."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from shared.backend import Backend
from shared.batching import pad
from shared.config import ModelConfig, TrainConfig
from shared.dataset import Dataset, names_dataset
from shared.training import fit


@pytest.fixture(scope="module")
def names() -> Dataset:
    return names_dataset(None)  # the embedded default: always present, 15 labels


def tiny_batch(seed: int = 0):
    rng = np.random.default_rng(seed)
    return pad([rng.integers(2, 9, n) for n in (2, 7, 4, 5)], [0, 1, 2, 1])


TINY = ModelConfig(vocab_size=9, num_classes=3, cell="lstm", num_layers=2, hidden_size=8, embed_dim=4)


def test_train_step_reports_loss_and_grad_norm_and_lowers_the_loss(backend: Backend) -> None:
    model = backend.init(TINY, seed=0)
    batch = tiny_batch()
    before = backend.loss(model, batch)
    state = backend.train_state(model, TrainConfig(optimizer="adam", lr=0.05, steps=30))
    first = None
    for _ in range(30):
        state, metrics = backend.train_step(state, batch)
        first = float(metrics["loss"]) if first is None else first
        assert float(metrics["grad_norm"]) > 0
    assert first == pytest.approx(before, rel=1e-5)  # the loss reported is the one before the update
    assert backend.loss(backend.model_of(state), batch) < 0.5 * before


def test_clipping_bounds_the_update(backend: Backend) -> None:
    """torch's formula exactly: the gradient scaled by max_norm / (norm + 1e-6). In float64 the 1e-6
    is a relative 5e-6 here, a million times what float64 rounding leaves."""
    batch = tiny_batch()
    cfg64 = dataclasses.replace(TINY, dtype="float64")
    start = backend.to_params(backend.init(cfg64, seed=0))
    clip = 1e-3
    cfg = TrainConfig(optimizer="sgd", lr=1.0, momentum=0.0, steps=1, clip_norm=clip)
    state, metrics = backend.train_step(backend.train_state(backend.init(cfg64, seed=0), cfg), batch)
    after = backend.to_params(backend.model_of(state))
    step = np.sqrt(sum(((after[k] - start[k]) ** 2).sum() for k in start))
    norm = float(metrics["grad_norm"])
    assert norm > 1e-3  # reported before clipping
    assert step == pytest.approx(norm * clip / (norm + 1e-6), rel=1e-9)  # lr 1 x the clipped gradient


def test_a_bad_step_changes_nothing(backend: Backend) -> None:
    """Every step above a tiny --max-loss is bad: skipped, the weights stay bit for bit as they were;
    under on_nan="stop" the state freezes at the first one."""
    batch = tiny_batch()
    start = backend.to_params(backend.init(TINY, seed=0))
    for on_nan in ("skip", "stop"):
        cfg = TrainConfig(optimizer="adam", lr=0.1, steps=3, max_loss=1e-9, on_nan=on_nan)
        state = backend.train_state(backend.init(TINY, seed=0), cfg)
        for _ in range(3):
            state, metrics = backend.train_step(state, batch)
            assert not bool(metrics["ok"])
        after = backend.to_params(backend.model_of(state))
        assert all(np.array_equal(start[k], after[k]) for k in start), on_nan


def test_same_seed_same_trajectory(backend: Backend) -> None:
    cfg = TrainConfig(optimizer="adam", lr=0.01, steps=5, seed=3)
    dropout_cfg = dataclasses.replace(TINY, dropout=0.3)  # dropout masks come from the seed too

    def run() -> list[float]:
        state = backend.train_state(backend.init(dropout_cfg, seed=3), cfg)
        losses = []
        for i in range(5):
            state, metrics = backend.train_step(state, tiny_batch(i))
            losses.append(float(metrics["loss"]))
        return losses

    assert run() == run()


def test_short_training_beats_the_majority_class(backend: Backend, names: Dataset) -> None:
    model_cfg = ModelConfig(vocab_size=len(names.vocab), num_classes=names.num_classes, cell="gru",
                            hidden_size=32, embed_dim=16)
    train_cfg = TrainConfig(optimizer="adam", lr=0.01, batch_size=64, steps=100, eval_every=50, seed=0)
    result = fit(backend, model_cfg, train_cfg, names, None, progress=False, log=lambda *a, **k: None)
    majority = np.bincount(names.test.labels).max() / len(names.test)
    assert result.test["n"] == len(names.test)
    assert result.test["top1"] > majority + 0.2, f"top1 {result.test['top1']:.3f} vs majority {majority:.3f}"
    assert result.test["balanced_accuracy"] > 2 / names.num_classes
    losses = [r["loss"] for r in result.history if "split" not in r]
    assert len(losses) == 100
    assert np.mean(losses[-10:]) < 0.6 * np.mean(losses[:10])
