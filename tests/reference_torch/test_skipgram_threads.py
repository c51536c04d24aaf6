"""The torch skip-gram trainer lends the batch generator's core to its step when the generator waits
(`training_threads` in reference_torch/models/skipgram.py, `Prefetched.producing` in
shared/skipgram_training.py). Switching the thread count must not change what a step computes,
or a resumed run (which switches at other moments) would not be bit-identical to an uninterrupted one."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from shared.backend import get_backend
from shared.config import TrainConfig
from shared.kinds.skipgram import SkipgramConfig
from shared.skipgram_data import SkipgramDataConfig, build_corpus, epoch_batches
from shared.skipgram_training import prefetched


@pytest.fixture(autouse=True)
def _cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQBATCH_TORCH_DEVICE", "cpu")


def _batches(n: int) -> list:
    rng = np.random.default_rng(0)
    words = [f"w{int(i)}" for i in rng.zipf(1.2, 200_000) % 3000]
    corpus = build_corpus([words], min_count=1)
    cfg = SkipgramDataConfig(min_count=1, window=5, negatives=5, sample=1e-3)
    return list(epoch_batches(corpus, cfg, 1024, seed=0, epoch=0))[:n]


def _train(batches: list, threads: list[int]) -> tuple[dict[str, np.ndarray], list[float]]:
    from reference_torch.models import skipgram as km

    backend = get_backend("torch")
    cfg = SkipgramConfig(vocab_size=3000, embed_dim=64)
    state = backend.train_state(km.init(cfg, 0), TrainConfig(optimizer="sgd", lr=0.025, momentum=0.0,
                                                              steps=len(batches)))
    losses = []
    before = torch.get_num_threads()
    try:
        for batch, n in zip(batches, threads, strict=True):
            torch.set_num_threads(n)
            state, metrics = km.sparse_step(state, batch, 0.025)
            losses.append(float(metrics["loss"]))
    finally:
        torch.set_num_threads(before)
    return backend.to_params(state.model), losses


def test_a_steps_result_does_not_depend_on_the_number_of_threads() -> None:
    batches = _batches(24)
    one, losses_one = _train(batches, [1] * 24)
    for pattern in ([2] * 24, [1, 2, 2, 1] * 6):
        other, losses_other = _train(batches, pattern)
        assert losses_other == losses_one
        for name in one:
            assert np.array_equal(other[name], one[name]), name
    assert not np.array_equal(one["out_embed.weight"], 0)  # the steps did update the weights


def test_training_threads_gives_the_generators_core_back_only_while_it_works() -> None:
    from jax_impl.models import skipgram as jax_km
    from reference_torch.models import skipgram as km

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with km.training_threads() as share:
            share(True)
            assert torch.get_num_threads() == 1
            share(False)
            assert torch.get_num_threads() == 2
            share(True)
        assert torch.get_num_threads() == 2  # restored on the way out
        with jax_km.training_threads() as share:  # the mirror: callable, changes nothing
            share(True)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_prefetched_says_when_the_producer_is_at_work_and_works_in_long_bursts() -> None:
    gate = threading.Event()

    def items():  # type: ignore[no-untyped-def]
        yield from range(10)
        gate.wait(5)  # "generating" until the test lets it go
        yield from range(10, 10**9)

    stream = prefetched(items(), depth=4, group=5)
    try:
        assert next(stream) == 0
        time.sleep(0.2)
        assert stream.producing  # held inside the generator
        gate.set()
        deadline = time.monotonic() + 5
        while stream.producing and time.monotonic() < deadline:  # fills the queue, then waits
            time.sleep(0.01)
        assert not stream.producing
        assert stream._queue.full()
        assert [next(stream) for _ in range(9)] == list(range(1, 10))  # the first group, then one more
        time.sleep(0.2)
        # One group taken of four: the producer waits until the consumer has taken three quarters.
        assert not stream.producing and stream._queue.qsize() == 3
        assert [next(stream) for _ in range(30)] == list(range(10, 40))
    finally:
        stream.close()


def test_the_trainer_tells_the_backend_before_every_group_whether_the_producer_works(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from reference_torch.models import skipgram as km
    from shared import skipgram_training
    from shared.cli import run_captured

    calls: list[object] = []

    @contextlib.contextmanager
    def recording():  # type: ignore[no-untyped-def]
        yield calls.append

    monkeypatch.setattr(km, "training_threads", recording)
    monkeypatch.setattr(skipgram_training, "GROUP_STEPS", 4)
    words = [f"w{int(i)}" for i in np.random.default_rng(0).zipf(1.3, 4000) % 200]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(" ".join(words[i:i + 20]) for i in range(0, len(words), 20)) + "\n")
    code, stdout, stderr = run_captured("train", "--task", "skipgram", "--data", str(corpus), "--backend", "torch",
                                        "--embed-dim", "8", "--min-count", "1", "--batch-size", "64", "--epochs", "1",
                                        "--out", str(tmp_path / "run"), "--no-progress")
    assert code == 0, stderr
    steps = json.loads(stdout.strip().splitlines()[-1])["steps"]
    assert steps > 8
    assert len(calls) >= steps / 4  # one call per group of (at most) 4 steps
    assert all(isinstance(c, bool) for c in calls)
