"""The divergence guard's verdict on one step (shared/guard.py): finite loss, finite gradient norm,
loss within --max-loss; and the messages a user reads when a run stops."""

from __future__ import annotations

import math

import pytest

from shared.guard import EXIT_DIVERGED, Diverged, Interrupted, describe, step_ok


@pytest.mark.parametrize("loss, grad_norm, max_loss, ok", [
    (1.2, 0.5, 100.0, True),
    (100.0, 0.5, 100.0, True),  # at the bound is still good
    (1e6, 0.5, None, True),  # no bound
    (100.5, 0.5, 100.0, False),
    (math.nan, 0.5, 100.0, False),
    (math.inf, 0.5, None, False),
    (1.2, math.inf, 100.0, False),  # a finite loss with an exploding gradient is a bad step too
    (1.2, math.nan, None, False),
])
def test_a_step_is_good_only_with_finite_loss_and_gradient_within_the_bound(
        loss: float, grad_norm: float, max_loss: float | None, ok: bool) -> None:
    assert step_ok(loss, grad_norm, max_loss) is ok


def test_the_messages_say_what_went_wrong() -> None:
    assert describe(math.nan, 100.0) == "nan"
    assert describe(2e5, 100.0) == "2e+05 (above --max-loss 100)"
    assert describe(1.5, 100.0) == "1.5 with a non-finite gradient norm"
    e = Diverged(7, math.nan, 100.0, 6, "run/state")
    assert e.good_step == 6 and "at step 7" in str(e) and "last good state: step 6, run/state" in str(e)
    assert EXIT_DIVERGED == 3
    assert Interrupted(15, 4, "run").exit_code == 143
