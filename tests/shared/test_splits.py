"""Deduplication and the stratified, seeded 80/10/10 split."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.errors import SeqbatchError
from shared.examples import Examples
from shared.splits import Splits, deduplicate, part_sizes, stratified_split

COUNTS = [400, 150, 37, 13, 3]  # imbalanced, down to the rarest label the split accepts


def imbalanced(counts: list[int] = COUNTS) -> Examples:
    texts = [f"name{label}-{i}" for label, n in enumerate(counts) for i in range(n)]
    labels = [label for label, n in enumerate(counts) for _ in range(n)]
    return Examples(texts, labels, [f"L{label}" for label in range(len(counts))])


def pairs(ex: Examples) -> list[tuple[str, int]]:
    return list(zip(ex.texts, ex.labels, strict=True))


def test_dedup_drops_repeated_pairs_only() -> None:
    data = Examples(["Ng", "Ng", "Ng", "Lee", "Lee", "Kim"], [0, 0, 1, 1, 1, 0], ["Vietnamese", "Chinese"])
    out = deduplicate(data)
    # The same text under two labels is real ambiguity, not a duplicate: it stays.
    assert pairs(out) == [("Ng", 0), ("Ng", 1), ("Lee", 1), ("Kim", 0)]
    assert out.label_names == data.label_names


@pytest.mark.parametrize("counts", [COUNTS, [700, 200, 100], [20, 10, 7], [3, 3, 3, 3, 3]])
def test_split_sizes_are_80_10_10(counts: list[int]) -> None:
    n = sum(counts)
    s = stratified_split(imbalanced(counts), seed=0)
    for part, fraction in ((s.train, 0.8), (s.val, 0.1), (s.test, 0.1)):
        assert abs(len(part) - fraction * n) < 1, f"{len(part)} examples for {fraction} of {n}"
    assert len(s.train) + len(s.val) + len(s.test) == n


def test_split_deduplicates_first() -> None:
    data = imbalanced()
    doubled = Examples(data.texts * 2, data.labels * 2, data.label_names)
    s = stratified_split(doubled, seed=0)
    assert len(s.train) + len(s.val) + len(s.test) == len(data)
    assert stratified_split(doubled, seed=0, dedup=False).train.texts != s.train.texts


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("val", "test"), [(0.1, 0.1), (0.15, 0.05), (0.1, 0.0)])
def test_each_label_is_split_in_proportion(seed: int, val: float, test: float) -> None:
    s = stratified_split(imbalanced(), val=val, test=test, seed=seed)
    for part, fraction in ((s.train, 1 - val - test), (s.val, val), (s.test, test)):
        got = Counter(part.labels)
        for label, n in enumerate(COUNTS):
            assert abs(got[label] - fraction * n) <= 1, f"label {label}: {got[label]} of {n} for {fraction}"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 500), min_size=1, max_size=20), st.floats(0.01, 0.5), st.floats(0.0, 0.45))
def test_part_sizes_stay_within_one_of_every_share(counts: list[int], val: float, test: float) -> None:
    counts_a, fractions = np.array(counts), np.array([1 - val - test, val, test])
    sizes = part_sizes(counts_a, fractions)
    assert (sizes >= 0).all() and (sizes.sum(axis=1) == counts_a).all()
    assert (np.abs(sizes - np.outer(counts_a, fractions)) <= 1).all()
    assert (np.abs(sizes.sum(axis=0) - fractions * counts_a.sum()) < 1).all()


def test_splits_are_disjoint_and_cover_the_data() -> None:
    data = imbalanced()
    s = stratified_split(data, seed=2)
    train, val, test = (set(pairs(p)) for p in (s.train, s.val, s.test))
    assert not (train & val or train & test or val & test)
    assert train | val | test == set(pairs(data))


def test_same_seed_same_split_other_seed_other_split() -> None:
    data = imbalanced()

    def fingerprint(s: Splits) -> tuple[list[str], list[str], list[str]]:
        return s.train.texts, s.val.texts, s.test.texts

    assert fingerprint(stratified_split(data, seed=5)) == fingerprint(stratified_split(data, seed=5))
    assert fingerprint(stratified_split(data, seed=5)) != fingerprint(stratified_split(data, seed=6))


def test_no_test_split_when_asked_for_none() -> None:
    s = stratified_split(imbalanced(), val=0.2, test=0.0)
    assert len(s.test) == 0
    assert abs(len(s.val) - 0.2 * sum(COUNTS)) <= 1


def test_a_label_too_rare_to_split_is_named() -> None:
    data = imbalanced([50, 2, 40])
    with pytest.raises(SeqbatchError, match="fewer than 3 examples cannot be split: L1"):
        stratified_split(data)


def test_too_few_examples_for_a_validation_split_is_an_error() -> None:
    with pytest.raises(SeqbatchError, match="3 examples are too few"):
        stratified_split(imbalanced([3]))


@pytest.mark.parametrize(("val", "test"), [(0.0, 0.1), (0.5, 0.5), (0.1, -0.1), (1.2, 0.0)])
def test_bad_fractions_are_an_error(val: float, test: float) -> None:
    with pytest.raises(SeqbatchError, match="bad split fractions"):
        stratified_split(imbalanced(), val=val, test=test)
