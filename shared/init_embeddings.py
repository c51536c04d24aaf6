"""Pre-trained word vectors as the classifier's initial embedding rows (`train --init-embeddings`).

Backend-neutral: it works on the named NumPy parameters (shared/layout.py names) of a freshly
seeded model, so that both backends start from the same rows. Each vocabulary token found in the
file gets the file's vector in its row of `embedding.weight`; a token the file lacks keeps the
seeded init, and so does `<pad>` always (its row is the normal init's, as without vectors; the
model never reads it for a real token). Words match exactly: the file must be cased as the
vocabulary is (lower-cased, unless --keep-case).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from jaxtyping import Float, Int

from shared.errors import SeqbatchError
from shared.vocab import PAD, Vocab

EMBEDDING = "embedding.weight"  # the classifier's embedding table [V, E] (shared/layout.py)


@dataclass(frozen=True)
class Pretrained:
    """The rows of a vocabulary's embedding table that a vectors file provides."""

    source: str  # the file, for messages
    ids: Int[np.ndarray, " found"]  # vocabulary ids, ascending
    vectors: Float[np.ndarray, "found dim"]  # float32, the file's values
    vocab_size: int

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def found(self) -> int:
        return len(self.ids)

    @property
    def candidates(self) -> int:
        """The vocabulary's entries a file can provide: all but `<pad>`."""
        return self.vocab_size - 1

    def describe(self) -> str:
        """The one log line: how many of the vocabulary's tokens the file had."""
        return (f"init-embeddings: {self.found:,} of {self.candidates:,} vocabulary tokens found in {self.source} "
                f"(D={self.dim}); {self.candidates - self.found:,} keep the random init")


def vectors_dim(path: str | Path, flag: str = "--init-embeddings") -> int:
    """The dimension D from a word2vec file's header line `<words> <dimensions>` (text and binary
    formats both start with it), read without reading the vectors: for the flag checks."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            line = f.readline(256)
    except OSError as e:
        raise SeqbatchError(f"{flag} {path}: cannot read: {e.strerror or e}") from e
    parts = line.split()
    try:
        n_words, dim = (int(p) for p in parts)
    except ValueError:
        raise SeqbatchError(f"{flag} {path}: not a word2vec file: line 1 should be `<words> <dimensions>`, got "
                            f"{line[:80].decode('utf-8', 'replace')!r}") from None
    if n_words < 1 or dim < 1:
        raise SeqbatchError(f"{flag} {path}: the header says {n_words} words of {dim} dimensions; both must be >= 1")
    return dim


def match(vocab: Vocab, words: list[str], vectors: Float[np.ndarray, "words dim"], source: str) -> Pretrained:
    """The vocabulary's tokens (all but `<pad>`) found among `words` (row i of `vectors` is words[i]'s).
    A file sharing no word with the vocabulary is refused: it would silently change nothing."""
    if vectors.ndim != 2 or len(words) != vectors.shape[0]:
        raise SeqbatchError(f"{source}: {len(words)} words for vectors of shape {tuple(vectors.shape)}")
    row_of: dict[str, int] = {}
    for i, w in enumerate(words):
        row_of.setdefault(w, i)  # the first of a word given twice, as word2vec's own reader keeps it
    pairs = [(i, row_of[t]) for i, t in enumerate(vocab.tokens) if i != PAD and t in row_of]
    if not pairs:
        sample = ", ".join(repr(t) for t in vocab.tokens[2:7])
        raise SeqbatchError(f"{source} shares no word with the vocabulary ({len(vocab) - 1:,} tokens, e.g. {sample}; "
                            f"the file's first words: {', '.join(repr(w) for w in words[:5])})")
    ids = np.array([i for i, _ in pairs], np.int64)
    rows = np.array([r for _, r in pairs], np.int64)
    return Pretrained(source, ids, np.asarray(vectors, np.float32)[rows], len(vocab))


def apply(params: dict[str, np.ndarray], pre: Pretrained) -> dict[str, np.ndarray]:
    """A copy of `params` (named arrays) whose embedding rows `pre.ids` hold the file's vectors, cast
    to the table's dtype (float32 values are exact in float64 too); every other array is unchanged."""
    if EMBEDDING not in params:
        raise SeqbatchError(f"--init-embeddings: the model has no {EMBEDDING} (one-hot input?)")
    table = np.array(params[EMBEDDING], copy=True)
    if table.shape != (pre.vocab_size, pre.dim):
        raise SeqbatchError(f"--init-embeddings {pre.source}: the embedding table is {list(table.shape)}, the "
                            f"vectors give [{pre.vocab_size}, {pre.dim}] (vocabulary size, dimension)")
    table[pre.ids] = pre.vectors.astype(table.dtype)
    return {**params, EMBEDDING: table}
