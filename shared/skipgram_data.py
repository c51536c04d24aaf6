"""Skip-gram training data, backend-neutral (issue 13, item 1): a word corpus, frequent-word
subsampling, word2vec's dynamic window, the noise distribution and seeded batches of (centre,
context, K negatives), so that both backends see identical batches.

- **Vocabulary**: words seen at least `min_count` times, most frequent first (ties: the latest
  first appearance first, as gensim orders them);
  the rest are dropped from the corpus, as word2vec does.
- **Subsampling** (`rule`, with `sample` = t; f = count / total): `word2vec` keeps an occurrence
  with probability `(sqrt(f / t) + 1) * t / f` (the C tool's and gensim's formula), `lesson`
  with `sqrt(t / f)` (the lesson's discard probability `1 - sqrt(t / f)`), `none` keeps all;
  probabilities are capped at 1. A new draw per epoch.
- **Window**: for each kept centre word a radius r drawn uniformly from 1..`window`; its contexts
  are the kept words within r positions on either side in the same document (word2vec's dynamic
  window, which weights near words more; gensim's windows stop at a sentence's end, as ours at a
  document's).
- **Negatives**: K words per pair drawn from counts ** 0.75 (normalised), with replacement, through
  a table of 2**24 slots as the C tool's (each word holds round(p * 2**24) slots, at least one); a
  negative may equal the context word (word2vec re-draws those; the effect is below 1/V).
- **Order**: pairs come centre by centre in corpus order (contexts left to right), shuffled
  within blocks of `shuffle_chunk` pairs (minibatches of neighbouring pairs would hold one centre
  many times). Each batch carries `progress`, for word2vec's learning-rate decay: the fraction
  of the epoch's corpus read, spread evenly over each chunk's pairs in training order.
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
    """The corpus as ids into `words` (most frequent first), each token's document, each word's count,
    and `raw_words`: the tokens before `min_count` dropped the rare ones (what "words/s" counts)."""

    ids: Int[np.ndarray, " n"]
    words: tuple[str, ...]
    counts: Int[np.ndarray, " vocab"]
    doc: Int[np.ndarray, " n"] | None = None  # document number of each token; None: one document
    raw_words: int = 0

    def __len__(self) -> int:
        return int(self.ids.shape[0])


@dataclass(frozen=True)
class SkipgramBatch:
    centre: Int[np.ndarray, " batch"]
    context: Int[np.ndarray, " batch"]
    negatives: Int[np.ndarray, "batch k"]
    progress: float = 1.0  # fraction of the epoch's corpus read when this batch ends

    def __len__(self) -> int:
        return int(self.centre.shape[0])


def build_corpus(token_lists: Iterable[list[str]], min_count: int, source: str = "corpus") -> WordCorpus:
    """Count, keep words seen `min_count` times or more, and map the corpus to their ids; each list
    is one document (windows do not cross documents)."""
    counter: Counter[str] = Counter()
    lists = [tokens for tokens in token_lists]
    for tokens in lists:
        counter.update(tokens)
    # Most frequent first, ties latest first appearance first: gensim's order (its
    # `sort_by_descending_frequency`), so that the analogy test's "30,000 most frequent words" are
    # gensim's words too.
    first = {w: i for i, w in enumerate(counter)}  # a Counter keeps the order of first appearance
    kept = sorted((w for w, c in counter.items() if c >= min_count), key=lambda w: (-counter[w], -first[w]))
    if len(kept) < 2:
        raise SeqbatchError(f"{source}: {len(kept)} distinct word(s) seen at least --min-count {min_count} times; "
                            "skip-gram needs two or more (lower --min-count or give more text)")
    index = {w: i for i, w in enumerate(kept)}
    per_doc = [[index[w] for w in tokens if w in index] for tokens in lists]
    ids = np.fromiter((i for doc in per_doc for i in doc), dtype=np.int32)
    doc = np.repeat(np.arange(len(per_doc), dtype=np.int32), [len(d) for d in per_doc])
    counts = np.array([counter[w] for w in kept], dtype=np.int64)
    return WordCorpus(ids, tuple(kept), counts, doc, sum(counter.values()))


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


NOISE_TABLE_BITS = 24


def noise_table(counts: Int[np.ndarray, " vocab"], bits: int = NOISE_TABLE_BITS) -> Int[np.ndarray, " slots"]:
    """word2vec's unigram table: word w fills round(p_w * 2**bits) slots (at least one), in id order."""
    slots = np.maximum(np.rint(noise_distribution(counts) * (1 << bits)), 1).astype(np.int64)
    return np.repeat(np.arange(len(counts), dtype=np.int32), slots)


