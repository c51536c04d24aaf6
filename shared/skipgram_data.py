"""Skip-gram training data, backend-neutral (issue 13, item 1): a word corpus, frequent-word
subsampling, word2vec's dynamic window, the noise distribution and seeded batches of (centre,
context, K negatives), so that both backends see identical batches.

- **Vocabulary**: words seen at least `min_count` times, most frequent first (ties by the word);
  the rest are dropped from the corpus, as word2vec does.
- **Subsampling** (`rule`, with `sample` = t; f = count / total): `word2vec` keeps an occurrence
  with probability `(sqrt(f / t) + 1) * t / f` (the C tool's and gensim's formula), `lesson`
  with `sqrt(t / f)` (the lesson's discard probability `1 - sqrt(t / f)`), `none` keeps all;
  probabilities are capped at 1. A new draw per epoch.
- **Window**: for each kept centre word a radius r drawn uniformly from 1..`window`; its contexts
  are the kept words within r positions on either side (word2vec's dynamic window, which weights
  near words more).
- **Negatives**: K words per pair drawn from counts ** 0.75 (normalised), with replacement; a
  negative may equal the context word (word2vec re-draws those; the effect is below 1/V).
- **Order**: pairs come centre by centre in corpus order, shuffled within chunks of
  `shuffle_chunk` pairs (minibatches of neighbouring pairs would hold one centre many times).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from jaxtyping import Float, Int

from shared.errors import SeqbatchError

RULES = ("word2vec", "lesson", "none")
NOISE_POWER = 0.75


@dataclass(frozen=True)
class SkipgramDataConfig:
    min_count: int = 5
    window: int = 5
    negatives: int = 5
    sample: float = 1e-3
    rule: str = "word2vec"
    shuffle_chunk: int = 1 << 16

    def __post_init__(self) -> None:
        for name in ("min_count", "window", "negatives", "shuffle_chunk"):
            if int(getattr(self, name)) < 1:
                raise SeqbatchError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.rule not in RULES:
            raise SeqbatchError(f"subsampling rule must be one of {', '.join(RULES)}, got {self.rule!r}")
        if not (math.isfinite(self.sample) and self.sample > 0):
            raise SeqbatchError(f"sample must be a finite number > 0, got {self.sample}")


@dataclass(frozen=True)
class WordCorpus:
    """The corpus as ids into `words` (most frequent first), and each word's count."""

    ids: Int[np.ndarray, " n"]
    words: tuple[str, ...]
    counts: Int[np.ndarray, " vocab"]

    def __len__(self) -> int:
        return int(self.ids.shape[0])


@dataclass(frozen=True)
class SkipgramBatch:
    centre: Int[np.ndarray, " batch"]
    context: Int[np.ndarray, " batch"]
    negatives: Int[np.ndarray, "batch k"]

    def __len__(self) -> int:
        return int(self.centre.shape[0])


def build_corpus(token_lists: Iterable[list[str]], min_count: int, source: str = "corpus") -> WordCorpus:
    """Count, keep words seen `min_count` times or more, and map the corpus to their ids."""
    counter: Counter[str] = Counter()
    lists = [tokens for tokens in token_lists]
    for tokens in lists:
        counter.update(tokens)
    kept = sorted((w for w, c in counter.items() if c >= min_count), key=lambda w: (-counter[w], w))
    if len(kept) < 2:
        raise SeqbatchError(f"{source}: {len(kept)} distinct word(s) seen at least --min-count {min_count} times; "
                            "skip-gram needs two or more (lower --min-count or give more text)")
    index = {w: i for i, w in enumerate(kept)}
    ids = np.fromiter((index[w] for tokens in lists for w in tokens if w in index), dtype=np.int32)
    counts = np.array([counter[w] for w in kept], dtype=np.int64)
    return WordCorpus(ids, tuple(kept), counts)


