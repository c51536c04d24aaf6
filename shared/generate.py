"""Sampling text from a language model, in NumPy, the same for both backends.

A backend only gives next-character logits and the new carried state (`<backend>.models.lm.logits`);
everything random happens here, with one seeded `numpy.random.Generator`. So the same checkpoint,
prime and seed give the same text on both backends, up to the draws that land within float32
rounding (~1e-6) of the boundary between two characters' cumulative probabilities: there the
backends' last-digit differences can pick different characters, and the texts part from then on.
Greedy decoding (`top_k=1`) takes the argmax and never draws.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from jaxtyping import Float

from shared.errors import SeqbatchError
from shared.kinds.lm import Carry, LMBatch
from shared.lm_data import NEWLINE
from shared.vocab import PAD, UNK, Vocab


@dataclass(frozen=True)
class SampleConfig:
    length: int = 500  # characters to generate at most
    temperature: float = 1.0
    top_k: int | None = None  # None: the whole vocabulary; 1: greedy
    seed: int = 0

    def __post_init__(self) -> None:
        if self.length < 1:
            raise SeqbatchError(f"--length must be >= 1, got {self.length}")
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise SeqbatchError(f"--temperature must be a number > 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise SeqbatchError(f"--top-k must be >= 1, got {self.top_k}")


def next_token(logits: Float[np.ndarray, " vocab"], cfg: SampleConfig, rng: np.random.Generator) -> int:
    """One draw from softmax(logits / temperature) restricted to the top k; <pad> and <unk> never."""
    z = np.asarray(logits, np.float64).copy()
    z[[PAD, UNK]] = -np.inf
    if cfg.top_k == 1:
        return int(np.argmax(z))
    if cfg.top_k is not None and cfg.top_k < len(z):
        cutoff = np.sort(z)[-cfg.top_k]
        z[z < cutoff] = -np.inf
    z = (z - z.max()) / cfg.temperature
    p = np.exp(z)
    cdf = np.cumsum(p / p.sum())
    return int(min(np.searchsorted(cdf, rng.random(), side="right"), len(z) - 1))


def encode_prime(vocab: Vocab, prime: str) -> np.ndarray:
    """The prime's ids; SeqbatchError naming every character the model has never seen."""
    unknown = sorted({c for c in prime if c not in vocab.index or vocab.index[c] in (PAD, UNK)})
    if unknown:
        raise SeqbatchError(f"--prime has characters outside the model's vocabulary: {unknown!r}")
    return vocab.encode(list(prime))


def generate(lm: Any, model: Any, vocab: Vocab, prime: str, cfg: SampleConfig, *, documents: bool) -> str:
    """Prime the model, then sample up to `cfg.length` characters; returns prime + generated text.

    `lm` is a backend's `models.lm` module. A documents model (names) starts from the newline that
    opens every document and stops at the newline that ends one.
    """
    if not prime and not documents:
        raise SeqbatchError("--prime is empty: give at least one character to start the text from")
    ids = encode_prime(vocab, (NEWLINE if documents else "") + prime)
    rng = np.random.default_rng(cfg.seed)
    carry: Carry | None = None
    batch = LMBatch(ids[None, :], np.zeros_like(ids)[None, :], np.array([len(ids)], np.int32), reset=True)
    out: list[str] = []
    newline = vocab.index.get(NEWLINE)
    for _ in range(cfg.length):
        logits, carry = lm.logits(model, batch, carry)
        token = next_token(logits[0, -1], cfg, rng)
        if documents and token == newline:
            break
        out.append(vocab.tokens[token])
        one = np.array([[token]], np.int32)
        batch = LMBatch(one, np.zeros_like(one), np.array([1], np.int32), reset=False)
    return prime + "".join(out)
