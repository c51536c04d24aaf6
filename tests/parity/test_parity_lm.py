"""The language model on both backends: the same logits, losses, carried state, gradients and training
trajectories (parity/lm.py), parametrized over cell, layers, input and batching; names what differs."""

from __future__ import annotations

import dataclasses

import pytest

from parity import lm as L
from parity.harness_cli import backend_settings
from shared.config import CELLS
from shared.kinds.lm import LMConfig


def failures(result) -> list[str]:  # type: ignore[no-untyped-def]
    return [f"{c.quantity} differs on {c.where}: max abs {c.max_abs:.3e}, max rel {c.max_rel:.3e}, "
            f"tolerance {c.tol:.0e} ({c.on})" for c in result.comparisons if not c.passed]


def cfg(cell: str, layers: int, embed: int | None, dtype: str = "float32") -> LMConfig:
    return LMConfig(L.VOCAB, cell=cell, num_layers=layers, hidden_size=L.HIDDEN, embed_dim=embed, dtype=dtype)  # type: ignore[arg-type]


@pytest.mark.parametrize("batching", ["stream", "documents"])
@pytest.mark.parametrize("cell", CELLS)
def test_two_layer_embedding_models_agree_in_float32(cell: str, batching: str) -> None:
    result = L.check_lm(cfg(cell, 2, L.EMBED), batching)
    assert not failures(result), failures(result)
    quantities = {c.quantity for c in result.comparisons}
    expected = {"logits", "losses", "loss", "carry", "grad", "transfer", "traj_loss", "traj_grad_norm", "traj_weights"}
    assert expected <= quantities
    assert ("pad_invariance" in quantities) == (batching == "documents")


@pytest.mark.parametrize(("cell", "batching"), [("lstm", "stream"), ("gru", "documents"), ("rnn_relu", "stream")])
def test_one_layer_one_hot_models_agree_in_float64(cell: str, batching: str) -> None:
    with backend_settings("cpu", "float64"):
        result = L.check_lm(cfg(cell, 1, None, "float64"), batching)
    assert not failures(result), failures(result)
    worst_logit = max(c.max_abs for c in result.comparisons if c.quantity == "logits")
    assert worst_logit < 1e-12  # float64 leaves no room for a real difference to hide in


def test_a_carry_bug_would_be_caught() -> None:
    """The check is not vacuous: a JAX model that forgets the carried state fails on the second window."""
    from jax_impl.models import lm as jlm

    real = jlm._carry_in

    def forgetful(c, batch, carry):  # type: ignore[no-untyped-def]
        return real(c, dataclasses.replace(batch, reset=True), None)

    jlm._carry_in = forgetful
    try:
        result = L.check_lm(cfg("gru", 1, L.EMBED), "stream")
    finally:
        jlm._carry_in = real
    failed = {(c.quantity, c.case) for c in result.comparisons if not c.passed}
    assert ("logits", "stream batch 1") in failed and ("logits", "stream batch 0") not in failed
