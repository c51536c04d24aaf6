"""The skip-gram data pipeline (shared/skipgram_data.py): vocabulary, subsampling formulas, the dynamic
window, the noise distribution and seeded batches."""

from __future__ import annotations

import numpy as np
import pytest

from shared.errors import SeqbatchError
from shared.skipgram_data import (
    SkipgramDataConfig,
    build_corpus,
    epoch_batches,
    keep_probability,
    noise_distribution,
    window_pairs,
)


def test_the_vocabulary_keeps_words_seen_min_count_times_most_frequent_first() -> None:
    corpus = build_corpus([["b", "a", "a", "c"], ["a", "b", "d"]], min_count=2)
    assert corpus.words == ("a", "b") and corpus.counts.tolist() == [3, 2]
    assert corpus.ids.tolist() == [1, 0, 0, 0, 1]  # c and d dropped from the text itself
    with pytest.raises(SeqbatchError, match="1 distinct word"):
        build_corpus([["a", "a", "b"]], min_count=2)
    tied = build_corpus([["z", "y", "z", "y", "m", "a", "a", "m"]], min_count=1)
    assert tied.words == ("a", "m", "y", "z")  # ties: the latest first appearance first (gensim's order)


def test_keep_probabilities_follow_the_stated_formulas() -> None:
    counts = np.array([600, 300, 100])  # f = 0.6, 0.3, 0.1
    t = 0.05
    f = counts / counts.sum()
    np.testing.assert_allclose(keep_probability(counts, t, "word2vec"), np.minimum((np.sqrt(f / t) + 1) * t / f, 1))
    np.testing.assert_allclose(keep_probability(counts, t, "lesson"), np.sqrt(t / f))
    assert keep_probability(counts, t, "none").tolist() == [1, 1, 1]
    assert keep_probability(np.array([1, 10**6]), 1e-3, "word2vec")[0] == 1.0  # a rare word: capped at 1


def test_noise_is_proportional_to_count_to_the_three_quarters() -> None:
    p = noise_distribution(np.array([16, 1]))
    assert p[0] / p[1] == pytest.approx(8.0)
    corpus = build_corpus([["a"] * 81 + ["b"]], min_count=1)
    cfg = SkipgramDataConfig(min_count=1, window=2, negatives=50, rule="none")
    negatives = np.concatenate([b.negatives.ravel() for b in epoch_batches(corpus, cfg, 32, seed=0, epoch=0)])
    assert np.mean(negatives == 1) == pytest.approx(1 / (81**0.75 + 1), abs=0.01)


def test_the_window_radius_is_drawn_per_centre_from_one_to_window() -> None:
    ids = np.arange(10_000, dtype=np.int32)
    centres, contexts = window_pairs(ids, 4, np.random.default_rng(0))
    gaps = np.abs(centres - contexts)
    assert gaps.min() == 1 and gaps.max() == 4 and not np.any(centres == contexts)
    per_centre = np.bincount(centres, minlength=len(ids))[10:-10]
    assert set(per_centre.tolist()) == {2, 4, 6, 8}  # 2r contexts for radius r
    assert per_centre.mean() == pytest.approx(5.0, abs=0.1)  # r uniform on 1..4: mean 2.5 per side
    assert np.all(np.diff(centres) >= 0)  # centre by centre, in corpus order


def test_batches_are_a_function_of_seed_and_epoch() -> None:
    corpus = build_corpus([["w" + str(i % 37) for i in range(3000)]], min_count=1)
    cfg = SkipgramDataConfig(min_count=1, window=3, negatives=4, shuffle_chunk=500)

    def flat(seed: int, epoch: int) -> np.ndarray:
        return np.concatenate([np.c_[b.centre, b.context, b.negatives]
                               for b in epoch_batches(corpus, cfg, 64, seed=seed, epoch=epoch)])

    a = flat(0, 0)
    assert np.array_equal(a, flat(0, 0))
    assert not np.array_equal(a, flat(0, 1)) and not np.array_equal(a, flat(1, 0))
    batches = list(epoch_batches(corpus, cfg, 64, seed=0, epoch=0))
    assert all(len(b) == 64 for b in batches[:-1]) and 1 <= len(batches[-1]) <= 64
    assert batches[0].negatives.shape == (64, 4) and batches[0].negatives.max() < len(corpus.words)


