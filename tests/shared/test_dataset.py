"""Data sets made ready for training: what a classifier needs of its data, and caps on hostile sizes."""

from __future__ import annotations

import csv
import io
import lzma
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from shared.dataset import MAX_CHAR_VOCAB, char_vocab, imdb_dataset, name_chars, names_dataset
from shared.errors import SeqbatchError
from shared.imdb import CSV_FILES, CSV_HEADER
from shared.names import MAX_NAME_CHARS
from shared.text import MAX_TOKENS, TextConfig

NamesDir = Callable[..., Path]  # the make_names_dir fixture (tests/conftest.py)
REVIEWS = {"negative": ["awful film", "dull and slow", "boring plot", "weak cast", "a painful mess"],
           "positive": ["loved it", "great fun", "a gem", "superb acting", "truly moving"]}


def test_one_label_is_not_a_training_set_for_a_classifier(make_names_dir: NamesDir) -> None:
    folder = make_names_dir({"German": ["Schmidt", "Meyer", "Bauer", "Wagner", "Becker"]})
    with pytest.raises(SeqbatchError, match=r"the training data has 1 label\(s\) \(German\); a classifier needs"):
        names_dataset(folder)


def test_name_chars_refuses_a_name_longer_than_the_maximum() -> None:
    assert name_chars(" " + "x" * MAX_NAME_CHARS + "\t") == ["x"] * MAX_NAME_CHARS
    with pytest.raises(SeqbatchError, match=rf"has {MAX_NAME_CHARS + 1} characters; names may have at most"):
        name_chars("x" * (MAX_NAME_CHARS + 1))


def test_a_character_vocabulary_keeps_the_most_frequent_characters_only() -> None:
    rare = [chr(0x4E00 + i) for i in range(MAX_CHAR_VOCAB + 100)]  # each seen once
    with pytest.warns(UserWarning, match=rf"{MAX_CHAR_VOCAB + 101} distinct characters; the {MAX_CHAR_VOCAB - 2}"):
        vocab = char_vocab([["a", "a"], rare], "src")
    assert len(vocab) == MAX_CHAR_VOCAB and vocab.tokens[2] == "a"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(char_vocab([["a", "b"]], "src")) == 4


def csv_folder(folder: Path, train: dict[str, list[str]], test: dict[str, list[str]] = REVIEWS) -> Path:
    folder.mkdir()
    for name, part in (("train", train), ("test", test)):
        out = io.StringIO()
        csv.writer(out).writerows([CSV_HEADER, *([str(i), "5", label, text] for label, texts in part.items()
                                                 for i, text in enumerate(texts))])
        (folder / CSV_FILES[name]).write_bytes(lzma.compress(out.getvalue().encode()))
    return folder


def test_reviews_of_one_sentiment_are_not_a_training_set(tmp_path: Path) -> None:
    folder = csv_folder(tmp_path / "imdb", {"negative": REVIEWS["negative"]})
    with pytest.raises(SeqbatchError, match=r"imdb: the training data has 1 label\(s\) \(negative\)"):
        imdb_dataset(folder, TextConfig(min_freq=1))


def test_a_10_mb_review_kept_whole_is_refused_not_allocated(tmp_path: Path) -> None:
    # --max-len 0 (keep all) at char level: one 10 MB review would be a 10-million-step batch.
    acl = tmp_path / "aclImdb"
    for split in ("train", "test"):
        for sub, label in (("neg", "negative"), ("pos", "positive")):
            (acl / split / sub).mkdir(parents=True)
            for i, text in enumerate(REVIEWS[label]):
                (acl / split / sub / f"{i}_5.txt").write_text(text)
    (acl / "train" / "pos" / "99_9.txt").write_text("great " * 1_700_000)
    with pytest.raises(SeqbatchError, match=rf"a review of 10,199,999 char tokens \(it starts 'great great.*"
                                            rf"longer than the {MAX_TOKENS:,} a review may keep; set max_len"):
        imdb_dataset(tmp_path, TextConfig(level="char", max_len=None, min_freq=1))
    data = imdb_dataset(tmp_path, TextConfig(level="char", max_len=400, min_freq=1))
    assert int(np.max(np.concatenate([s.lengths for s in (data.train, data.val, data.test)]))) == 400