def subsample(corpus: WordCorpus, cfg: SkipgramDataConfig, rng: np.random.Generator) -> Int[np.ndarray, " kept"]:
    """The positions (into `corpus.ids`) of the tokens that survive this epoch's draw."""
    keep = keep_probability(corpus.counts, cfg.sample, cfg.rule)[corpus.ids]
    return np.flatnonzero(rng.random(len(corpus)) < keep)


def window_pairs(ids: Int[np.ndarray, " n"], window: int, rng: np.random.Generator, *,
                 doc: Int[np.ndarray, " n"] | None = None, chunk: int = 1 << 18
                 ) -> tuple[Int[np.ndarray, " pairs"], Int[np.ndarray, " pairs"]]:
    """(centres, contexts) of word2vec's dynamic window, centre by centre in corpus order."""
    c, o = [], []
    for _, _, centre_pos, context_pos in _window_positions(len(ids), window, rng, doc, chunk):
        c.append(ids[centre_pos])
        o.append(ids[context_pos])
    return np.concatenate(c), np.concatenate(o)


def _window_positions(n: int, window: int, rng: np.random.Generator, doc: np.ndarray | None, chunk: int
                      ) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """Per chunk of `chunk` centres [lo, hi): lo, hi and the positions of its (centre, context)
    pairs, centre-major."""
    radius = rng.integers(1, window + 1, n)
    offsets = np.concatenate([np.arange(-window, 0), np.arange(1, window + 1)])
    for lo in range(0, n, chunk):
        centre = np.arange(lo, min(n, lo + chunk))[:, None]
        context = centre + offsets[None, :]
        valid = (np.abs(offsets)[None, :] <= radius[centre]) & (context >= 0) & (context < n)
        if doc is not None:
            valid &= doc[np.clip(context, 0, n - 1)] == doc[centre]
        yield lo, lo + len(centre), np.broadcast_to(centre, context.shape)[valid], context[valid]


def epoch_batches(corpus: WordCorpus, cfg: SkipgramDataConfig, batch_size: int, *, seed: int, epoch: int,
                  chunk_tokens: int = 1 << 16) -> Iterator[SkipgramBatch]:
    """One epoch of batches; a function of (seed, epoch) only, so both backends (and a resumed run)
    see the same ones. The corpus is handled `chunk_tokens` kept tokens at a time to bound memory."""
    if batch_size < 1:
        raise SeqbatchError(f"batch_size must be >= 1, got {batch_size}")
    rng = np.random.default_rng([seed, epoch])
    table = _table(corpus)
    n = max(len(corpus), 1)
    pos = subsample(corpus, cfg, rng)
    kept = corpus.ids[pos]
    doc = None if corpus.doc is None else corpus.doc[pos]
    carry = (np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0))
    for lo, hi, centre_pos, context_pos in _window_positions(len(kept), cfg.window, rng, doc, chunk_tokens):
        # The corpus read spans [start, end) of the epoch over this chunk's pairs, spread evenly
        # over them in the order they are trained (the shuffle keeps no position).
        start = 0.0 if lo == 0 else pos[lo] / n
        end = 1.0 if hi == len(kept) else pos[hi] / n
        c, o = kept[centre_pos], kept[context_pos]
        p = start + (end - start) * np.arange(1, len(c) + 1) / max(len(c), 1)
        perm = np.concatenate([rng.permutation(min(cfg.shuffle_chunk, len(c) - lo)) + lo
                               for lo in range(0, len(c), cfg.shuffle_chunk)] or [np.zeros(0, np.int64)])
        c, o, p = (np.concatenate([carry[0], c[perm]]), np.concatenate([carry[1], o[perm]]),
                   np.concatenate([carry[2], p]))
        full = len(c) - len(c) % batch_size
        negatives = table[rng.integers(0, len(table), (full, cfg.negatives))]
        for a in range(0, full, batch_size):
            b = a + batch_size
            yield SkipgramBatch(c[a:b], o[a:b], negatives[a:b], float(p[b - 1]))
        carry = (c[full:], o[full:], p[full:])
    if len(carry[0]):
        negatives = table[rng.integers(0, len(table), (len(carry[0]), cfg.negatives))]
        yield SkipgramBatch(carry[0], carry[1], negatives, 1.0)


_TABLES: dict[int, tuple[WordCorpus, np.ndarray]] = {}


def _table(corpus: WordCorpus) -> np.ndarray:
    """The corpus's noise table, built once per corpus object."""
    key = id(corpus)
    if key not in _TABLES or _TABLES[key][0] is not corpus:
        _TABLES.clear()
        _TABLES[key] = (corpus, noise_table(corpus.counts))
    return _TABLES[key][1]
