"""Dropout, observed from outside the model on both backends: applied in training at the configured
rate, between layers (and, for the language model, before the head); absent in evaluation.

One SGD step (lr 1, no momentum, no clipping) on one sequence of one token makes the update of a
weight matrix that reads a dropped activation a matrix whose column for each dropped unit is zero:
the share of zero columns is the dropout rate (binomially, over H units).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from shared.backend import Backend, kind_module
from shared.batching import pad
from shared.config import ModelConfig, TrainConfig
from shared.kinds.lm import LMBatch, LMConfig

H = 600  # units: the share of dropped ones has a standard deviation of 0.019 at rate 0.3
RATE = 0.3
SGD = TrainConfig(optimizer="sgd", lr=1.0, momentum=0.0, steps=1, max_loss=None)


def dropped_share(before: dict[str, np.ndarray], after: dict[str, np.ndarray], name: str) -> float:
    """Share of the input units whose column of `name`'s update is exactly zero."""
    delta = after[name].astype(np.float64) - before[name]
    return float(np.mean(np.all(delta == 0, axis=0)))


def one_step(backend: Backend, cfg: Any, batch: Any) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], Any]:
    model = backend.init(cfg, seed=0)
    before = backend.to_params(model)
    state, _ = backend.train_step(backend.train_state(model, SGD), batch)
    return before, backend.to_params(backend.model_of(state)), backend.model_of(state)


def classifier_case() -> tuple[ModelConfig, Any]:
    cfg = ModelConfig(vocab_size=5, num_classes=3, cell="gru", num_layers=2, hidden_size=H, embed_dim=4, dropout=RATE)
    return cfg, pad([np.array([2])], [1], multiple=1)


def lm_case() -> tuple[LMConfig, LMBatch]:
    cfg = LMConfig(vocab_size=6, cell="lstm", num_layers=2, hidden_size=H, embed_dim=4, dropout=RATE)
    one = np.array([[2]], np.int32)
    return cfg, LMBatch(one, one + 1, np.array([1], np.int32))


def test_the_classifier_drops_units_between_layers_at_the_configured_rate(backend: Backend) -> None:
    cfg, batch = classifier_case()
    before, after, _ = one_step(backend, cfg, batch)
    share = dropped_share(before, after, "rnn.weight_ih_l1")
    assert abs(share - RATE) < 0.08, share
    assert dropped_share(before, after, "rnn.weight_ih_l0") == 0  # the input (an embedding) is not dropped


def test_the_language_model_drops_units_between_layers_and_before_the_head(backend: Backend) -> None:
    cfg, batch = lm_case()
    before, after, _ = one_step(backend, cfg, batch)
    for name in ("rnn.weight_ih_l1", "head.weight"):
        share = dropped_share(before, after, name)
        assert abs(share - RATE) < 0.08, (name, share)


def test_without_dropout_no_unit_is_dropped(backend: Backend) -> None:
    cfg, batch = classifier_case()
    before, after, _ = one_step(backend, dataclasses.replace(cfg, dropout=0.0), batch)
    assert dropped_share(before, after, "rnn.weight_ih_l1") == 0


@pytest.mark.parametrize("kind", ["classifier", "lm"])
def test_evaluation_applies_no_dropout(backend: Backend, kind: str) -> None:
    """Logits of a trained dropout model are deterministic and equal those of the same weights
    loaded without dropout."""
    cfg, batch = classifier_case() if kind == "classifier" else lm_case()
    _, after, model = one_step(backend, cfg, batch)
    plain = backend.from_params(dataclasses.replace(cfg, dropout=0.0), after)
    if kind == "classifier":
        first, again, without = (backend.logits(m, batch) for m in (model, model, plain))
    else:
        lm = kind_module(backend, "lm")
        first, again, without = (lm.logits(m, batch)[0] for m in (model, model, plain))
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, without)


def test_the_torch_padded_kernel_drops_like_the_packed_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """The classifier's second torch kernel (per-layer calls, for long sequences) drops between layers
    in training at the same rate, and not in evaluation."""
    from shared.backend import get_backend

    monkeypatch.setenv("SEQBATCH_TORCH_DEVICE", "cpu")
    monkeypatch.setenv("SEQBATCH_TORCH_KERNEL", "padded")
    torch_backend = get_backend("torch")
    cfg, batch = classifier_case()
    before, after, model = one_step(torch_backend, cfg, batch)
    assert abs(dropped_share(before, after, "rnn.weight_ih_l1") - RATE) < 0.08
    plain = torch_backend.from_params(dataclasses.replace(cfg, dropout=0.0), after)
    np.testing.assert_array_equal(torch_backend.logits(model, batch), torch_backend.logits(plain, batch))