def keep_probability(counts: Int[np.ndarray, " vocab"], sample: float, rule: str) -> Float[np.ndarray, " vocab"]:
    """Per word, the probability that one occurrence survives subsampling (see the module docstring)."""
    f = counts / counts.sum()
    if rule == "none":
        return np.ones_like(f)
    keep = (np.sqrt(f / sample) + 1) * sample / f if rule == "word2vec" else np.sqrt(sample / f)
    return np.minimum(keep, 1.0)


def noise_distribution(counts: Int[np.ndarray, " vocab"]) -> Float[np.ndarray, " vocab"]:
    p = counts.astype(np.float64) ** NOISE_POWER
    return p / p.sum()


def subsample(corpus: WordCorpus, cfg: SkipgramDataConfig, rng: np.random.Generator) -> Int[np.ndarray, " kept"]:
    """The corpus ids that survive this epoch's draw."""
    keep = keep_probability(corpus.counts, cfg.sample, cfg.rule)[corpus.ids]
    return corpus.ids[rng.random(len(corpus)) < keep]


def window_pairs(ids: Int[np.ndarray, " n"], window: int, rng: np.random.Generator
                 ) -> tuple[Int[np.ndarray, " pairs"], Int[np.ndarray, " pairs"]]:
    """(centres, contexts) of word2vec's dynamic window, centre by centre in corpus order."""
    n = len(ids)
    radius = rng.integers(1, window + 1, n)
    centre_pos, context_pos = [], []
    for d in range(1, window + 1):
        for sign in (-1, 1):
            pos = np.arange(max(0, -sign * d), min(n, n - sign * d))  # positions whose partner exists
            pos = pos[radius[pos] >= d]
            centre_pos.append(pos)
            context_pos.append(pos + sign * d)
    c, o = np.concatenate(centre_pos), np.concatenate(context_pos)
    order = np.lexsort((o, c))  # by centre, then by context position
    return ids[c[order]], ids[o[order]]


def epoch_batches(corpus: WordCorpus, cfg: SkipgramDataConfig, batch_size: int, *, seed: int, epoch: int,
                  chunk_tokens: int = 1 << 20) -> Iterator[SkipgramBatch]:
    """One epoch of batches; a function of (seed, epoch) only, so both backends (and a resumed run)
    see the same ones. The corpus is handled `chunk_tokens` at a time to bound memory."""
    if batch_size < 1:
        raise SeqbatchError(f"batch_size must be >= 1, got {batch_size}")
    rng = np.random.default_rng([seed, epoch])
    cumulative = np.cumsum(noise_distribution(corpus.counts))
    kept = subsample(corpus, cfg, rng)
    carry_c = carry_o = np.zeros(0, np.int32)
    for start in range(0, max(len(kept), 1), chunk_tokens):
        c, o = window_pairs(kept[start:start + chunk_tokens], cfg.window, rng)
        for lo in range(0, len(c), cfg.shuffle_chunk):
            perm = rng.permutation(min(cfg.shuffle_chunk, len(c) - lo)) + lo
            carry_c, carry_o = np.concatenate([carry_c, c[perm]]), np.concatenate([carry_o, o[perm]])
            while len(carry_c) >= batch_size:
                yield _batch(carry_c[:batch_size], carry_o[:batch_size], cumulative, cfg.negatives, rng)
                carry_c, carry_o = carry_c[batch_size:], carry_o[batch_size:]
    if len(carry_c):
        yield _batch(carry_c, carry_o, cumulative, cfg.negatives, rng)


def _batch(centre: np.ndarray, context: np.ndarray, cumulative: np.ndarray, k: int,
           rng: np.random.Generator) -> SkipgramBatch:
    draws = rng.random((len(centre), k)) * cumulative[-1]
    negatives = np.minimum(np.searchsorted(cumulative, draws, side="right"), len(cumulative) - 1)
    return SkipgramBatch(centre.astype(np.int32), context.astype(np.int32), negatives.astype(np.int32))
