"""A language model's evaluation figure is nats per scored character over the whole split: every
character weighs the same, whether it sits in a full window, in the shorter last window of a stream
or in a short document (shared/lm_training.evaluate_lm)."""

from __future__ import annotations

import numpy as np
import pytest

from shared.backend import get_backend, kind_module
from shared.kinds.lm import LMBatch, LMConfig
from shared.lm_data import doc_batch, stream_windows
from shared.lm_training import evaluate_lm

CFG = LMConfig(vocab_size=11, cell="gru", num_layers=1, hidden_size=8, embed_dim=4, dtype="float64")


@pytest.fixture(scope="module")
def torch_lm() -> tuple[object, object, object]:
    backend = get_backend("torch")
    return backend, kind_module(backend, CFG), backend.init(CFG, seed=0)


def test_a_stream_scores_every_character_alike_across_a_short_last_window(torch_lm: tuple) -> None:
    backend, lm, model = torch_lm
    rows, cols = 4, 25  # windows of 10, 10 and 5 columns
    ids = np.random.default_rng(0).integers(2, CFG.vocab_size, rows * cols + 1).astype(np.int32)
    windows = list(stream_windows(ids, rows, 10, full=False))
    assert [w.inputs.shape[1] for w in windows] == [10, 10, 5]
    whole = LMBatch(ids[:-1].reshape(rows, cols), ids[1:].reshape(rows, cols), np.full(rows, cols, np.int32))
    per_token, _ = lm.losses(model, whole)
    report = evaluate_lm(backend, model, windows)
    assert report["n"] == rows * cols
    assert report["nats_per_char"] == pytest.approx(float(per_token.sum()) / (rows * cols), rel=1e-12)


def test_documents_are_scored_per_real_character_not_per_batch(torch_lm: tuple) -> None:
    backend, lm, model = torch_lm
    rng = np.random.default_rng(1)
    docs = [np.concatenate([[1], rng.integers(2, CFG.vocab_size, n), [1]]).astype(np.int32) for n in (2, 9, 3, 14)]
    batches = [doc_batch(docs[:3]), doc_batch(docs[3:])]  # 3 short documents, then 1 long one
    total = sum(float(lm.losses(model, doc_batch([d], multiple=1))[0].sum()) for d in docs)
    chars = sum(len(d) - 1 for d in docs)
    report = evaluate_lm(backend, model, batches)
    assert report["n"] == chars
    assert report["nats_per_char"] == pytest.approx(total / chars, rel=1e-12)
