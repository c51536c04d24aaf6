"""A task's data made ready for training: splits encoded with a vocabulary fitted on train only."""

from __future__ import annotations

import dataclasses
import unicodedata
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from shared.batching import Batch, pad
from shared.errors import SeqbatchError
from shared.examples import Examples
from shared.imdb import load_imdb
from shared.names import MAX_NAME_CHARS, load_names_or_default
from shared.splits import Splits, deduplicate, stratified_split
from shared.text import TextConfig, text_tokens
from shared.vocab import UNK, Vocab

Tokenizer = Callable[[str], list[str]]
# Most entries a character vocabulary keeps (pad and unk included). The real names data has 87
# characters, the embedded default 234; Chinese or Japanese names in their own scripts would
# need a few thousand.
MAX_CHAR_VOCAB = 5000


def name_chars(name: str) -> list[str]:
    """A surname as characters (NFC, surrounding whitespace stripped). Empty names, and names
    longer than MAX_NAME_CHARS (the data loader skips those too), are an error."""
    text = unicodedata.normalize("NFC", name).strip()
    if not text:
        raise SeqbatchError(f"empty name {name!r}: give at least one character")
    if len(text) > MAX_NAME_CHARS:
        raise SeqbatchError(f"name {text[:30]!r}... has {len(text)} characters; names may have at most "
                            f"{MAX_NAME_CHARS}")
    return list(text)


def check_classes(data: Examples, source: str) -> None:
    """SeqbatchError unless the training examples hold at least two labels: a classifier of one
    class learns nothing, and (names) ModelConfig would refuse it with a less helpful message."""
    present = sorted({data.label_names[i] for i in data.labels})
    if len(present) < 2:
        raise SeqbatchError(f"{source}: the training data has {len(present)} label(s) ({', '.join(present)}); "
                            "a classifier needs examples of at least two")


def char_vocab(seqs: Iterable[Sequence[str]], source: str) -> Vocab:
    """A character vocabulary fitted on the training sequences, capped at MAX_CHAR_VOCAB entries
    (the rarest characters read as <unk>, with a warning): a file of random Unicode would
    otherwise give a one-hot input a million wide."""
    full = Vocab.fit(seqs)
    if len(full) <= MAX_CHAR_VOCAB:
        return full
    warnings.warn(f"{source}: {len(full) - 2} distinct characters; the {MAX_CHAR_VOCAB - 2} most frequent are "
                  "kept, the rest read as <unk>", stacklevel=3)
    return Vocab(full.tokens[:MAX_CHAR_VOCAB])


@dataclass(frozen=True)
class EncodedSplit:
    """Encoded examples and how their batches are padded: masked (the default), or, for the padding
    study, unmasked to a fixed `width` with the padding on `side` (shared/batching.py `pad`)."""

    seqs: list[np.ndarray]
    labels: np.ndarray
    mask: bool = True
    side: str = "right"
    width: int | None = None  # unmasked batches: every batch is this wide (the text's max_len)

    def subset(self, index: Sequence[int] | np.ndarray) -> EncodedSplit:
        """The examples at `index`, padded the same way."""
        return dataclasses.replace(self, seqs=[self.seqs[i] for i in index], labels=self.labels[np.asarray(index)])

    def __len__(self) -> int:
        return len(self.seqs)

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(s) for s in self.seqs), dtype=np.int64, count=len(self.seqs))

    def batch(self, index: np.ndarray, *, multiple: int = 8) -> Batch:
        return pad([self.seqs[i] for i in index], self.labels[index], multiple=multiple,
                   time=None if self.mask else self.width, mask=self.mask, side=self.side)


@dataclass(frozen=True)
class Dataset:
    vocab: Vocab
    label_names: list[str]
    train: EncodedSplit
    val: EncodedSplit
    test: EncodedSplit
    source: str
    text: TextConfig | None = None  # how raw text became tokens; None for names (characters)

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
    source = "default (faker surnames)" if data_dir is None else str(data_dir)
    check_classes(examples, source)
    splits = stratified_split(examples, seed=seed)
    vocab = char_vocab((name_chars(t) for t in splits.train.texts), source)
    return encode_splits(splits, name_chars, vocab, source)


def subsample(data: Examples, n: int | None, *, seed: int, what: str) -> Examples:
    """A stratified subsample of `n` examples (scikit-learn), or everything when n is None or >= len."""
    if n is None or n >= len(data):
        return data
    classes = len(set(data.labels))
    if n < 2 * classes:
        raise SeqbatchError(f"{what}={n} is too small: a stratified sample needs at least {2 * classes}")
    keep, _ = train_test_split(np.arange(len(data)), train_size=n, stratify=data.labels, random_state=seed)
    return data.subset(sorted(int(i) for i in keep))


def imdb_dataset(
    data_dir: str | Path | None,
    text_cfg: TextConfig,
    *,
    seed: int = 0,
    max_train: int | None = None,
    max_test: int | None = None,
    vocab: Vocab | None = None,
) -> Dataset:
    """IMDB: the original train set (optionally a stratified `max_train` subsample), deduplicated,
    split 90:10 into train/validation (stratified); the original test set (optionally `max_test`
    of it) as test. The vocabulary is fitted on the train part only, unless one is given (a
    checkpoint's, to evaluate it on the same splits)."""
    train_all, test, source = load_imdb(data_dir)
    train_all = subsample(deduplicate(train_all), max_train, seed=seed, what="max_train")
    check_classes(train_all, source)
    test = subsample(test, max_test, seed=seed, what="max_test")
    splits = stratified_split(train_all, val=0.1, test=0.0, seed=seed)
    tokens = {name: [text_tokens(t, text_cfg) for t in ex.texts]
              for name, ex in (("train", splits.train), ("val", splits.val), ("test", test))}
    if vocab is None:
        vocab = Vocab.fit(tokens["train"], min_freq=text_cfg.min_freq, max_size=text_cfg.max_vocab)
    empty = {name: sum(1 for t in toks if not t) for name, toks in tokens.items()}
    if any(empty.values()):
        # A review with no token left (all stop words, say) still needs one step: it reads as <unk>.
        warnings.warn(f"reviews with no tokens after cleaning, read as one <unk>: {empty}", stacklevel=2)

    def enc(name: str, ex: Examples) -> EncodedSplit:
        seqs = [vocab.encode(t) if t else np.array([UNK], np.int32) for t in tokens[name]]
        return EncodedSplit(seqs, np.asarray(ex.labels, dtype=np.int32), mask=text_cfg.mask, side=text_cfg.pad_side,
                            width=None if text_cfg.mask else text_cfg.max_len)

    return Dataset(vocab, list(train_all.label_names), enc("train", splits.train), enc("val", splits.val),
                   enc("test", test), source, text_cfg)
