"""The language model through the backend contract, on both backends (written once, parametrized)."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from shared.backend import Backend, get_backend, kind_module
from shared.config import TrainConfig
from shared.kinds.lm import LMBatch, LMConfig
from shared.lm_data import doc_batch

CFG = LMConfig(vocab_size=11, cell="lstm", num_layers=2, hidden_size=8, embed_dim=5)


@pytest.fixture(params=["torch", "jax"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Backend:
    monkeypatch.setenv("SEQBATCH_TORCH_DEVICE", "cpu")
    return get_backend(request.param)


def window(ids: np.ndarray, reset: bool) -> LMBatch:
    x = ids[:, :-1].astype(np.int32)
    return LMBatch(x, ids[:, 1:].astype(np.int32), np.full(len(ids), x.shape[1], np.int32), reset=reset)


@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru"])
def test_the_carried_state_continues_the_sequence_exactly(backend: Backend, cell: str) -> None:
    """Window 2 started from window 1's state gives the logits of reading both windows at once."""
    cfg = dataclasses.replace(CFG, cell=cell, dtype="float64")
    lm = kind_module(backend, cfg)
    model = backend.init(cfg, seed=3)
    ids = np.random.default_rng(0).integers(2, 11, (3, 21))
    whole, _ = lm.logits(model, window(ids, True))
    first, carry = lm.logits(model, window(ids[:, :11], True))
    second, _ = lm.logits(model, window(ids[:, 10:], False), carry)
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), whole, atol=1e-12)
    reset, _ = lm.logits(model, window(ids[:, 10:], True), carry)  # reset: the carry is ignored
    assert np.abs(reset - second).max() > 1e-3


def test_the_state_returned_for_a_document_is_the_one_after_its_last_real_step(backend: Backend) -> None:
    cfg = dataclasses.replace(CFG, dtype="float64")
    lm = kind_module(backend, cfg)
    model = backend.init(cfg, seed=1)
    docs = [np.array([1, 4, 5, 6, 1]), np.array([1, 7, 1])]
    _, carry = lm.logits(model, doc_batch(docs, multiple=8))
    for i, d in enumerate(docs):
        _, alone = lm.logits(model, doc_batch([d], multiple=1))
        for c, a in zip(carry, alone, strict=True):
            np.testing.assert_allclose(c[:, i], a[:, 0], atol=1e-12)


def test_padding_counts_for_nothing_in_the_loss(backend: Backend) -> None:
    lm = kind_module(backend, CFG)
    model = backend.init(CFG, seed=0)
    batch = doc_batch([np.array([1, 4, 5, 6, 7, 1]), np.array([1, 2, 1])], multiple=8)
    junk = dataclasses.replace(batch, inputs=np.where(batch.mask, batch.inputs, 9).astype(np.int32),
                               targets=np.where(batch.mask, batch.targets, 3).astype(np.int32))
    assert lm.loss(model, junk) == pytest.approx(lm.loss(model, batch), abs=1e-7)
    per_token, _ = lm.losses(model, junk)
    assert (per_token[~batch.mask] == 0).all()
    # the mean is over real positions: (sum of token losses) / 7, not / 16
    assert lm.loss(model, batch) == pytest.approx(float(per_token.sum()) / 7, rel=1e-6)


def test_train_step_keeps_the_state_for_the_next_window_and_resets_when_told(backend: Backend) -> None:
    lm = kind_module(backend, CFG)
    model = backend.init(CFG, seed=0)
    ids = np.random.default_rng(1).integers(2, 11, (4, 13))
    w1, w2 = window(ids[:, :7], True), window(ids[:, 6:], False)
    _, expected = lm.logits(model, w1)  # the state after window 1, before any update
    state = backend.train_state(model, TrainConfig(optimizer="sgd", lr=0.1, batch_size=4, steps=2))
    state, _ = backend.train_step(state, w1)
    for got, want in zip(state.carry, expected, strict=True):
        np.testing.assert_allclose(np.asarray(got), want, atol=1e-6)
    trained = backend.model_of(state)
    carried = lm.loss(trained, w2, tuple(np.asarray(c) for c in state.carry))
    # A fresh state from the same weights, made before the step below (JAX's step donates its inputs).
    fresh = backend.train_state(trained, TrainConfig(optimizer="sgd", lr=0.1, batch_size=4, steps=2))
    _, metrics = backend.train_step(state, w2)
    assert float(metrics["loss"]) == pytest.approx(carried, abs=1e-6)
    _, reset_metrics = backend.train_step(fresh, dataclasses.replace(w2, reset=True))
    assert abs(float(reset_metrics["loss"]) - carried) > 1e-4


@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_dropout_acts_in_training_only(backend: Backend, dropout: float) -> None:
    """With lr ~ 0, every training step sees the same weights: equal losses (and equal to the
    evaluation loss) without dropout; a fresh mask each step, so different losses, with it."""
    cfg = dataclasses.replace(CFG, dropout=dropout, hidden_size=32)
    lm = kind_module(backend, cfg)
    params = backend.to_params(backend.init(cfg, seed=0))
    params["head.weight"] = params["head.weight"] * 30  # so that the loss depends strongly on what is dropped
    model = backend.from_params(cfg, params)
    batch = window(np.random.default_rng(2).integers(2, 11, (8, 30)), True)
    eval_loss = lm.loss(model, batch)
    assert lm.loss(model, batch) == eval_loss  # evaluation is deterministic
    state = backend.train_state(model, TrainConfig(optimizer="sgd", lr=1e-12, momentum=0.0, batch_size=8, steps=3))
    train_losses = []
    for _ in range(3):
        state, metrics = backend.train_step(state, batch)
        train_losses.append(float(metrics["loss"]))
    if dropout == 0:
        np.testing.assert_allclose(train_losses, eval_loss, atol=1e-6)
    else:
        assert min(abs(a - b) for a, b in itertools.combinations([*train_losses, eval_loss], 2)) > 1e-3


def test_a_short_run_learns_a_repetitive_text(backend: Backend) -> None:
    cfg = LMConfig(vocab_size=8, cell="gru", num_layers=1, hidden_size=24, embed_dim=8)
    lm = kind_module(backend, cfg)
    model = backend.init(cfg, seed=0)
    text = np.tile(np.array([2, 3, 4, 5, 6, 7]), 200)
    from shared.lm_data import stream_windows

    windows = list(stream_windows(text, 4, 20))
    before = np.mean([lm.loss(model, w) for w in windows])
    state = backend.train_state(model, TrainConfig(optimizer="adam", lr=0.01, batch_size=4, steps=60))
    for _ in range(4):
        for w in windows:
            state, _ = backend.train_step(state, w)
    after = np.mean([lm.loss(backend.model_of(state), w) for w in windows])
    assert before > 1.5 and after < 0.2
