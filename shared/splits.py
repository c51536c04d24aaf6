"""Deduplication and stratified train/val/test splits (scikit-learn does the splitting)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import train_test_split

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
    idx = np.arange(len(data))
    if test > 0:
        rest, test_idx = train_test_split(idx, test_size=test, stratify=labels, random_state=seed)
    else:
        rest, test_idx = idx, idx[:0]
    train_idx, val_idx = train_test_split(
        rest, test_size=val / (1 - test), stratify=labels[rest], random_state=seed
    )
    return Splits(data.subset(list(train_idx)), data.subset(list(val_idx)), data.subset(list(test_idx)))