def test_subsampling_thins_frequent_words_only() -> None:
    tokens = ["the"] * 5000 + [f"rare{i}" for i in range(500)]
    corpus = build_corpus([tokens], min_count=1)
    cfg = SkipgramDataConfig(min_count=1, window=1, negatives=1, sample=1e-3)
    centres = np.concatenate([b.centre for b in epoch_batches(corpus, cfg, 256, seed=0, epoch=0)])
    the = corpus.words.index("the")
    f = 5000 / 5500
    kept = 5000 * (np.sqrt(f / 1e-3) + 1) * 1e-3 / f  # about 172 of the 5,000 "the" survive
    assert set(np.unique(centres).tolist()) == set(range(len(corpus.words)))  # every rare word is kept
    assert np.mean(centres == the) == pytest.approx(kept / (kept + 500), abs=0.06)  # not 91 %


@pytest.mark.parametrize("field, value", [("window", 0), ("negatives", 0), ("min_count", 0), ("sample", 0.0),
                                          ("sample", float("nan")), ("rule", "zipf")])
def test_nonsense_settings_are_refused(field: str, value: object) -> None:
    with pytest.raises(SeqbatchError, match=field if field != "rule" else "subsampling rule"):
        SkipgramDataConfig(**{field: value})  # type: ignore[arg-type]


def test_windows_stop_at_document_ends() -> None:
    docs = [[f"a{i}" for i in range(50)], [f"b{i}" for i in range(50)]]
    corpus = build_corpus(docs, min_count=1)
    cfg = SkipgramDataConfig(min_count=1, window=5, negatives=1, rule="none")
    batches = list(epoch_batches(corpus, cfg, 64, seed=0, epoch=0))
    c = np.concatenate([b.centre for b in batches])
    o = np.concatenate([b.context for b in batches])
    first = np.array([w.startswith("a") for w in corpus.words])
    assert np.array_equal(first[c], first[o])  # no pair joins the two documents
    assert len(c) > 400


def test_progress_rises_evenly_to_one_over_an_epoch() -> None:
    corpus = build_corpus([["w" + str(i % 37) for i in range(3000)]], min_count=1)
    cfg = SkipgramDataConfig(min_count=1, window=3, negatives=2, rule="none")
    batches = list(epoch_batches(corpus, cfg, 64, seed=0, epoch=0, chunk_tokens=700))
    progress = np.array([b.progress for b in batches])
    assert np.all(np.diff(progress) > 0) and progress[-1] == 1.0
    pairs = np.cumsum([len(b) for b in batches]) / sum(len(b) for b in batches)
    np.testing.assert_allclose(progress, pairs, atol=0.03)  # the corpus read tracks the pairs trained


def test_the_vocabulary_is_gensims_word_for_word() -> None:
    """Same words in the same order as gensim's Word2Vec vocabulary (ties included), so that the
    analogy test's "30,000 most frequent words" are the same words for both (optional extra)."""
    gensim = pytest.importorskip("gensim")
    rng = np.random.default_rng(0)
    docs = [[f"w{int(i)}" for i in rng.zipf(1.5, 40) % 300] for _ in range(200)]
    ours = build_corpus(docs, min_count=2)
    model = gensim.models.Word2Vec(vector_size=4, min_count=2, sample=0, workers=1)
    model.build_vocab(docs)
    assert list(ours.words) == list(model.wv.index_to_key)
    assert ours.raw_words == sum(map(len, docs))
