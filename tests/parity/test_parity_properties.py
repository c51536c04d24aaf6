"""Property tests: random configs, batch shapes and lengths agree across backends, and the tokens
under the padding never matter."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parity import harness as H
from parity.harness_cli import label
from shared.batching import pad
from shared.config import CELLS, ModelConfig

# Each example compiles a new JAX program (a new config or shape), so examples are few.
SETTINGS = settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def case(draw: st.DrawFn) -> tuple[ModelConfig, Any]:
    vocab = draw(st.integers(3, 12))
    cfg = ModelConfig(vocab, draw(st.integers(2, 4)), cell=draw(st.sampled_from(CELLS)),
                      num_layers=draw(st.integers(1, 2)), bidirectional=draw(st.booleans()),
                      hidden_size=draw(st.integers(2, 9)), embed_dim=draw(st.sampled_from([None, 3])))
    width = draw(st.integers(1, 12))
    lengths = draw(st.lists(st.integers(1, width), min_size=1, max_size=5))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    seqs = [rng.integers(1, vocab, n) for n in lengths]
    return cfg, pad(seqs, rng.integers(0, cfg.num_classes, len(seqs)), time=width)


@SETTINGS
@given(drawn=case())
def test_random_shapes_and_lengths_agree(drawn: tuple[ModelConfig, Any], assert_parity: Any) -> None:
    cfg, batch = drawn
    result = H.check(cfg, {"drawn": batch}, steps=0, fast=True)
    assert_parity(result.comparisons, f"{label(cfg)} lengths {batch.lengths.tolist()} T {batch.tokens.shape[1]}")
    # Where the batch has padding, both backends were shown to ignore what is under it.
    sides = {c.name for c in result.comparisons if c.quantity == "pad_invariance"}
    assert sides == (set() if batch.mask.all() else {"torch", "jax"})
