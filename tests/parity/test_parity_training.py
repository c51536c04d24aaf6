"""Training trajectories (SGD momentum and Adam, each with and without clipping) and the backend
contract functions themselves (logits ... train_step) agree across backends."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest

from parity import harness as H
from parity.harness_cli import check_contract, label, pattern_batches
from shared.config import CELLS, ModelConfig
from shared.layout import parameter_shapes

STEPS = 30  # the CLI's representative configs run 100; here every cell runs 30 to stay quick


def config(cell: str) -> ModelConfig:
    # A grid config (test_parity.py compiles the same short layout, which the trajectories reuse).
    return ModelConfig(20, 5, cell=cell, num_layers=2, bidirectional=True, hidden_size=12)  # type: ignore[arg-type]


@functools.cache
def trained(cell: str) -> H.ConfigResult:
    cfg = config(cell)
    batches = {p: b for p, b in pattern_batches(cfg).items() if p in ("equal", "ragged", "single")}
    return H.check(cfg, batches, steps=STEPS, fast=True)


@pytest.mark.parametrize("variant", list(H.VARIANTS))
@pytest.mark.parametrize("cell", CELLS)
def test_trajectories_agree(cell: str, variant: str, assert_parity: Any) -> None:
    result = trained(cell)
    found = [c for c in result.comparisons if c.quantity.startswith("traj") and c.case == variant]
    assert result.trajectory_steps == STEPS
    assert {c.name for c in found if c.quantity == "traj_weights"} == set(parameter_shapes(result.config))
    assert_parity(found, f"{label(result.config)} {variant}")


@pytest.mark.parametrize("cell", CELLS)
def test_clipped_variants_really_clip(cell: str) -> None:
    clipped = trained(cell).clipped_steps
    assert clipped["sgd+clip"] > 0 and clipped["adam+clip"] > 0, clipped
    assert clipped["sgd"] == clipped["adam"] == 0


def test_clipping_is_not_always_on() -> None:
    """Somewhere a clipped run also steps unclipped: both branches of torch's min(1, c / norm) are compared."""
    counts = {cell: trained(cell).clipped_steps for cell in CELLS}
    assert sum(c["sgd+clip"] + c["adam+clip"] for c in counts.values()) < 2 * STEPS * len(CELLS), counts


def test_backend_contract_agrees(assert_parity: Any) -> None:
    """backend.logits / losses / loss / gradients / train_state / train_step, compiled by jax_impl itself."""
    cfg = ModelConfig(20, 5, cell="lstm", hidden_size=12, embed_dim=8)
    batch = H.pattern_batch(cfg, "ragged", np.random.default_rng(1))
    variants = {k: H.VARIANTS[k] for k in ("sgd+clip", "adam")}
    found = check_contract(cfg, batch, steps=3, variants=variants)
    assert {c.quantity for c in found} == {"api.logits", "api.losses", "api.loss", "api.grad", "api.traj_loss",
                                           "api.traj_weights"}
    # The class-weighted loss runs through both real train steps too (shared/imbalance.py).
    assert {c.case for c in found if c.quantity == "api.traj_loss"} == {"sgd+clip", "adam", "adam+class_weights"}
    assert_parity(found, "backend contract")
