"""Text for the character-level language model: loading, splits, and the two ways to batch it.

*stream* (the char-RNN lesson's `get_batches`): one long text. Each epoch, the encoded train text
is cut to the largest multiple of `B * T` that still has a next character after it, laid out as
B rows (row r holds the r-th contiguous B-th of the text), and read T columns at a time:

    row 0: [ w0 | w1 | w2 ... ]      window k = columns k*T .. (k+1)*T - 1 of every row
    row 1: [ w0 | w1 | w2 ... ]      targets  = the same positions shifted by one character
    ...                              (the last target of window k is the first input of window k+1)

The state at the end of window k is where window k+1 starts (truncated backpropagation: gradients
stop at the window edge); the first window of each epoch resets it. The remainder (fewer than
`B * T + 1` characters at the end) is dropped, not wrapped: every target is the real next character.

*documents*: one sequence per document (a line of a file, e.g. one surname, or a whole file),
framed by a newline before and after (`\\n M c D o n a l d \\n`): inputs are all but the last
character, targets all but the first; the state starts at zero for every document, and the loss
counts real positions only. A generator primes with the newline and stops at the next one.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from jaxtyping import Int
from sklearn.model_selection import train_test_split

from shared.batching import Sampler, bucket_length
from shared.errors import SeqbatchError
from shared.kinds.lm import LMBatch
from shared.textfiles import read_utf8, txt_files
from shared.vocab import PAD, Vocab

NEWLINE = "\n"  # frames each document; in stream text it is just a character
Batching = Literal["stream", "documents"]
FRACTIONS = (0.9, 0.05, 0.05)  # train / val / test: contiguous for a stream, seeded random for documents
MAX_DOC_CHARS = 10_000  # the longest document (see load_documents)
MAX_VOCAB = 5000  # most characters (pad and unk included) a fitted vocabulary keeps; the rarest read as <unk>


@dataclass(frozen=True)
class LMDataConfig:
    """How text became training sequences; stored in the checkpoint (`seqbatch.data`)."""

    batching: Batching = "stream"
    doc_unit: Literal["line", "file"] = "line"  # documents read from a folder or file: a line or a file each
    seed: int = 0  # the document split's seed (a stream's split is contiguous and needs none)

    def __post_init__(self) -> None:
        if self.batching not in ("stream", "documents"):
            raise SeqbatchError(f"LM batching must be stream or documents, got {self.batching!r:.60}")
        if self.doc_unit not in ("line", "file"):
            raise SeqbatchError(f"LM doc_unit must be line or file, got {self.doc_unit!r:.60}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise SeqbatchError(f"LM data seed must be an integer, got {self.seed!r:.60}")

    def to_json(self) -> str:
        return json.dumps({"task": "charlm", **asdict(self)}, sort_keys=True)

    @classmethod
    def from_dict(cls, d: Any) -> LMDataConfig:
        if not isinstance(d, dict):
            raise SeqbatchError(f"LM data metadata must be a JSON object, got {type(d).__name__}")
        missing = sorted({"batching", "doc_unit", "seed"} - d.keys())
        if missing:
            raise SeqbatchError(f"LM data metadata lacks {missing}")
        return cls(batching=d["batching"], doc_unit=d["doc_unit"], seed=d["seed"])

    @classmethod
    def from_json(cls, text: str) -> LMDataConfig:
        try:
            d = json.loads(text)
        except (ValueError, RecursionError) as e:
            raise SeqbatchError(f"LM data metadata is not valid JSON: {e} (in {text[:200]!r})") from e
        return cls.from_dict(d)


def default_corpus() -> tuple[str, str]:
    """Python's own documentation prose (the `pydoc_data` topics that ship with CPython): about
    465,000 characters of English, no download. Returns (text, source description)."""
    try:
        from pydoc_data.topics import topics
    except ImportError as e:  # some distributions strip pydoc_data
        raise SeqbatchError("this Python has no pydoc_data (the default LM corpus); give --data FILE.txt") from e
    return "\n\n".join(topics[k].strip() for k in sorted(topics)), "default (Python's pydoc_data topics)"


def load_documents(path: Path, unit: str) -> list[str]:
    """Documents from a file or a folder of `.txt` files: each non-blank line, or each whole file.

    A document longer than MAX_DOC_CHARS is an error naming its file (and line): every document
    is one sequence, so one 10 MB line would make its batch 10 million steps wide; stream
    batching is the way to read long text.
    """
    files = txt_files(path) if path.is_dir() else [path]
    if not files:
        raise SeqbatchError(f"data folder {str(path)!r} holds no .txt files")
    docs: list[str] = []
    for f in files:
        text = read_utf8(f)
        parts = [text] if unit == "file" else text.split(NEWLINE)
        for i, part in enumerate(parts):
            doc = part.strip()
            if len(doc) > MAX_DOC_CHARS:
                where = f"{f}" if unit == "file" else f"{f}: line {i + 1}"
                raise SeqbatchError(f"{where}: a document of {len(doc):,} characters; documents may have at most "
                                    f"{MAX_DOC_CHARS:,} (use --lm-batching stream for long text)")
            if doc:
                docs.append(doc)
    if not docs:
        raise SeqbatchError(f"{path}: no text (every line is blank)")
    return docs


@dataclass(frozen=True)
class LMData:
    """Encoded splits. Stream: each split one id array. Documents: each split a list of framed id arrays."""

    vocab: Vocab
    cfg: LMDataConfig
    train: list[np.ndarray]
    val: list[np.ndarray]
    test: list[np.ndarray]
    source: str
    chars: dict[str, int]  # characters per split, before framing

    def split(self, name: str) -> list[np.ndarray]:
        return {"train": self.train, "val": self.val, "test": self.test}[name]


def load_lm_data(data: str | Path | None, cfg: LMDataConfig, vocab: Vocab | None = None) -> LMData:
    """Read, split (90/5/5) and encode. The vocabulary is fitted on the train split's characters
    (plus the newline), unless one is given (a checkpoint's); unseen characters read as <unk>."""
    if data is None:
        if cfg.batching != "stream":
            raise SeqbatchError("the default corpus is one text: use stream batching or give --data")
        text, source = default_corpus()
        docs = [text]
    else:
        path = Path(data)
        if not path.exists():
            raise SeqbatchError(f"data {str(path)!r} does not exist")
        source = str(path)
        if cfg.batching == "stream":
            if path.is_dir():
                raise SeqbatchError(f"{path} is a folder: stream batching reads one text file "
                                    "(use --lm-batching documents for a folder of documents)")
            docs = [read_utf8(path)]
            if not docs[0].strip():
                raise SeqbatchError(f"{path}: the file is empty")
        else:
            docs = load_documents(path, cfg.doc_unit)
    if cfg.batching == "stream":
        text = docs[0]
        cuts = np.cumsum([int(len(text) * f) for f in FRACTIONS[:2]])
        parts = [text[: cuts[0]], text[cuts[0] : cuts[1]], text[cuts[1] :]]
    else:
        docs = list(dict.fromkeys(docs))  # the same document twice would sit in two splits
        if len(docs) < 20:
            raise SeqbatchError(f"{source}: {len(docs)} distinct documents; a 90/5/5 split needs at least 20")
        train, rest = train_test_split(docs, test_size=FRACTIONS[1] + FRACTIONS[2], random_state=cfg.seed)
        val, test = train_test_split(rest, test_size=0.5, random_state=cfg.seed)
        parts = [train, val, test]
    if vocab is None:
        train_texts = parts[0] if isinstance(parts[0], list) else [parts[0]]
        vocab = Vocab.fit([[NEWLINE], *(list(t) for t in train_texts)])
        if len(vocab) > MAX_VOCAB:  # random Unicode would give a one-hot input a million wide
            warnings.warn(f"{source}: {len(vocab) - 2} distinct characters; the {MAX_VOCAB - 2} most frequent "
                          "are kept, the rest read as <unk>", stacklevel=2)
            kept = vocab.tokens[:MAX_VOCAB]
            if NEWLINE not in kept:  # it frames every document and primes the generator
                kept = (*kept[:-1], NEWLINE)
            vocab = Vocab(kept)

    def encode(part: str | list[str]) -> list[np.ndarray]:
        if isinstance(part, str):
            return [vocab.encode(list(part))]
        return [vocab.encode([NEWLINE, *doc, NEWLINE]) for doc in part]

    chars = {name: sum(map(len, p)) if isinstance(p, list) else len(p)
             for name, p in zip(("train", "val", "test"), parts, strict=True)}
    return LMData(vocab, cfg, *(encode(p) for p in parts), source=source, chars=chars)


# ---- stream batches --------------------------------------------------------------------------


def stream_rows(ids: Int[np.ndarray, " n"], rows: int, *, multiple: int = 1
                ) -> tuple[Int[np.ndarray, "rows cols"], Int[np.ndarray, "rows cols"]]:
    """Inputs and next-character targets laid out as `rows` contiguous rows; the row length is the
    largest multiple of `multiple` that leaves a next character after the last input."""
    cols = (len(ids) - 1) // rows // multiple * multiple
    if cols < 1:
        raise SeqbatchError(f"the text has {len(ids)} characters: too short for {rows} rows"
                            + (f" of {multiple}-character windows" if multiple > 1 else "")
                            + " (lower --batch-size or --seq-length)")
    n = rows * cols
    return ids[:n].reshape(rows, cols), ids[1 : n + 1].reshape(rows, cols)


def stream_windows(ids: Int[np.ndarray, " n"], rows: int, seq_length: int, *, full: bool = True
                   ) -> Iterator[LMBatch]:
    """One pass in windows of `seq_length` columns; the first resets the carried state.

    `full` (training): only whole windows (the lesson's trim). Otherwise (evaluation): rows as long
    as the text allows and a shorter last window, so that all but fewer than `rows` characters count.
    """
    inputs, targets = stream_rows(ids, rows, multiple=seq_length if full else 1)
    for k, start in enumerate(range(0, inputs.shape[1], seq_length)):
        x, y = inputs[:, start : start + seq_length], targets[:, start : start + seq_length]
        yield LMBatch(np.ascontiguousarray(x, np.int32), np.ascontiguousarray(y, np.int32),
                      np.full(rows, x.shape[1], np.int32), reset=k == 0)


def windows_per_epoch(n_chars: int, rows: int, seq_length: int) -> int:
    return (n_chars - 1) // rows // seq_length


# ---- document batches ------------------------------------------------------------------------


def doc_batch(docs: Sequence[np.ndarray], *, multiple: int = 8) -> LMBatch:
    """Framed documents padded behind the real steps: inputs doc[:-1], targets doc[1:]."""
    lengths = np.fromiter((len(d) - 1 for d in docs), np.int32, count=len(docs))
    t = bucket_length(int(lengths.max()), multiple)
    inputs = np.full((len(docs), t), PAD, np.int32)
    targets = np.full((len(docs), t), PAD, np.int32)
    for i, d in enumerate(docs):
        inputs[i, : len(d) - 1], targets[i, : len(d) - 1] = d[:-1], d[1:]
    return LMBatch(inputs, targets, lengths, reset=True)


def doc_sampler(docs: Sequence[np.ndarray], batch_size: int, *, seed: int, bucket_chunk: int = 0) -> Sampler:
    """Shuffled epochs over documents, optionally length-bucketed (shared.batching.Sampler)."""
    lengths = np.fromiter((len(d) for d in docs), np.int64, count=len(docs))
    return Sampler(np.zeros(len(docs), np.int64), batch_size, kind="epoch", seed=seed, lengths=lengths,
                   bucket_chunk=bucket_chunk)


def eval_batches(data: LMData, split: str, *, rows: int, seq_length: int, multiple: int = 8) -> Iterator[LMBatch]:
    """Every batch of a split for evaluation: stream windows in order, or documents sorted by length."""
    seqs = data.split(split)
    if data.cfg.batching == "stream":
        yield from stream_windows(seqs[0], min(rows, max(1, (len(seqs[0]) - 1) // 2)), seq_length, full=False)
        return
    order = np.argsort([len(d) for d in seqs], kind="stable")
    for i in range(0, len(order), rows):
        yield doc_batch([seqs[j] for j in order[i : i + rows]], multiple=multiple)


def train_batches(data: LMData, batch_size: int, seq_length: int, *, seed: int, bucket_chunk: int = 0,
                  multiple: int = 8) -> Iterator[LMBatch]:
    """Training batches forever, epoch after epoch (the stream layout is the same every epoch)."""
    if data.cfg.batching == "stream":
        while True:
            yield from stream_windows(data.train[0], batch_size, seq_length)
    sampler = doc_sampler(data.train, batch_size, seed=seed, bucket_chunk=bucket_chunk)
    for idx in sampler:
        yield doc_batch([data.train[i] for i in idx], multiple=multiple)


def batches_per_epoch(data: LMData, batch_size: int, seq_length: int) -> int:
    if data.cfg.batching == "stream":
        return windows_per_epoch(len(data.train[0]), batch_size, seq_length)
    return math.ceil(len(data.train) / batch_size)


def check_trainable(data: LMData, batch_size: int, seq_length: int) -> None:
    """SeqbatchError unless the train split holds at least one batch of windows, and (a stream)
    validation and test hold a character and its next one each: else evaluation would fail only
    after the training (a 30-character text leaves 1 character of validation)."""
    if data.cfg.batching != "stream":
        return  # 20 documents or more, each framed by newlines: every split has a sequence to score
    if windows_per_epoch(len(data.train[0]), batch_size, seq_length) < 1:
        raise SeqbatchError(
            f"{data.source}: the train split has {len(data.train[0])} characters, fewer than one batch of "
            f"windows needs ({batch_size} rows x {seq_length} + 1 = {batch_size * seq_length + 1}); "
            "lower --batch-size or --seq-length, or give more text")
    for split in ("val", "test"):
        if len(data.split(split)[0]) < 2:
            raise SeqbatchError(f"{data.source}: the {split} split (5 % of the text) has {len(data.split(split)[0])} "
                                "character(s); scoring it needs two; give more text")
