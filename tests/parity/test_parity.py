"""Parity over the grid: cell x layers x uni/bidirectional x one-hot/embedding, on each short length
pattern (all equal, ragged with lengths 1 and T, a batch of one), weights moved both ways."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from parity import harness as H
from parity.harness_cli import grid, label, pattern_batches
from shared.config import ModelConfig
from shared.layout import parameter_shapes

GRID = grid("float32")
SHORT = ("equal", "ragged", "single", "unmasked")
DIRECTIONS = ("torch->jax", "jax->torch(file)")


@functools.cache
def short_result(cfg: ModelConfig) -> H.ConfigResult:
    """One check per config, shared by its tests: compiling the JAX side is the expensive part."""
    batches = {p: b for p, b in pattern_batches(cfg).items() if p in SHORT}
    return H.check(cfg, batches, steps=0, fast=True)


@pytest.mark.parametrize("pattern", SHORT)
@pytest.mark.parametrize("cfg", GRID, ids=label)
def test_outputs_and_gradients_agree(cfg: ModelConfig, pattern: str, assert_parity: Any) -> None:
    result = short_result(cfg)
    for direction in DIRECTIONS:
        found = [c for c in result.comparisons if c.case == f"{pattern} {direction}"]
        assert {c.quantity for c in found} >= {"logits", "losses", "loss", "grad"}, f"{pattern} {direction}"
        # Every parameter's gradient, by its torch name, and nothing else.
        assert {c.name for c in found if c.quantity == "grad"} == set(parameter_shapes(cfg))
        assert_parity(found, f"{label(cfg)} {pattern} {direction}")


@pytest.mark.parametrize("cfg", GRID, ids=label)
def test_weights_move_exactly_both_ways(cfg: ModelConfig, assert_parity: Any) -> None:
    transfers = [c for c in short_result(cfg).comparisons if c.quantity == "transfer"]
    assert sorted(c.case for c in transfers) == sorted(DIRECTIONS)
    assert_parity(transfers, label(cfg))
    assert all(c.max_abs == 0.0 for c in transfers)


@pytest.mark.parametrize("cfg", GRID[::5], ids=label)
def test_padding_tokens_change_nothing(cfg: ModelConfig, assert_parity: Any) -> None:
    """Random ids under the padding leave logits and gradients bit-identical, on each backend."""
    found = [c for c in short_result(cfg).comparisons if c.quantity == "pad_invariance"]
    # "equal" has no padding; "ragged" and "single" do.
    want = {(p, side) for p in ("ragged", "single") for side in ("torch", "jax")}
    assert {(c.case.split()[0], c.name) for c in found} == want
    assert_parity(found, label(cfg))
