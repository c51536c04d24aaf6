"""A float64 language-model check holds its outputs to the float64 tolerance (1e-10), not float32's
(1e-5): a JAX model whose head is off by 1e-8, far below float32 rounding, must fail it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from parity import harness as H
from parity import lm as L
from parity.harness_cli import backend_settings
from shared.kinds.lm import LMConfig

CFG = LMConfig(L.VOCAB, cell="gru", num_layers=1, hidden_size=L.HIDDEN, embed_dim=None, dtype="float64")
NUDGE = 1e-8


def test_a_float64_check_catches_a_difference_float32_rounding_would_hide(monkeypatch: pytest.MonkeyPatch) -> None:
    from jax_impl.models import lm as jax_lm

    real = jax_lm.from_params

    def nudged(cfg: Any, params: dict[str, np.ndarray]) -> Any:
        moved = dict(params)
        moved["head.bias"] = params["head.bias"] + NUDGE * (np.arange(cfg.vocab_size) == 3)
        return real(cfg, moved)

    monkeypatch.setattr(jax_lm, "from_params", nudged)
    with backend_settings("cpu", "float64"):
        result = L.check_lm(CFG, "stream", steps=2)
    logits = [c for c in result.comparisons if c.quantity == "logits"]
    assert logits and {c.tol for c in logits} == {H.OUTPUT_ABS_TOL["float64"]}
    assert all(c.max_abs == pytest.approx(NUDGE, rel=1e-3) for c in logits)
    assert not any(c.passed for c in logits), "a 1e-8 difference in float64 logits passed the check"
