"""A task's data made ready for training: splits encoded with a vocabulary fitted on train only."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shared.batching import Batch, pad
from shared.errors import SeqbatchError
from shared.examples import Examples
from shared.names import load_names_or_default
from shared.splits import Splits, stratified_split
from shared.vocab import Vocab

Tokenizer = Callable[[str], list[str]]


def name_chars(name: str) -> list[str]:
    """A surname as characters (NFC, surrounding whitespace stripped). Empty names are an error."""
    text = unicodedata.normalize("NFC", name).strip()
    if not text:
        raise SeqbatchError(f"empty name {name!r}: give at least one character")
    return list(text)


@dataclass(frozen=True)
class EncodedSplit:
    seqs: list[np.ndarray]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.seqs)

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(s) for s in self.seqs), dtype=np.int64, count=len(self.seqs))

    def batch(self, index: np.ndarray, *, multiple: int = 8) -> Batch:
        return pad([self.seqs[i] for i in index], self.labels[index], multiple=multiple)


@dataclass(frozen=True)
class Dataset:
    vocab: Vocab
    label_names: list[str]
    train: EncodedSplit
    val: EncodedSplit
    test: EncodedSplit
    source: str

    @property
    def num_classes(self) -> int:
        return len(self.label_names)


def encode_splits(splits: Splits, tokenize: Tokenizer, vocab: Vocab, source: str) -> Dataset:
    def enc(ex: Examples) -> EncodedSplit:
        return EncodedSplit([vocab.encode(tokenize(t)) for t in ex.texts], np.asarray(ex.labels, dtype=np.int32))

    return Dataset(vocab, splits.train.label_names, enc(splits.train), enc(splits.val), enc(splits.test), source)


def names_dataset(data_dir: str | Path | None, *, seed: int = 0) -> Dataset:
    """Names: load (or the embedded default), dedup + stratified 80/10/10, char vocab from train."""
    examples = load_names_or_default(data_dir)
    splits = stratified_split(examples, seed=seed)
    vocab = Vocab.fit(name_chars(t) for t in splits.train.texts)
    return encode_splits(splits, name_chars, vocab, "default (faker surnames)" if data_dir is None else str(data_dir))
