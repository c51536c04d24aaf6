"""Hostile data files: the names folder loader, the IMDB readers and the LM text loader return data
that keeps their documented promises, or raise one clean SeqbatchError; never another exception,
never a hang (a hypothesis deadline of 5 s per case; a case takes milliseconds).

Each test's docstring says how many cases it tries; together about 18 s on 2 CPU cores. The
files are random bytes, or pieces a hostile file is made of: CRLF and lone CR, NUL, a UTF-8
byte-order mark, truncated and overlong UTF-8 sequences, encoded surrogates, long runs of one
letter, names in other scripts.
"""

from __future__ import annotations

import csv
import io
import lzma
import re
import tempfile
import unicodedata
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from shared.dataset import MAX_CHAR_VOCAB, imdb_dataset, names_dataset
from shared.errors import SeqbatchError
from shared.examples import Examples
from shared.imdb import CSV_FILES, CSV_HEADER, read_acl_split, read_csv
from shared.lm_data import MAX_DOC_CHARS, MAX_VOCAB, LMDataConfig, check_trainable, eval_batches, load_lm_data
from shared.names import MAX_NAME_CHARS, load_names
from shared.text import MAX_TOKENS, TextConfig

T = TypeVar("T")
FUZZ = settings(deadline=5000, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

PIECES: list[bytes] = [
    b"Smith", b"Nowak", "Müller".encode(), "Παπαδόπουλος".encode(), "Иванов".encode(), "山田".encode(),
    b"\n", b"\r\n", b"\r", b"\x00", b"\xef\xbb\xbf", b" ", b"\t", b"  \t ", b",", b'"', b'""',
    b"\xff", b"\xc3", b"\xe2\x82", b"\xc0\xaf", b"\xed\xa0\x80", "\u2028".encode(), "\x85".encode(),
    b"x" * (MAX_NAME_CHARS + 1), b"<br />", b"negative", b"positive",
]
CONTENT: st.SearchStrategy[bytes] = st.one_of(
    st.binary(max_size=400),
    st.text(max_size=200).map(str.encode),
    st.lists(st.sampled_from(PIECES), max_size=40).map(b"".join),
)
LABEL_NAMES = ["Greek", "Polish", "Ελληνικά", "two words", "A"]
# Mostly-valid files: names (any Unicode text, real names, one too long), lines ended by LF, CRLF or CR.
NAME = st.sampled_from(["Smith", "Nowak", "Müller", "Иванов", "山田", " Ryan\t", "x" * (MAX_NAME_CHARS + 1)]) | st.text(
    max_size=12)
NAME_FILE: st.SearchStrategy[bytes] = st.tuples(st.lists(NAME, min_size=1, max_size=16),
                                                st.sampled_from(["\n", "\r\n", "\r"])).map(
    lambda t: t[1].join(t[0]).encode())


def clean_or(fn: Callable[[], T], what: str) -> T | SeqbatchError:
    """fn(), or the SeqbatchError it raised (one line, not empty); any other exception fails the
    test. Which of the two it was is a hypothesis event (--hypothesis-show-statistics)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = fn()
    except SeqbatchError as e:
        assert str(e) and "\n" not in str(e), repr(str(e))
        event(f"{what}: SeqbatchError {' '.join(re.sub(r'[^ ]*/tmp[^ ]*', '', str(e)).split()[:4])}")
        return e
    event(f"{what}: loaded")
    return result


def check_names(ex: Examples) -> None:
    assert len(ex.texts) == len(ex.labels) > 0
    for text in ex.texts:
        assert text == text.strip() and 0 < len(text) <= MAX_NAME_CHARS, repr(text)
        assert "\n" not in text and "\r" not in text and "\x00" not in text
        assert unicodedata.is_normalized("NFC", text)
    assert set(ex.labels) == set(range(len(ex.label_names)))  # every label file gave names


@settings(FUZZ, max_examples=1000)
@given(files=st.dictionaries(st.sampled_from(LABEL_NAMES), CONTENT | NAME_FILE | NAME_FILE, min_size=2, max_size=3))
def test_names_folder_of_hostile_files(files: dict[str, bytes]) -> None:
    """1,000 cases: 2 or 3 `<Label>.txt` files of random bytes, hostile pieces or lists of names
    (any Unicode, one too long; LF, CRLF or CR); load_names, then the whole names dataset (split,
    vocabulary, encoding)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for label, raw in files.items():
            (folder / f"{label}.txt").write_bytes(raw)
        ex = clean_or(lambda: load_names(folder), "load_names")
        if isinstance(ex, SeqbatchError):
            return
        check_names(ex)
        data = clean_or(lambda: names_dataset(folder), "names_dataset")
        if isinstance(data, SeqbatchError):
            return
        assert data.num_classes >= 2 and len(data.vocab) <= MAX_CHAR_VOCAB
        assert max(data.train.lengths) <= MAX_NAME_CHARS


def csv_bytes(rows: list[list[str]], broken: bool) -> bytes:
    """The IMDB header and rows, quoted by the csv module, or joined with bare commas (broken quoting)."""
    if broken:
        return "\r\n".join(",".join(r) for r in [CSV_HEADER, *rows]).encode()
    out = io.StringIO()
    csv.writer(out).writerows([CSV_HEADER, *rows])
    return out.getvalue().encode()


FIELD = st.text(max_size=30) | st.lists(st.sampled_from(PIECES), max_size=8).map(
    lambda p: b"".join(p).decode("utf-8", "replace"))
ROW = st.lists(st.sampled_from(["negative", "positive", "neutral", ""]) | FIELD, min_size=3, max_size=5)
SENTIMENT_ROW = st.tuples(FIELD, st.sampled_from(["negative", "positive"])).map(lambda t: ["1", "7", t[1], t[0]])


def check_reviews(ex: Examples) -> None:
    assert len(ex) > 0 and set(ex.labels) <= {0, 1} and ex.label_names == ["negative", "positive"]
    assert all(isinstance(t, str) for t in ex.texts)


@settings(FUZZ, max_examples=1000)
@given(raw=CONTENT | st.tuples(st.lists(SENTIMENT_ROW | ROW, max_size=8), st.booleans()).map(lambda t: csv_bytes(*t))
       | st.lists(SENTIMENT_ROW, min_size=1, max_size=8).map(lambda rows: csv_bytes(rows, broken=False)),
       xz=st.sampled_from(["plain", "xz", "truncated xz"]))
def test_imdb_csv_of_hostile_bytes(raw: bytes, xz: str) -> None:
    """1,000 cases: random bytes, or the IMDB header with rows of random fields (or well-formed rows
    of random reviews), quoted properly or joined with bare commas (broken quoting); as .csv,
    .csv.xz, or a truncated .csv.xz."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("imdb_train.csv" if xz == "plain" else "imdb_train.csv.xz")
        packed = raw if xz == "plain" else lzma.compress(raw)
        path.write_bytes(packed if xz != "truncated xz" else packed[: len(packed) // 2])
        ex = clean_or(lambda: read_csv(path), "read_csv")
        if isinstance(ex, SeqbatchError):
            assert str(ex).startswith(str(path)), str(ex)
        else:
            check_reviews(ex)


@settings(FUZZ, max_examples=500)
@given(neg=st.lists(CONTENT, max_size=3), pos=st.lists(CONTENT, max_size=3), odd_name=st.booleans())
def test_imdb_acl_folder_of_hostile_files(neg: list[bytes], pos: list[bytes], odd_name: bool) -> None:
    """500 cases: aclImdb `neg/` and `pos/` of 0 to 3 reviews of random bytes, sometimes a badly named file."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for sub, reviews in (("neg", neg), ("pos", pos)):
            (root / sub).mkdir()
            for i, raw in enumerate(reviews):
                (root / sub / f"{i}_{3 if sub == 'neg' else 8}.txt").write_bytes(raw)
        if odd_name:
            (root / "pos" / "review.txt").write_bytes(b"fine")
        ex = clean_or(lambda: read_acl_split(root), "read_acl_split")
        if not isinstance(ex, SeqbatchError):
            check_reviews(ex)


@settings(FUZZ, max_examples=200)
@given(rows=st.lists(SENTIMENT_ROW, min_size=0, max_size=30), level=st.sampled_from(["word", "char"]),
       max_len=st.sampled_from([None, 1, 5, MAX_TOKENS]))
def test_imdb_dataset_of_hostile_reviews(rows: list[list[str]], level: str, max_len: int | None) -> None:
    """200 cases: a csv folder of 0 to 30 random reviews per file, at word or char level, max_len
    None to MAX_TOKENS: a dataset of both classes with at most MAX_TOKENS steps, or a clean error."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in CSV_FILES.values():
            (folder / name).write_bytes(lzma.compress(csv_bytes(rows, broken=False)))
        cfg = TextConfig(level=level, max_len=max_len, min_freq=1)  # type: ignore[arg-type]
        data = clean_or(lambda: imdb_dataset(folder, cfg), "imdb_dataset")
        if not isinstance(data, SeqbatchError):
            assert len(set(data.train.labels.tolist())) == 2
            assert max(data.train.lengths) <= MAX_TOKENS


def lm_outcome(path: Path, cfg: LMDataConfig) -> None:
    data: Any = clean_or(lambda: load_lm_data(path, cfg), f"load_lm_data {cfg.batching}")
    if isinstance(data, SeqbatchError):
        return
    assert len(data.vocab) <= MAX_VOCAB
    if cfg.batching == "documents":
        assert all(2 < len(s) <= MAX_DOC_CHARS + 2 for split in ("train", "val", "test") for s in data.split(split))
    if isinstance(clean_or(lambda: check_trainable(data, 1, 1), "check_trainable"), SeqbatchError):
        return
    for split in ("train", "val", "test"):
        assert data.split(split) and all(len(s) >= 2 for s in data.split(split)), split
    for split in ("val", "test"):  # what training evaluates must not fail after the training
        assert list(eval_batches(data, split, rows=4, seq_length=8))


TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=30)
LINES = st.lists(TEXT | st.sampled_from(PIECES).map(lambda b: b.decode("utf-8", "replace")), min_size=20, max_size=60,
                 unique=True)


def write_lm_text(tmp: str, raw: bytes, batching: str, unit: str, folder: bool) -> Path:
    """One file, or (documents) a folder of 3 files, or of 24 for a document per file (a split needs 20)."""
    if not (folder and batching == "documents"):
        path = Path(tmp) / "text.txt"
        path.write_bytes(raw)
        return path
    lines, n = raw.split(b"\n"), 24 if unit == "file" else 3
    for i in range(n):
        (Path(tmp) / f"{i}.txt").write_bytes(b"\n".join(lines[i::n]))
    return Path(tmp)


LM_LAYOUT = {"batching": st.sampled_from(["stream", "documents"]), "unit": st.sampled_from(["line", "file"]),
             "folder": st.booleans()}


@settings(FUZZ, max_examples=400)
@given(raw=CONTENT | st.lists(CONTENT, min_size=20, max_size=40).map(b"\n".join), **LM_LAYOUT)
def test_lm_text_of_hostile_bytes(raw: bytes, batching: str, unit: str, folder: bool) -> None:
    """400 cases: a text file or folder (see write_lm_text) of random bytes or hostile pieces, read
    as a stream or as documents (per line or per file)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = write_lm_text(tmp, raw, batching, unit, folder)
        lm_outcome(path, LMDataConfig(batching=batching, doc_unit=unit))  # type: ignore[arg-type]


@settings(FUZZ, max_examples=300)
@given(lines=LINES, newline=st.sampled_from(["\n", "\r\n", "\r"]), **LM_LAYOUT)
def test_lm_text_of_any_unicode_lines(lines: list[str], newline: str, batching: str, unit: str, folder: bool) -> None:
    """300 cases: 20 to 60 distinct lines of any Unicode text (no NUL) or hostile pieces, ended by
    LF, CRLF or CR, in a file or folder, read as a stream or as documents."""
    with tempfile.TemporaryDirectory() as tmp:
        path = write_lm_text(tmp, newline.join(lines).encode(), batching, unit, folder)
        lm_outcome(path, LMDataConfig(batching=batching, doc_unit=unit))  # type: ignore[arg-type]


@pytest.mark.parametrize("batching", ["stream", "documents"])
def test_a_10_mb_single_line_of_lm_text(tmp_path: Path, batching: str) -> None:
    """A stream is one long text anyway: 10 MB on one line loads. As documents it is refused by
    name: one document that long would make its batch 10 million steps wide."""
    path = tmp_path / "one-line.txt"
    path.write_bytes(b"abcdefghij" * 1_000_000)
    if batching == "stream":
        data = load_lm_data(path, LMDataConfig())
        assert data.chars["train"] == 9_000_000 and len(data.vocab) == 13  # pad, unk, newline, a..j
    else:
        with pytest.raises(SeqbatchError, match=r"one-line\.txt: line 1: a document of 10,000,000 characters"):
            load_lm_data(path, LMDataConfig(batching="documents"))
