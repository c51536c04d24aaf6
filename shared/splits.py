"""Deduplication and stratified train/val/test splits, sized per label."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared.errors import SeqbatchError
from shared.examples import Examples


@dataclass(frozen=True)
class Splits:
    train: Examples
    val: Examples
    test: Examples


def deduplicate(data: Examples) -> Examples:
    """Drop repeated (text, label) pairs, keeping the first; the same text under two labels stays."""
    seen: set[tuple[str, int]] = set()
    keep: list[int] = []
    for i, pair in enumerate(zip(data.texts, data.labels, strict=True)):
        if pair not in seen:
            seen.add(pair)
            keep.append(i)
    return data.subset(keep)


def part_sizes(counts: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Members of each label (rows) in each part (columns): every cell within 1 of count x fraction,
    every part's total within 1 of n x fraction.

    scikit-learn's two nested `train_test_split` calls round per split, not per label, and missed
    both bounds by up to 2. Here each label gets the floor of its share in every part; the one or
    two members left per label go to the parts furthest below their total (Gale-Ryser's greedy,
    which always fits because a fractional answer exists).
    """
    targets = np.outer(counts, fractions)  # (labels, parts)
    sizes = np.floor(targets).astype(np.int64)
    total = fractions * counts.sum()
    want = np.floor(total).astype(np.int64)
    want[np.argsort(-(total - want), kind="stable")[: int(counts.sum() - want.sum())]] += 1  # largest remainder
    need = want - sizes.sum(axis=0)
    spare = counts - sizes.sum(axis=1)
    for c in np.argsort(-spare, kind="stable"):
        for k in np.argsort(-need, kind="stable")[: spare[c]]:
            sizes[c, k] += 1
            need[k] -= 1
    return sizes


def stratified_split(
    data: Examples, *, val: float = 0.1, test: float = 0.1, seed: int = 0, dedup: bool = True
) -> Splits:
    """Deduplicate, then split train/val/test stratified by label (80/10/10 by default), seeded.

    The test split is for the final figure only; tune on val.
    """
    if dedup:
        data = deduplicate(data)
    if not (0 < val < 1 and 0 <= test < 1 and val + test < 1):
        raise SeqbatchError(f"bad split fractions val={val} test={test}")
    labels = np.asarray(data.labels)
    counts = np.bincount(labels, minlength=len(data.label_names))
    if (counts[counts > 0] < 3).any():
        rare = [data.label_names[i] for i in np.flatnonzero((counts > 0) & (counts < 3))]
        raise SeqbatchError(f"labels with fewer than 3 examples cannot be split: {', '.join(rare)}")
    sizes = part_sizes(counts, np.array([1 - val - test, val, test]))
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[], [], []]
    for c in np.flatnonzero(counts):
        members = rng.permutation(np.flatnonzero(labels == c))
        cuts = np.cumsum(sizes[c])
        for k, chunk in enumerate(np.split(members, cuts[:2])):
            parts[k] += chunk.tolist()
    train, val_idx, test_idx = (rng.permutation(np.asarray(p, dtype=np.int64)).tolist() for p in parts)
    if not train or not val_idx:
        raise SeqbatchError(f"{len(data)} examples are too few for a split with val={val}, test={test}")
    return Splits(data.subset(train), data.subset(val_idx), data.subset(test_idx))
