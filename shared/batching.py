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
    # Data parallel over processes (shared/distributed.py): this batch is one rank's shard of a global
    # batch of `global_size` examples, and its loss is its share of the global batch's mean.
    global_size: int | None = None

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


PAD_SIDES: tuple[str, ...] = ("right", "left")


def pad(
    seqs: Sequence[np.ndarray],
    labels: Sequence[int] | np.ndarray,
    *,
    multiple: int = 8,
    time: int | None = None,
    mask: bool = True,
    side: str = "right",
) -> Batch:
    """Pad id sequences to `[B, T]` behind the real tokens; T = `time` or the bucketed longest length.

    `mask=False` builds the unmasked layouts of the padding study (shared/text.py `TextConfig.mask`):
    every length is T, so the model reads the padding as tokens (no mask, no packing) and the head
    reads the last padded step; `side="left"` puts the padding in front of the real tokens (the
    lesson's `features[i, -len(row):] = row`). Left padding needs `mask=False`: a masked batch keeps
    its real tokens first."""
    if side not in PAD_SIDES:
        raise SeqbatchError(f"padding side must be right or left, got {side!r}")
    if side == "left" and mask:
        raise SeqbatchError("left padding needs mask=False: a masked batch keeps its real tokens first")
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
        if side == "left":
            tokens[i, t - len(s) :] = s
        else:
            tokens[i, : len(s)] = s
    if not mask:
        lengths = np.full(len(seqs), t, dtype=np.int32)
    return Batch(tokens, lengths, np.asarray(labels, dtype=np.int32))


def waste_of(batches: Sequence[Batch]) -> float:
    """Padded positions / all positions over a list of batches."""
    total = sum(b.tokens.size for b in batches)
    real = sum(int(b.lengths.sum()) for b in batches)
    return 0.0 if total == 0 else 1.0 - real / total


SAMPLERS: tuple[str, ...] = ("random", "epoch", "balanced", "uniform")


class Sampler:
    """Index streams for batches over a data set of `n` examples (labels for the balanced one).

    - `random`: each batch draws B examples uniformly with replacement (the seed tutorial's way);
    - `epoch`: shuffled epochs without replacement; the last short batch is kept;
    - `balanced`: each batch holds the classes in the data's proportions (stratified draws);
    - `uniform`: each batch draws B classes uniformly, then one example of each drawn class
      uniformly, with replacement (torch's `WeightedRandomSampler` with weights 1 / class count):
      the classes are seen equally often, a rare class's examples many times per pass;
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
        if kind not in SAMPLERS:
            raise SeqbatchError(f"unknown sampler {kind!r}; choose {', '.join(SAMPLERS)}")
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
        # uniform: example indices grouped by class (members of class k at by_class[start[k]:start[k+1]])
        self.classes, counts = np.unique(self.labels, return_counts=True)
        self.by_class = np.argsort(self.labels, kind="stable")
        self.starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self.counts = counts

    def epoch(self) -> list[np.ndarray]:
        """One pass over the data as a list of index arrays."""
        if self.kind == "random":
            return [self.rng.integers(0, self.n, self.batch_size) for _ in range(max(1, self.n // self.batch_size))]
        if self.kind == "uniform":
            return [self._uniform_batch() for _ in range(max(1, self.n // self.batch_size))]
        order = self._balanced_order() if self.kind == "balanced" else self.rng.permutation(self.n)
        if self.bucket_chunk:
            return self._bucketed(order)
        return [order[i : i + self.batch_size] for i in range(0, self.n, self.batch_size)]

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            yield from self.epoch()

    def _uniform_batch(self) -> Int[np.ndarray, " batch"]:
        k = self.rng.integers(0, len(self.classes), self.batch_size)
        return self.by_class[self.starts[k] + self.rng.integers(0, self.counts[k])]

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
