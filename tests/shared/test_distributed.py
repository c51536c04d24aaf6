"""The stratified distributed sampler (shared/distributed.py): every rank gets a disjoint share of
each global batch of the single-process stream, within one example per class of its share, and
the loss scaling gives the global batch's mean even when the last shards are uneven."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.batching import Sampler
from shared.distributed import ShardedSampler, check_world, deal, loss_scale
from shared.errors import SeqbatchError


@st.composite
def setups(draw: st.DrawFn) -> tuple[np.ndarray, int, int, str, int]:
    world = draw(st.integers(1, 4))
    batch = world * draw(st.integers(1, 6))
    classes = draw(st.integers(1, 5))
    weights = draw(st.lists(st.integers(1, 20), min_size=classes, max_size=classes))
    n = draw(st.integers(max(batch, 2), 60))
    labels = np.random.default_rng(draw(st.integers(0, 99))).choice(classes, n, p=np.array(weights) / sum(weights))
    kind = draw(st.sampled_from(["random", "epoch", "balanced", "uniform"]))
    return labels, world, batch, kind, draw(st.integers(0, 2**16))


def samplers(labels: np.ndarray, world: int, batch: int, kind: str, seed: int) -> list[ShardedSampler]:
    return [ShardedSampler(Sampler(labels, batch, kind=kind, seed=seed), r, world) for r in range(world)]


@settings(max_examples=60, deadline=None)
@given(setups())
def test_ranks_split_each_global_batch_disjointly_and_stratified(setup: tuple) -> None:
    labels, world, batch, kind, seed = setup
    reference = Sampler(labels, batch, kind=kind, seed=seed)
    ranks = [itertools.islice(iter(s), 12) for s in samplers(labels, world, batch, kind, seed)]
    single = [b for b in itertools.islice(iter(reference), 40) if len(b) >= world][:12]
    for expected, shards in zip(single, zip(*ranks, strict=True), strict=False):
        parts = [p for p, _ in shards]
        assert all(size == len(expected) for _, size in shards)
        # Disjoint positions whose union is the single process's batch (a multiset: random draws repeat).
        np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.sort(expected))
        sizes = [len(p) for p in parts]
        assert max(sizes) - min(sizes) <= 1
        if len(expected) % world == 0:
            assert sizes == [len(expected) // world] * world
        for c in np.unique(labels):
            share = np.sum(labels[expected] == c) / world
            counts = [np.sum(labels[p] == c) for p in parts]
            assert all(np.floor(share) <= k <= np.ceil(share) for k in counts), (c, counts, share)


def test_the_short_last_batch_is_dealt_unevenly_and_the_scaled_losses_give_the_global_mean() -> None:
    labels = np.array([0, 1] * 5 + [0])  # 11 examples, batch 4: the epoch ends with a batch of 3
    shards = list(itertools.islice(iter(ShardedSampler(Sampler(labels, 4, kind="epoch", seed=1), 0, 2)), 3))
    other = list(itertools.islice(iter(ShardedSampler(Sampler(labels, 4, kind="epoch", seed=1), 1, 2)), 3))
    (a, size), (b, _) = shards[-1], other[-1]
    assert size == 3 and {len(a), len(b)} == {1, 2}
    losses = np.random.default_rng(0).random(11)
    scaled = sum(losses[p].mean() * loss_scale(len(p), size) for p in (a, b))
    assert scaled == pytest.approx(losses[np.concatenate([a, b])].mean())
    assert scaled != pytest.approx((losses[a].mean() + losses[b].mean()) / 2)  # not a mean of rank means


def test_a_last_batch_smaller_than_the_world_is_dropped_and_counted() -> None:
    labels = np.arange(9) % 3  # batch 4 of 9: the epoch's last batch holds one example
    s = ShardedSampler(Sampler(labels, 4, kind="epoch", seed=0), 0, 2)
    s.set_epoch(0)
    assert [size for _, size in s] == [4, 4] and s.dropped == 1


def test_set_epoch_gives_that_epoch_of_the_single_process_stream() -> None:
    labels = np.arange(20) % 4
    reference = Sampler(labels, 4, kind="epoch", seed=7)
    epochs = [reference.epoch() for _ in range(3)]
    s = ShardedSampler(Sampler(labels, 4, kind="epoch", seed=7), 1, 2)
    for e in (2, 0, 1):
        s.set_epoch(e)
        got = [idx for idx, _ in s]
        assert [list(g) for g in got] == [list(deal(b, labels, 2)[1]) for b in epochs[e]]


@pytest.mark.parametrize("world, batch, rank, message", [
    (0, 4, 0, "must be >= 1"),
    (3, 4, 0, "not divisible by 3 ranks"),
    (2, 4, 2, "rank 2 is not in 0..1"),
])
def test_bad_worlds_are_user_errors(world: int, batch: int, rank: int, message: str) -> None:
    with pytest.raises(SeqbatchError, match=message):
        check_world(world, batch)
        ShardedSampler(Sampler(np.zeros(8, int), batch), rank, world)


@pytest.mark.parametrize("n, size", [(10, 3), (2, 3), (7, 2), (6, 1)])
def test_gathered_shards_give_back_every_row_in_order(n: int, size: int) -> None:
    """Each rank evaluates rows rank, rank + size, ... (`shard_of`); gathering puts them back in order,
    also when a rank has no row."""
    from shared.distributed import World, shard_of

    rows = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    parts = [rows[shard_of(n, r, size)] for r in range(size)]
    assert sorted(np.concatenate([shard_of(n, r, size) for r in range(size)]).tolist()) == list(range(n))
    for rank in range(size):
        world = World(rank, size, lambda local, parts=parts: parts)
        np.testing.assert_array_equal(world.gather_rows(parts[rank], n), rows)
