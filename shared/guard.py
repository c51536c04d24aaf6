"""The divergence guard and the two ways a run ends early, written once for both backends.

A training step is *good* when its loss and gradient norm are finite and the mean loss is at most
`TrainConfig.max_loss`. Each backend's `train_step` checks this itself and applies a bad step's
update not at all (weights, optimizer state, carried LM state and dropout RNG stay as they were):

- `on_nan="stop"`: the state freezes at the last good step (later steps are no-ops) and the
  training loop, when it next reads the metrics, saves that state and raises `Diverged` (exit 3);
- `on_nan="skip"`: the batch is dropped, the step is recorded with `"skipped": true`, and the run
  trains on.

JAX reads metrics only every few steps (so that dispatch runs ahead); freezing makes the state the
loop finds there the same as if it had stopped at once.
"""

from __future__ import annotations

import math

EXIT_DIVERGED = 3


def step_ok(loss: float, grad_norm: float, max_loss: float | None) -> bool:
    """A good step: finite loss and gradient norm, loss within `max_loss` (None: no bound)."""
    return math.isfinite(loss) and math.isfinite(grad_norm) and (max_loss is None or loss <= max_loss)


def describe(loss: float, max_loss: float | None) -> str:
    """'nan', 'inf' or '1.6e+05 (above --max-loss 100)': what went wrong with a bad step's loss."""
    if not math.isfinite(loss):
        return str(loss)
    if max_loss is not None and loss > max_loss:
        return f"{loss:.4g} (above --max-loss {max_loss:g})"
    return f"{loss:.4g} with a non-finite gradient norm"


class Diverged(Exception):
    """The loss (or gradient norm) went bad at `step`; the last good state is `good_step`."""

    def __init__(self, step: int, loss: float, max_loss: float | None, good_step: int, where: str) -> None:
        self.step, self.good_step = step, good_step
        super().__init__(f"loss became {describe(loss, max_loss)} at step {step} (last good state: step "
                         f"{good_step}, {where}); lower --lr, clip with --clip-norm, or resume with "
                         "--on-nan skip to drop such batches")


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived; the state was saved at `step`. Exit status 128 + signal number."""

    def __init__(self, signum: int, step: int | None, where: str | None) -> None:
        self.signum, self.step = signum, step
        import signal

        name = signal.Signals(signum).name
        saved = f"; state saved at step {step}, resume with: seqbatch train --resume {where}" if where else ""
        super().__init__(f"interrupted by {name}{saved}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum
