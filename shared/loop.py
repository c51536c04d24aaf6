"""What every training loop shares (shared/training.py, shared/lm_training.py): starting or resuming,
periodic atomic saves, the divergence guard, signals, and metrics streamed to the run folder.

A loop calls, in order: `start` (a fresh or restored train state and the first step to run),
then per step `backend.train_step` and, whenever `flush_due` says so, `flush` (reads the pending
device scalars, applies the guard's verdict), its own evaluation and `record`s, and `checkpoint`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shared.backend import Backend
from shared.config import TrainConfig
from shared.errors import SeqbatchError
from shared.guard import Diverged, Interrupted
from shared.layout import check_fits_memory
from shared.runs import DEFAULT_SAVE_SECONDS, RunFolder, load_state, save_state


@dataclass
class FitResult:
    """What a training loop returns: the final (or best) model, its validation and test metrics,
    the training seconds and steps, and every record written to metrics.jsonl."""

    model: Any
    val: dict[str, float | int]
    test: dict[str, float | int]
    seconds: float
    steps: int
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Best:
    step: int
    val: dict[str, Any]
    params: dict[str, np.ndarray]


@dataclass
class RunLoop:
    backend: Backend
    model_cfg: Any
    train_cfg: TrainConfig
    folder: RunFolder | None
    make_checkpoint: Callable[[dict[str, np.ndarray]], Any]  # weights -> the Checkpoint to save beside them
    checkpoint_every: int | None = None  # steps; None: at each validation and every DEFAULT_SAVE_SECONDS
    log: Callable[[str], Any] = print
    history: list[dict[str, Any]] = field(default_factory=list)
    best: Best | None = None
    counters: dict[str, Any] = field(default_factory=dict)  # the loop's own figures, saved with the state
    _last_save: float = field(default_factory=time.monotonic)
    # The seeded init's named parameters -> the ones a fresh run starts from (shared/init_embeddings.py);
    # never called for a resumed run, which restores its own weights.
    initial: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None = None
    # Where a rank without a run folder (data parallel, rank > 0) reads the state rank 0 resumes from.
    source: RunFolder | None = None

    # -- start

    def start(self, config: dict[str, Any]) -> tuple[Any, int]:
        """(train state, steps already done): fresh from the seed, or the folder's saved state."""
        b = self.backend
        check_fits_memory(self.model_cfg)
        src = self.folder if self.folder is not None else self.source
        if src is not None and src.resumes:
            params, arrays, best, info = load_state(src, self.model_cfg)
            try:
                step = int(info["step"])
                state = b.restore_state(b.from_params(self.model_cfg, params), self.train_cfg, arrays, step)
                self.history = list(info["history"])
                self.counters = dict(info.get("counters", {}))
                if best is not None:
                    self.best = Best(int(info["best"]["step"]), dict(info["best"]["val"]), best)
            except SeqbatchError as e:
                raise SeqbatchError(f"{src.state_file}: {e}") from e
            except (KeyError, TypeError, ValueError, RuntimeError) as e:  # torch rejects a bad RNG state so
                raise SeqbatchError(f"{src.state_file}: the saved state does not fit this run "
                                    f"({type(e).__name__}: {e})") from e
            if self.folder is None:
                return state, step
            old = self.folder.read_config()
            resumes = [*old.get("resumes", []), {"step": step, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}]
            self.folder.write_config({**config, "resumes": resumes})
            self.folder.rewrite_metrics(self.history)
            self.log(f"resuming {self.folder.path} at step {step}")
            return state, step
        if self.train_cfg.init == "shared":
            from shared.layout import shared_init

            model = b.from_params(self.model_cfg, shared_init(self.model_cfg, self.train_cfg.seed))
        else:
            model = b.init(self.model_cfg, self.train_cfg.seed)
        if self.initial is not None:
            model = b.from_params(self.model_cfg, self.initial(b.to_params(model)))
        state = b.train_state(model, self.train_cfg)
        if self.folder is not None:
            self.folder.write_config(config)
            self.folder.rewrite_metrics([])
            self.save(state, 0)  # resumable (and a last good state) from the first step on
        return state, 0

    # -- per flush

    def flush_due(self, step: int) -> bool:
        """Whether to read metrics now although the loop would not evaluate: a save or a signal is due."""
        return self.save_due(step, evaluating=False) or self.signalled

    @property
    def signalled(self) -> bool:
        return self.folder is not None and self.folder.signum is not None

    def save_due(self, step: int, *, evaluating: bool) -> bool:
        if self.folder is None:
            return False
        if self.checkpoint_every is not None:
            return step % self.checkpoint_every == 0
        return evaluating or time.monotonic() - self._last_save >= DEFAULT_SAVE_SECONDS

    def flush(self, pending: list[tuple[int, dict[str, Any]]], state: Any) -> None:
        """Record the pending steps' loss and gradient norm. A bad step (shared/guard.py) is marked
        `skipped`, or, under on_nan="stop", ends the run: the state (frozen at the step before) is
        saved as the last good one and `Diverged` raised."""
        records = []
        for s, m in pending:
            rec: dict[str, Any] = {"step": s, "loss": float(m["loss"]), "grad_norm": float(m["grad_norm"])}
            if not bool(m.get("ok", True)):
                if self.train_cfg.on_nan == "stop":
                    self.record(records)
                    where = self.save(state, s - 1) if self.folder is not None else "not saved: no run folder"
                    raise Diverged(s, rec["loss"], self.train_cfg.max_loss, s - 1, where)
                rec["skipped"] = True
                self.counters["skipped"] = self.counters.get("skipped", 0) + 1
            records.append(rec)
        pending.clear()
        self.record(records)

    def record(self, records: list[dict[str, Any]] | dict[str, Any]) -> None:
        records = [records] if isinstance(records, dict) else records
        self.history += records
        if self.folder is not None:
            self.folder.append_metrics(records)

    def consider_best(self, step: int, val: dict[str, Any], better: Callable[[dict[str, Any], dict[str, Any]], bool],
                      state: Any) -> None:
        if self.best is None or better(val, self.best.val):
            self.best = Best(step, dict(val), self.backend.to_params(self.backend.model_of(state)))

    # -- saves and signals

    def checkpoint(self, state: Any, step: int, *, evaluating: bool, final: bool = False) -> None:
        """Save if due (or `final`), then stop here if a signal came."""
        if self.folder is None:
            return
        if final or self.signalled or self.save_due(step, evaluating=evaluating):
            self.save(state, step)
        if self.signalled:
            assert self.folder.signum is not None
            raise Interrupted(self.folder.signum, step, str(self.folder.path))

    def save(self, state: Any, step: int) -> str:
        assert self.folder is not None
        b = self.backend
        params = b.to_params(b.model_of(state))
        info = {"step": step, "backend": b.name, "history": self.history, "counters": self.counters,
                "best": None if self.best is None else {"step": self.best.step, "val": self.best.val}}
        save_state(self.folder, model_cfg=self.model_cfg, params=params, arrays=b.state_arrays(state), info=info,
                   best=None if self.best is None else self.best.params, checkpoint=self.make_checkpoint(params))
        self._last_save = time.monotonic()
        return str(self.folder.path / "state")
