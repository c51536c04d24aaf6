"""Tabular data for the MLP kind: scikit-learn's wine set or any CSV, split, standardised, batched.

- **Sources**: `wine_table()` is `sklearn.datasets.load_wine` (178 wines, 13 chemical measurements,
  3 cultivars; bundled with scikit-learn, nothing is downloaded); `read_csv(path, target)` reads a
  CSV with a header line: every column but `target` is a numeric feature, the target column's
  distinct values become the class labels (sorted; numerically when they are all numbers).
- **Split**: stratified 60/20/20 train/validation/test by `sklearn.model_selection.train_test_split`
  (test first, then a quarter of the rest for validation), seeded.
- **Standardisation** uses the TRAIN split's mean and standard deviation only (population std, as
  scikit-learn's StandardScaler; a constant column gets 1) and is stored in the checkpoint
  (`seqbatch.features`), so that eval and predict re-create the inputs the model was trained on.
- **Batches**: shuffled passes from a seeded NumPy generator (`shared.batching.Sampler`, kind
  "epoch": the last batch of an epoch is the short one), the same index batches on both backends.
  An epoch's loss is each batch's mean loss weighted by its size over the examples seen, not the
  plain mean of the batch means (shared/tabular_training.py).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from jaxtyping import Float, Int

from shared.errors import SeqbatchError
from shared.kinds.mlp import TabularBatch
from shared.textfiles import read_utf8

VAL_FRACTION = 0.2
TEST_FRACTION = 0.2  # 60 % train, 20 % validation, 20 % test


@dataclass(frozen=True)
class Standardization:
    """Feature names (input order) and the train split's mean and std per feature: x -> (x - mean) / std."""

    names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        if not all(isinstance(n, str) for n in self.names):
            raise SeqbatchError("feature names must be strings")
        if not (len(self.names) == len(self.mean) == len(self.std)) or not self.names:
            raise SeqbatchError(f"{len(self.names)} feature names, {len(self.mean)} means and {len(self.std)} "
                                "stds: give one of each per feature (at least one)")
        for what, values in (("mean", self.mean), ("std", self.std)):
            if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values):
                raise SeqbatchError(f"every feature {what} must be a finite number")
        if not all(v > 0 for v in self.std):
            raise SeqbatchError("every feature std must be > 0")
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    @classmethod
    def fit(cls, names: Sequence[str], train: Float[np.ndarray, "n features"]) -> Standardization:
        std = train.std(axis=0)
        return cls(tuple(names), tuple(train.mean(axis=0).tolist()), tuple(np.where(std > 0, std, 1.0).tolist()))

    def apply(self, x: Float[np.ndarray, "n features"]) -> Float[np.ndarray, "n features"]:
        return (np.asarray(x, np.float64) - np.asarray(self.mean)) / np.asarray(self.std)

    def to_json(self) -> str:
        import json

        return json.dumps({"names": list(self.names), "mean": list(self.mean), "std": list(self.std)},
                          ensure_ascii=False, allow_nan=False)

    @classmethod
    def from_dict(cls, d: Any) -> Standardization:
        if not isinstance(d, dict) or not all(isinstance(d.get(k), list) for k in ("names", "mean", "std")):
            raise SeqbatchError("must be a JSON object with lists `names`, `mean` and `std`")
        return cls(tuple(d["names"]), tuple(d["mean"]), tuple(d["std"]))


@dataclass(frozen=True)
class Table:
    """Raw rows before splitting: features [n, F] float64, labels [n] as indices into `label_names`."""

    features: Float[np.ndarray, "n features"]
    labels: Int[np.ndarray, " n"]
    feature_names: tuple[str, ...]
    label_names: list[str]
    source: str


@dataclass(frozen=True)
class TabularSplit:
    features: Float[np.ndarray, "n features"]  # standardised, float64
    labels: Int[np.ndarray, " n"]

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, index: Int[np.ndarray, " batch"]) -> TabularBatch:
        return TabularBatch(self.features[index], self.labels[index])


@dataclass(frozen=True)
class TabularData:
    label_names: list[str]
    scaling: Standardization
    train: TabularSplit
    val: TabularSplit
    test: TabularSplit
    source: str

    @property
    def num_features(self) -> int:
        return len(self.scaling.names)

    @property
    def num_classes(self) -> int:
        return len(self.label_names)


def wine_table() -> Table:
    from sklearn.datasets import load_wine

    wine = load_wine()
    return Table(np.asarray(wine.data, np.float64), np.asarray(wine.target, np.int64), tuple(wine.feature_names),
                 [str(n) for n in wine.target_names], "sklearn.datasets.load_wine")


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def read_csv(path: Path, target: str) -> Table:
    """A CSV with a header line: the `target` column's values are the labels, every other column a
    numeric feature. SeqbatchError naming the file (and the column and line) for what is amiss."""
    path = Path(path)
    if path.is_dir():
        raise SeqbatchError(f"{path}: is a folder; --task tabular reads one CSV file")
    if not path.exists():
        raise SeqbatchError(f"{path}: does not exist")
    reader = csv.reader(io.StringIO(read_utf8(path)), strict=True)
    numbered: list[tuple[int, list[str]]] = []  # (the line a record ends on, its fields), blank lines left out
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                numbered.append((reader.line_num, row))
    except csv.Error as e:
        raise SeqbatchError(f"{path}: line {reader.line_num} is not readable CSV ({e})") from e
    if not numbered:
        raise SeqbatchError(f"{path}: the CSV file is empty (a header line and data rows are needed)")
    (_, header), body = numbered[0], numbered[1:]
    header = [h.strip() for h in header]
    twice = sorted({h for h in header if header.count(h) > 1})
    if twice:
        raise SeqbatchError(f"{path}: column {twice[0]!r} appears more than once in the header")
    if target not in header:
        raise SeqbatchError(f"{path}: no column {target!r} for --target; the columns are "
                            f"{', '.join(repr(h) for h in header[:20])}{' ...' if len(header) > 20 else ''}")
    if len(header) < 2:
        raise SeqbatchError(f"{path}: only the target column {target!r}; no feature columns")
    if not body:
        raise SeqbatchError(f"{path}: a header line but no data rows")
    t = header.index(target)
    names = tuple(h for i, h in enumerate(header) if i != t)
    features = np.empty((len(body), len(names)), np.float64)
    raw_labels: list[str] = []
    for r, (line, row) in enumerate(body):
        if len(row) != len(header):
            raise SeqbatchError(f"{path}: line {line} has {len(row)} fields, the header {len(header)}")
        raw_labels.append(row[t].strip())
        cells = [c for i, c in enumerate(row) if i != t]
        for j, cell in enumerate(cells):
            value = _number(cell.strip())
            if value is None:
                raise SeqbatchError(f"{path}: column {names[j]!r}, line {line} (data row {r + 1}): "
                                    f"{cell.strip()!r:.40} is not a finite number; feature columns must be numeric")
            features[r, j] = value
    if any(not v for v in raw_labels):
        line = body[raw_labels.index("")][0]
        raise SeqbatchError(f"{path}: target column {target!r} is empty on line {line}")
    distinct = set(raw_labels)
    if len(distinct) < 2:
        raise SeqbatchError(f"{path}: the target column {target!r} has one class ({next(iter(distinct))!r:.40}); "
                            "a classifier needs at least two")
    numeric = all(_number(v) is not None for v in distinct)
    label_names = sorted(distinct, key=lambda v: (_number(v), v) if numeric else v)
    index = {name: i for i, name in enumerate(label_names)}
    return Table(features, np.array([index[v] for v in raw_labels], np.int64), names, label_names, str(path))


def split_table(table: Table, seed: int, scaling: Standardization | None = None) -> TabularData:
    """Stratified 60/20/20 train/val/test, seeded; features standardised with the train split's statistics
    (or with `scaling`, a checkpoint's, when given: eval re-creates the inputs the model was trained on)."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(table.labels))
    try:
        rest, test = train_test_split(index, test_size=TEST_FRACTION, stratify=table.labels, random_state=seed)
        train, val = train_test_split(rest, test_size=VAL_FRACTION / (1 - TEST_FRACTION),
                                      stratify=table.labels[rest], random_state=seed)
    except ValueError as e:
        counts = np.bincount(table.labels, minlength=len(table.label_names))
        per_class = ", ".join(f"{n}: {c}" for n, c in zip(table.label_names, counts, strict=True))
        raise SeqbatchError(f"{table.source}: {len(index)} rows ({per_class}) cannot be split 60/20/20 stratified "
                            f"by class ({e})") from e
    if scaling is None:
        scaling = Standardization.fit(table.feature_names, table.features[train])
    elif scaling.names != table.feature_names:
        raise SeqbatchError(f"{table.source}: the feature columns {list(table.feature_names)[:6]}... differ from "
                            f"the ones the model was trained on {list(scaling.names)[:6]}...")

    def part(idx: np.ndarray) -> TabularSplit:
        return TabularSplit(scaling.apply(table.features[idx]), table.labels[idx].astype(np.int64))

    return TabularData(table.label_names, scaling, part(train), part(val), part(test), table.source)

