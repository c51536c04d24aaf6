"""Parity on the long length patterns (T = 200; IMDB-like T = 400, front- and back-truncated),
in float64, and on real surnames."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from parity import harness as H
from parity.harness_cli import backend_settings, label, pattern_batches
from shared.batching import pad
from shared.config import CELLS, ModelConfig
from shared.dataset import name_chars
from shared.imdb import read_csv
from shared.names import load_names
from shared.text import TextConfig, text_tokens
from shared.vocab import Vocab

LONG = ("long", "imdb_front", "imdb_back")


def config(cell: str, embed: int | None, dtype: str = "float32", layers: int = 2) -> ModelConfig:
    return ModelConfig(20, 5, cell=cell, num_layers=layers, bidirectional=True, hidden_size=12, embed_dim=embed,
                       dtype=dtype)  # type: ignore[arg-type]


@functools.cache
def long_result(cell: str, embed: int | None) -> H.ConfigResult:
    cfg = config(cell, embed)
    batches = {p: b for p, b in pattern_batches(cfg).items() if p in LONG}
    return H.check(cfg, batches, steps=0, file_batches=("long",), fast=True)


def test_imdb_batches_are_truncated_views_of_longer_reviews() -> None:
    cfg = config("lstm", 8)
    rng = np.random.default_rng(0)
    front = H.pattern_batch(cfg, "imdb_front", rng)
    back = H.pattern_batch(cfg, "imdb_back", np.random.default_rng(0))
    assert front.tokens.shape == back.tokens.shape == (H.BATCH, H.IMDB_T)
    assert front.lengths.max() == H.IMDB_T and front.lengths.min() < H.IMDB_T
    # Same raw reviews, cut at opposite ends: equal lengths, different kept tokens, both left-aligned.
    np.testing.assert_array_equal(front.lengths, back.lengths)
    assert not np.array_equal(front.tokens[0], back.tokens[0])
    assert (front.tokens[front.mask] > 0).all() and (front.tokens[~front.mask] == 0).all()


@pytest.mark.parametrize("pattern", LONG)
@pytest.mark.parametrize("cell", CELLS)
def test_long_sequences_agree(cell: str, pattern: str, assert_parity: Any) -> None:
    result = long_result(cell, 8)
    found = [c for c in result.comparisons if c.case.startswith(pattern + " ")]
    assert {c.quantity for c in found} >= {"logits", "losses", "loss", "grad"}
    assert any(c.quantity == "pad_invariance" for c in found) == (pattern == "long")  # T <= 200 only
    assert_parity(found, f"{label(result.config)} {pattern}")


@pytest.mark.parametrize("cell", CELLS)
def test_long_one_hot_sequences_agree(cell: str, assert_parity: Any) -> None:
    result = long_result(cell, None)
    assert any(c.case == "long jax->torch(file)" for c in result.comparisons)
    assert_parity(result.comparisons, label(result.config))


@pytest.mark.parametrize("embed", [None, 8], ids=["onehot", "emb8"])
@pytest.mark.parametrize("cell", CELLS)
def test_float64_agrees_to_1e_10(cell: str, embed: int | None, assert_parity: Any) -> None:
    cfg = config(cell, embed, "float64", layers=1)
    with backend_settings("cpu", "float64"):
        batches = {p: b for p, b in pattern_batches(cfg).items() if p in ("equal", "ragged", "single", "unmasked")}
        result = H.check(cfg, batches, steps=0, fast=True)
    assert any(c.case.startswith("unmasked ") for c in result.comparisons)
    assert H.OUTPUT_ABS_TOL["float64"] == 1e-10
    assert_parity(result.comparisons, label(cfg))
    # float64 is not float32 in disguise: the logits agree far beyond float32's resolution.
    assert max(c.max_abs for c in result.comparisons if c.quantity == "logits") < 1e-12


def test_real_surnames_agree(real_names_dir: Path, assert_parity: Any) -> None:
    names = load_names(real_names_dir)
    rng = np.random.default_rng(0)
    pick = rng.choice(len(names.texts), 8, replace=False)
    chars = [name_chars(names.texts[i]) for i in pick]
    vocab = Vocab.fit(chars)
    batch = pad([vocab.encode(c) for c in chars], [names.labels[i] % 4 for i in pick])
    cfg = ModelConfig(len(vocab), 4, cell="gru", num_layers=1, bidirectional=True, hidden_size=12)
    assert_parity(H.check(cfg, {"surnames": batch}, steps=0, fast=True).comparisons, "real surnames")


IMDB_TEST = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "imdb" / "imdb_test.csv.xz"


@pytest.mark.skipif(not IMDB_TEST.is_file(), reason=f"no IMDB data at {IMDB_TEST}")
@pytest.mark.parametrize("truncate", ["pre", "post"])
def test_real_reviews_agree(truncate: str, assert_parity: Any) -> None:
    """Real reviews through the text pipeline, cut to 450 words at the front or the back (T >= 400),
    into a 3-layer bidirectional LSTM with embeddings: the two backends give the same logits,
    losses and gradients."""
    reviews = read_csv(IMDB_TEST, limit=300)
    text_cfg = TextConfig(max_len=450, truncate=truncate)  # type: ignore[arg-type]
    tokens = [text_tokens(t, text_cfg) for t in reviews.texts]
    pick = [*np.argsort([-len(t) for t in tokens], kind="stable")[:6].tolist(), 0, 1]  # long ones, two others
    seqs = [tokens[i] for i in pick]
    assert sum(len(t) == 450 for t in seqs) >= 6  # the long ones were truncated
    vocab = Vocab.fit(seqs)
    batch = pad([vocab.encode(t) for t in seqs], [reviews.labels[i] for i in pick])
    assert batch.tokens.shape[1] >= 400 and batch.lengths.min() < 400
    cfg = ModelConfig(len(vocab), 2, cell="lstm", num_layers=3, bidirectional=True, hidden_size=12, embed_dim=8)
    result = H.check(cfg, {f"reviews-{truncate}": batch}, steps=0, fast=True)
    assert {c.quantity for c in result.comparisons} >= {"logits", "losses", "loss", "grad"}
    assert_parity(result.comparisons, f"real reviews, truncate {truncate}")


@pytest.mark.parametrize("cell", CELLS)
def test_unmasked_left_padded_training_agrees(cell: str, assert_parity: Any) -> None:
    """The padding study's unmasked model (`--padding left`): 10 steps of every optimizer
    variant on left-padded batches read whole, compared step by step."""
    cfg = config(cell, 8)
    rng = np.random.default_rng(5)
    train = [H.pattern_batch(cfg, "unmasked", rng) for _ in range(10)]
    assert all((b.lengths == b.tokens.shape[1]).all() and (b.tokens[:, 0] == 0).any() for b in train)
    result = H.check(cfg, {"unmasked": train[0]}, train_batches=train, fast=True)
    assert result.trajectory_steps == 10
    assert_parity(result.comparisons, f"{label(cfg)} unmasked")
