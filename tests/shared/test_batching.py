"""Padding, masks, length buckets and the batch samplers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jaxtyping import Int

from shared.batching import Batch, Sampler, bucket_length, length_mask, pad, waste_of
from shared.errors import SeqbatchError
from shared.vocab import PAD


def seqs_of(lengths: list[int], *, seed: int = 0) -> list[Int[np.ndarray, " time"]]:
    rng = np.random.default_rng(seed)
    return [rng.integers(2, 50, n).astype(np.int32) for n in lengths]


def test_pad_puts_real_tokens_first_and_pad_after() -> None:
    seqs = [np.array([5, 6, 7]), np.array([9]), np.array([2, 3, 4, 5, 6])]
    batch = pad(seqs, [0, 1, 2], multiple=1)
    assert batch.tokens.shape == (3, 5) and batch.tokens.dtype == np.int32
    assert batch.tokens.tolist() == [[5, 6, 7, PAD, PAD], [9, PAD, PAD, PAD, PAD], [2, 3, 4, 5, 6]]
    assert batch.lengths.tolist() == [3, 1, 5] and batch.lengths.dtype == np.int32
    assert batch.labels.tolist() == [0, 1, 2] and batch.labels.dtype == np.int32
    assert len(batch) == 3


def test_pad_buckets_time_to_the_next_multiple() -> None:
    assert pad(seqs_of([3, 9]), [0, 0]).tokens.shape == (2, 16)
    assert pad(seqs_of([8]), [0]).tokens.shape == (1, 8)
    assert pad(seqs_of([3, 9]), [0, 0], multiple=5).tokens.shape == (2, 10)


def test_pad_to_a_given_time() -> None:
    batch = pad(seqs_of([3, 4]), [0, 1], time=12)
    assert batch.tokens.shape == (2, 12)
    assert (batch.tokens[:, 4:] == PAD).all()


def test_pad_to_a_time_shorter_than_the_longest_is_an_error() -> None:
    with pytest.raises(SeqbatchError, match=r"time 4 is shorter than the longest sequence \(6\)"):
        pad(seqs_of([3, 6]), [0, 1], time=4)


def test_an_empty_sequence_is_an_error_naming_its_position() -> None:
    with pytest.raises(SeqbatchError, match="sequence 1 of the batch is empty"):
        pad([np.array([3, 4]), np.array([], np.int32)], [0, 1])
    with pytest.raises(SeqbatchError, match="empty batch"):
        pad([], [])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(2, 300), min_size=1, max_size=20), min_size=1, max_size=10), st.integers(1, 9))
def test_mask_is_exactly_the_real_tokens(seqs: list[list[int]], multiple: int) -> None:
    batch = pad([np.array(s) for s in seqs], np.zeros(len(seqs)), multiple=multiple)
    assert (batch.mask == (batch.tokens != PAD)).all()
    assert (length_mask(batch.lengths, batch.tokens.shape[1]) == batch.mask).all()
    assert batch.mask.sum(axis=1).tolist() == [len(s) for s in seqs]


@pytest.mark.parametrize(("n", "multiple", "expected"), [(1, 8, 8), (8, 8, 8), (9, 8, 16), (17, 8, 24), (5, 1, 5)])
def test_bucket_length(n: int, multiple: int, expected: int) -> None:
    assert bucket_length(n, multiple) == expected


def test_bucket_multiple_below_one_is_an_error() -> None:
    with pytest.raises(SeqbatchError, match="got 0"):
        bucket_length(5, 0)


def test_random_sampler_draws_with_replacement() -> None:
    sampler = Sampler(np.zeros(10), 32, kind="random", seed=0)
    batches = sampler.epoch()
    assert len(batches) == 1  # max(1, n // B)
    (batch,) = batches
    assert len(batch) == 32 and batch.min() >= 0 and batch.max() < 10
    assert len(np.unique(batch)) < 32  # 32 draws from 10 indices must repeat
    big = Sampler(np.zeros(1000), 50, kind="random", seed=1).epoch()
    assert len(big) == 20 and all(len(b) == 50 for b in big)


def test_epoch_sampler_covers_every_index_once_per_epoch() -> None:
    sampler = Sampler(np.zeros(103), 10, kind="epoch", seed=3)
    first, second = sampler.epoch(), sampler.epoch()
    for epoch in (first, second):
        assert [len(b) for b in epoch] == [10] * 10 + [3]  # the short last batch is kept
        assert sorted(np.concatenate(epoch).tolist()) == list(range(103))
    assert not np.array_equal(np.concatenate(first), np.concatenate(second)), "each epoch reshuffles"


def test_samplers_are_reproducible_from_the_seed() -> None:
    labels = np.arange(50) % 3
    for kind in ("random", "epoch", "balanced"):
        a, b = Sampler(labels, 8, kind=kind, seed=7), Sampler(labels, 8, kind=kind, seed=7)
        assert all(np.array_equal(x, y) for x, y in zip(a.epoch(), b.epoch(), strict=True))


@pytest.mark.parametrize("kind", ["random", "epoch", "balanced"])
def test_another_seed_draws_another_stream(kind: str) -> None:
    labels = np.arange(50) % 3

    def two_epochs(seed: int) -> np.ndarray:
        sampler = Sampler(labels, 8, kind=kind, seed=seed)
        return np.concatenate(sampler.epoch() + sampler.epoch())

    assert not np.array_equal(two_epochs(7), two_epochs(8)), f"{kind}: seeds 7 and 8 drew the same batches"


@pytest.mark.parametrize("batch_size", [7, 32, 64])
def test_balanced_batches_hold_each_class_in_proportion(batch_size: int) -> None:
    counts = np.array([700, 180, 60, 40, 15, 5])  # imbalanced, as real label sets are
    labels = np.repeat(np.arange(len(counts)), counts)
    np.random.default_rng(0).shuffle(labels)
    expected = batch_size * counts / counts.sum()
    for seed in range(3):
        sampler = Sampler(labels, batch_size, kind="balanced", seed=seed)
        for _ in range(2):
            epoch = sampler.epoch()
            assert sorted(np.concatenate(epoch).tolist()) == list(range(len(labels)))
            full = [b for b in epoch if len(b) == batch_size]
            assert len(full) == len(labels) // batch_size
            for b in full:
                got = np.bincount(labels[b], minlength=len(counts))
                assert (np.abs(got - expected) <= 1).all(), f"batch holds {got}, expected {expected.round(2)}"


def test_bucketed_epochs_waste_less_padding() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 40, 2000)
    seqs = seqs_of(lengths.tolist())
    labels = np.zeros(len(seqs), np.int32)

    def batches(index: list[np.ndarray]) -> list[Batch]:
        return [pad([seqs[i] for i in idx], labels[idx], multiple=1) for idx in index]

    plain = batches(Sampler(labels, 32, kind="epoch", seed=0).epoch())
    bucketed_idx = Sampler(labels, 32, kind="epoch", seed=0, lengths=lengths, bucket_chunk=8).epoch()
    assert sorted(np.concatenate(bucketed_idx).tolist()) == list(range(len(seqs)))
    bucketed = batches(bucketed_idx)
    assert waste_of(bucketed) < 0.5 * waste_of(plain)


def test_waste_of() -> None:
    batch = pad([np.array([2, 3]), np.array([4])], [0, 0], time=4)
    assert waste_of([batch]) == pytest.approx(5 / 8)
    assert waste_of([]) == 0.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "shuffled"}, "unknown sampler 'shuffled'"),
        ({"kind": "epoch", "bucket_chunk": 4}, "needs the sequence lengths"),
        ({"kind": "random", "bucket_chunk": 4, "lengths": [1] * 5}, "not 'random'"),
        ({"batch_size": 0}, "batch_size must be >= 1, got 0"),
    ],
)
def test_sampler_rejects_bad_settings(kwargs: dict, match: str) -> None:
    kwargs = {"batch_size": 2, **kwargs}
    with pytest.raises(SeqbatchError, match=match):
        Sampler([0, 1, 0, 1, 0], **kwargs)
    with pytest.raises(SeqbatchError, match="no examples"):
        Sampler([], 2)
