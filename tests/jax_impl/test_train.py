"""JAX-only training behaviour; what both backends share is in tests/test_train_contract.py."""

from __future__ import annotations

import numpy as np

import jax_impl as backend
from shared.batching import Batch, pad
from shared.config import ModelConfig, TrainConfig

TINY = ModelConfig(vocab_size=9, num_classes=3, cell="lstm", num_layers=2, hidden_size=8, embed_dim=4)


def tiny_batch(seed: int = 0) -> Batch:
    rng = np.random.default_rng(seed)
    return pad([rng.integers(2, 9, n) for n in (2, 7, 4, 5)], [0, 1, 2, 1])


def test_each_batch_shape_compiles_once() -> None:
    cfg = TrainConfig(optimizer="adam", lr=0.05, steps=30)
    state = backend.train_state(backend.init(TINY, seed=0), cfg)
    state, _ = backend.train_step(state, tiny_batch(0))  # compiles, unless an earlier test did
    before = backend.COMPILATIONS["train_step"]
    for i in range(1, 4):
        state, _ = backend.train_step(state, tiny_batch(i))  # same [4, 8] shape, same config
    assert backend.COMPILATIONS["train_step"] == before

