"""Training and evaluating a language model over the backend contract, written once for both backends.

The loop is the classifier's (shared/training.py) with what the LM changes: batches carry state
from window to window (`LMBatch.reset` says where it restarts), metrics are nats/bits per character
and perplexity, the best checkpoint is the lowest validation loss, and `max_seconds` can end a run
on a training-time budget (evaluation time not counted).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from shared import checkpoint
from shared.backend import Backend, kind_module
from shared.config import TrainConfig
from shared.distributed import World
from shared.kinds.lm import Carry, LMBatch, LMConfig, lm_report, shard_rows
from shared.lm_data import LMData, batches_per_epoch, check_trainable, eval_batches, train_batches
from shared.loop import FitResult, RunLoop
from shared.plots import lm_curves
from shared.runs import RunFolder, opened

EVAL_ROWS = 32  # rows of the evaluation stream: all but fewer than 32 characters of a split are scored


def evaluate_lm(backend: Backend, model: Any, batches: Iterable[LMBatch]) -> dict[str, float | int]:
    """nats_per_char, bits_per_char, perplexity and n (characters scored) over `batches`, the state
    carried from each batch to the next unless it resets."""
    lm = kind_module(backend, "lm")
    total, n = 0.0, 0
    carry: Carry | None = None
    for batch in batches:
        per_token, carry = lm.losses(model, batch, carry)
        total += float(np.asarray(per_token, np.float64).sum())
        n += batch.n_tokens
    return lm_report(total, n)


def evaluate_split(backend: Backend, model: Any, data: LMData, split: str, seq_length: int) -> dict[str, float | int]:
    return evaluate_lm(backend, model, eval_batches(data, split, rows=EVAL_ROWS, seq_length=seq_length))


LMRunResult = FitResult  # the loop's result (shared/loop.py)


def fit_lm(
    backend: Backend,
    model_cfg: LMConfig,
    train_cfg: TrainConfig,
    data: LMData,
    out_dir: str | Path | None = None,
    *,
    seq_length: int = 100,
    progress: bool = True,
    log: Callable[[str], Any] = print,
    run_info: dict[str, Any] | None = None,
    keep_best: bool = True,
    max_seconds: float | None = None,
    bucket_chunk: int = 0,
    folder: RunFolder | None = None,
    mode: str = "new",
    checkpoint_every: int | None = None,
    world: World | None = None,
    resume_from: RunFolder | None = None,
) -> LMRunResult:
    """Train from a fresh seeded model (or resume a run folder); validate every `eval_every` steps
    (and at the end); test once.

    With a run folder (`folder`, or `out_dir` opened with `mode`; shared/runs.py): config.json,
    metrics.jsonl streamed (loss per step; `split: val` records with the training seconds so far;
    the final record with val and test metrics), the run state in state/ (the carried state
    included), then model.safetensors (vocabulary and LMDataConfig in its metadata) and loss.png.

    `world` (torch DDP, shared/distributed.py): this process trains on its rows of every global
    batch (`shard_rows`) and carries their state; every rank evaluates the whole split alone (the
    same figures). JAX over processes passes its world's devices in `train_cfg.devices` instead.
    The other ranks of a resumed run read its state from `resume_from` (a folder opened with mode "read").
    """
    check_trainable(data, train_cfg.batch_size, seq_length)
    with opened(folder, out_dir, mode, log) as run:
        return _fit_lm(backend, model_cfg, train_cfg, data, run, seq_length=seq_length, progress=progress,
                       log=log, run_info=run_info, keep_best=keep_best, max_seconds=max_seconds,
                       bucket_chunk=bucket_chunk, checkpoint_every=checkpoint_every, world=world,
                       resume_from=resume_from)


def _fit_lm(
    backend: Backend, model_cfg: LMConfig, train_cfg: TrainConfig, data: LMData, folder: RunFolder | None, *,
    seq_length: int, progress: bool, log: Callable[[str], Any], run_info: dict[str, Any] | None, keep_best: bool,
    max_seconds: float | None, bucket_chunk: int, checkpoint_every: int | None, world: World | None = None,
    resume_from: RunFolder | None = None,
) -> LMRunResult:
    per_epoch = batches_per_epoch(data, train_cfg.batch_size, seq_length)
    n_steps = steps_for(train_cfg, data, seq_length)
    config = {"backend": backend.name, "kind": "lm", "model": json.loads(model_cfg.to_json()),
              "train": json.loads(train_cfg.to_json()), "data": data.source,
              "lm_data": json.loads(data.cfg.to_json()), "seq_length": seq_length, "chars": data.chars,
              "vocab": len(data.vocab), "steps_per_epoch": per_epoch, "max_seconds": max_seconds, **(run_info or {})}

    def make_checkpoint(params: dict[str, np.ndarray]) -> checkpoint.Checkpoint:
        return checkpoint.Checkpoint(model_cfg, params, data.vocab, data=data.cfg)

    loop = RunLoop(backend, model_cfg, train_cfg, folder, make_checkpoint, checkpoint_every, log, source=resume_from)
    state, done = loop.start(config)
    batches = train_batches(data, train_cfg.batch_size, seq_length, seed=train_cfg.seed, bucket_chunk=bucket_chunk)
    if world is not None and world.size > 1 and world.shards_batches:
        batches = _rows_of(batches, world)
    for _ in range(done):  # the stream is a function of the seed: replay it to where the run stopped
        next(batches)
    pending: list[tuple[int, Any]] = []
    val: dict[str, float | int] = loop.counters.get("val", {})
    train_seconds = float(loop.counters.get("train_seconds", 0.0))
    eval_seconds = 0.0
    mark = time.perf_counter()
    bar = tqdm(range(done + 1, n_steps + 1), desc=f"train lm [{backend.name}]", disable=not progress, unit="step",
               initial=done, total=n_steps)
    step = done
    ctx = folder.catch_signals() if folder is not None else contextlib.nullcontext()
    with ctx:
        for step in bar:
            state, metrics = backend.train_step(state, next(batches))
            pending.append((step, metrics))
            out_of_time = max_seconds is not None and train_seconds + time.perf_counter() - mark >= max_seconds
            evaluating = step % train_cfg.eval_every == 0 or step == n_steps or out_of_time
            if not (evaluating or loop.flush_due(step)):
                continue
            # Read device scalars only here, so that JAX's dispatch runs ahead between evaluations.
            loop.flush(pending, state)
            now = time.perf_counter()
            train_seconds += now - mark
            loop.counters["train_seconds"] = train_seconds
            if evaluating:
                val = evaluate_split(backend, backend.model_of(state), data, "val", seq_length)
                loop.counters["val"] = val
                if keep_best:
                    loop.consider_best(step, val, lambda new, old: new["nats_per_char"] < old["nats_per_char"], state)
                loop.record({"step": step, "split": "val", "epoch": round(step / per_epoch, 3),
                             "train_seconds": round(train_seconds, 1), **val})
                bar.set_postfix(loss=f"{loop.history[-2]['loss']:.3f}", val=f"{val['nats_per_char']:.3f}")
            loop.checkpoint(state, step, evaluating=evaluating, final=step == n_steps or out_of_time)
            mark = time.perf_counter()
            eval_seconds += mark - now
            if out_of_time:
                log(f"stopping at step {step}: the training-time budget of {max_seconds:.0f} s is spent")
                break
    model = backend.model_of(state)
    chosen: dict[str, Any] = {}
    if loop.best is not None:
        model = backend.from_params(model_cfg, loop.best.params)
        val = loop.best.val
        chosen = {"best_step": loop.best.step, "best_val_nats_per_char": loop.best.val["nats_per_char"]}
        log(f"keeping the weights of step {loop.best.step} (val {loop.best.val['nats_per_char']:.4f} nats/char)")
    test = evaluate_split(backend, model, data, "test", seq_length)
    skipped = {"skipped_steps": loop.counters["skipped"]} if loop.counters.get("skipped") else {}
    loop.record({"step": step, "split": "test", "train_seconds": round(train_seconds, 2),
                 "eval_seconds": round(eval_seconds, 2), **test, **chosen, **skipped,
                 "val": val, "epochs": round(step / per_epoch, 3)})
    if folder is not None:
        _write_outputs(folder.path, backend, model, model_cfg, data, loop.history, make_checkpoint, log)
    return LMRunResult(model, val, test, train_seconds, step, loop.history)


def _write_outputs(out: Path, backend: Backend, model: Any, cfg: LMConfig, data: LMData,
                   history: list[dict[str, Any]], make_checkpoint: Any, log: Callable[[str], Any]) -> None:
    """The model first (atomically), then the plot: a plot that fails costs a warning, not the weights."""
    checkpoint.save(out / "model.safetensors", make_checkpoint(backend.to_params(model)))
    train = [r for r in history if "split" not in r]
    vals = [(r["step"], r["nats_per_char"]) for r in history if r.get("split") == "val"]
    try:
        lm_curves([r["step"] for r in train], [r["loss"] for r in train], vals, out / "loss.png",
                  title=f"{backend.name} {cfg.cell} x{cfg.num_layers} h{cfg.hidden_size} LM on {data.source}")
    except Exception as e:  # matplotlib and the file system raise many types
        log(f"warning: the plot was not written ({type(e).__name__}: {e}); the model and metrics were")


def _rows_of(batches: Iterator[LMBatch], world: World) -> Iterator[LMBatch]:
    """This rank's rows of each global batch; a batch with fewer rows than ranks (a documents epoch's
    last) is left out on every rank alike."""
    for batch in batches:
        if len(batch) >= world.size:
            yield shard_rows(batch, world.rank, world.size)


def steps_for(train_cfg: TrainConfig, data: LMData, seq_length: int) -> int:
    """Optimizer steps of a run: `steps`, or `epochs` times the batches of one epoch."""
    if train_cfg.steps is not None:
        return train_cfg.steps
    return batches_per_epoch(data, train_cfg.batch_size, seq_length) * (train_cfg.epochs or 1)
