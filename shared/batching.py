"""Padding, masks, length buckets and batch iterators. Everything here is plain NumPy.

Layout of one batch (B examples, T = the bucketed longest length):

    tokens  [B, T] int32   c a t 0 0 0     <- real tokens first, PAD (0) after (pad side "post")
                           h o r s e 0
    lengths [B]    int32   3, 5
    mask    [B, T] bool    derived: arange(T) < lengths[:, None], never stored
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from jaxtyping import Bool, Int

from shared.errors import SeqbatchError
from shared.vocab import PAD


@dataclass(frozen=True)
class Batch:
    """One padded batch: `tokens[B, T]` int32, `lengths[B]` int32 (>= 1), `labels[B]` int32."""

    tokens: Int[np.ndarray, "batch time"]
    lengths: Int[np.ndarray, " batch"]
    labels: Int[np.ndarray, " batch"]

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def mask(self) -> Bool[np.ndarray, "batch time"]:
        return length_mask(self.lengths, self.tokens.shape[1])


def length_mask(lengths: Int[np.ndarray, " batch"], time: int) -> Bool[np.ndarray, "batch time"]:
    """True at real positions: `arange(T) < lengths[:, None]`."""
    return np.arange(time)[None, :] < np.asarray(lengths)[:, None]


def bucket_length(n: int, multiple: int = 8) -> int:
    """The padded length for a longest sequence of `n`: the next multiple of `multiple`.

    A few fixed shapes keep the number of JAX compilations small; `multiple=1` pads exactly.
    """
    if multiple < 1:
        raise SeqbatchError(f"bucket multiple must be >= 1, got {multiple}")
    return max(multiple, -(-n // multiple) * multiple)


def pad(
    seqs: Sequence[np.ndarray],
    labels: Sequence[int] | np.ndarray,
    *,
    multiple: int = 8,
    time: int | None = None,
) -> Batch:
    """Pad id sequences to `[B, T]` behind the real tokens; T = `time` or the bucketed longest length."""
    if len(seqs) == 0:
        raise SeqbatchError("cannot pad an empty batch")
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int32, count=len(seqs))
    if lengths.min() < 1:
        raise SeqbatchError(f"sequence {int(np.argmin(lengths))} of the batch is empty; every sequence needs a token")
    longest = int(lengths.max())
    t = bucket_length(longest, multiple) if time is None else time
    if t < longest:
        raise SeqbatchError(f"time {t} is shorter than the longest sequence ({longest})")
    tokens = np.full((len(seqs), t), PAD, dtype=np.int32)
    for i, s in enumerate(seqs):
        tokens[i, : len(s)] = s
    return Batch(tokens, lengths, np.asarray(labels, dtype=np.int32))


def waste_of(batches: Sequence[Batch]) -> float:
    """Padded positions / all positions over a list of batches."""
    total = sum(b.tokens.size for b in batches)
    real = sum(int(b.lengths.sum()) for b in batches)
    return 0.0 if total == 0 else 1.0 - real / total


class Sampler:
    """Index streams for batches over a data set of `n` examples (labels for the balanced one).

    - `random`: each batch draws B examples uniformly with replacement (the seed tutorial's way);
    - `epoch`: shuffled epochs without replacement; the last short batch is kept;
    - `balanced`: each batch holds the classes in the data's proportions (stratified draws);
    - `bucket_chunk` (epoch or balanced): within chunks of `bucket_chunk` batches, examples are
      sorted by length before cutting batches, so one batch holds similar lengths (less padding);
      batch order is then shuffled. For `balanced`, each class is sorted on its own and the
      classes interleaved in proportion, so every batch keeps the class mix as well.
    """

    def __init__(
        self,
        labels: Sequence[int] | np.ndarray,
        batch_size: int,
        *,
        kind: str = "random",
        seed: int = 0,
        lengths: Sequence[int] | np.ndarray | None = None,
        bucket_chunk: int = 0,
    ) -> None:
        self.labels = np.asarray(labels, dtype=np.int64)
        self.n = len(self.labels)
        if self.n == 0:
            raise SeqbatchError("no examples to sample from")
        if kind not in ("random", "epoch", "balanced"):
            raise SeqbatchError(f"unknown sampler {kind!r}; choose random, epoch or balanced")
        if batch_size < 1:
            raise SeqbatchError(f"batch_size must be >= 1, got {batch_size}")
        if bucket_chunk and lengths is None:
            raise SeqbatchError("bucketing needs the sequence lengths")
        if bucket_chunk and kind not in ("epoch", "balanced"):
            raise SeqbatchError(f"length bucketing works with the epoch or balanced sampler, not {kind!r}")
        self.batch_size = batch_size
        self.kind = kind
        self.rng = np.random.default_rng(seed)
        self.lengths = None if lengths is None else np.asarray(lengths)
        self.bucket_chunk = bucket_chunk

    def epoch(self) -> list[np.ndarray]:
        """One pass over the data as a list of index arrays."""
        if self.kind == "random":
            return [self.rng.integers(0, self.n, self.batch_size) for _ in range(max(1, self.n // self.batch_size))]
        order = self._balanced_order() if self.kind == "balanced" else self.rng.permutation(self.n)
        if self.bucket_chunk:
            return self._bucketed(order)
        return [order[i : i + self.batch_size] for i in range(0, self.n, self.batch_size)]

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            yield from self.epoch()

    def _balanced_order(self) -> np.ndarray:
        """A permutation whose every full batch (order[jB:(j+1)B]) holds class c floor or ceil of B * n_c / n times.

        Each batch gives every class the floor of its quota; the few seats left go to the classes
        furthest behind their running quota j * B * n_c / n, so no class drifts and none runs out
        before the last full batch. (Sorting members by evenly spaced keys, the first version,
        let a batch stray by 2 from the quota.) The remainder, shorter than a batch, comes last.
        """
        classes, counts = np.unique(self.labels, return_counts=True)
        pools = [self.rng.permutation(np.flatnonzero(self.labels == c)) for c in classes]
        quota = self.batch_size * counts / self.n  # expected members per batch, per class
        taken = np.zeros(len(classes), dtype=np.int64)
        parts: list[np.ndarray] = []
        for j in range(1, self.n // self.batch_size + 1):
            k = np.floor(quota).astype(np.int64)
            behind = j * quota - (taken + k)
            seats = self.batch_size - int(k.sum())
            k[np.argsort(-behind, kind="stable")[:seats]] += 1
            k = np.minimum(k, counts - taken)  # never binds while the running error stays below 1
            batch = [p[t : t + n] for p, t, n in zip(pools, taken, k, strict=True)]
            parts.append(self.rng.permutation(np.concatenate(batch)))
            taken += k
        parts.append(self.rng.permutation(np.concatenate([p[t:] for p, t in zip(pools, taken, strict=True)])))
        return np.concatenate(parts)

    def _bucketed(self, order: np.ndarray) -> list[np.ndarray]:
        assert self.lengths is not None
        chunk = self.batch_size * self.bucket_chunk
        batches: list[np.ndarray] = []
        for i in range(0, len(order), chunk):
            part = order[i : i + chunk]
            if self.kind == "balanced":
                part = self._interleave_sorted(part)
            else:
                part = part[np.argsort(self.lengths[part], kind="stable")]
            batches += [part[j : j + self.batch_size] for j in range(0, len(part), self.batch_size)]
        self.rng.shuffle(batches)  # type: ignore[arg-type]
        return batches

    def _interleave_sorted(self, part: Int[np.ndarray, " chunk"]) -> Int[np.ndarray, " chunk"]:
        """Each class's members sorted by length, placed at evenly spaced positions ((j + 1/2) / n_c)
        and merged: windows of batch_size keep the class mix, and lengths rise through the chunk."""
        assert self.lengths is not None
        keys = np.empty(len(part))
        labels = self.labels[part]
        for c in np.unique(labels):
            where = np.flatnonzero(labels == c)
            where = where[np.argsort(self.lengths[part[where]], kind="stable")]
            keys[where] = (np.arange(len(where)) + 0.5) / len(where)
        return part[np.argsort(keys, kind="stable")]


def index_waste(
    lengths: Sequence[int] | Int[np.ndarray, " n"], batches: Sequence[Int[np.ndarray, " batch"]], *, multiple: int = 8
) -> float:
    """Padded positions / all positions, for batches given as index arrays into `lengths`.

    The same figure as `waste_of` on the padded batches, without building them: each batch
    is padded to `bucket_length(its longest, multiple)`.
    """
    lengths = np.asarray(lengths)
    total = real = 0
    for idx in batches:
        ls = lengths[idx]
        total += len(ls) * bucket_length(int(ls.max()), multiple)
        real += int(ls.sum())
    return 0.0 if total == 0 else 1.0 - real / total


def batches_in_order(n: int, batch_size: int) -> Iterator[np.ndarray]:
    """Consecutive index blocks 0..n-1, for evaluation."""
    for i in range(0, n, batch_size):
        yield np.arange(i, min(n, i + batch_size))
