"""Training and evaluating a language model over the backend contract, written once for both backends.

The loop is the classifier's (shared/training.py) with what the LM changes: batches carry state
from window to window (`LMBatch.reset` says where it restarts), metrics are nats/bits per character
and perplexity, the best checkpoint is the lowest validation loss, and `max_seconds` can end a run
on a training-time budget (evaluation time not counted).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from shared import checkpoint
from shared.backend import Backend, kind_module
from shared.config import TrainConfig
from shared.kinds.lm import Carry, LMBatch, LMConfig, lm_report
from shared.lm_data import LMData, batches_per_epoch, check_trainable, eval_batches, train_batches
from shared.plots import lm_curves

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


@dataclass
class LMRunResult:
    model: Any
    val: dict[str, float | int]
    test: dict[str, float | int]
    seconds: float
    steps: int
    history: list[dict[str, Any]] = field(default_factory=list)


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
) -> LMRunResult:
    """Train from a fresh seeded model; validate every `eval_every` steps (and at the end); test once.

    With `out_dir`: config.json, metrics.jsonl (loss per step; `split: val` records with the
    training seconds so far; the final record with val and test metrics), loss.png and
    model.safetensors (vocabulary and LMDataConfig in its metadata) are written there.
    """
    check_trainable(data, train_cfg.batch_size, seq_length)
    per_epoch = batches_per_epoch(data, train_cfg.batch_size, seq_length)
    n_steps = steps_for(train_cfg, data, seq_length)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(
            {"backend": backend.name, "kind": "lm", "model": json.loads(model_cfg.to_json()),
             "train": json.loads(train_cfg.to_json()), "data": data.source,
             "lm_data": json.loads(data.cfg.to_json()), "seq_length": seq_length, "chars": data.chars,
             "vocab": len(data.vocab), "steps_per_epoch": per_epoch, "max_seconds": max_seconds,
             **(run_info or {})}, indent=2, ensure_ascii=False))
    model = backend.init(model_cfg, train_cfg.seed)
    state = backend.train_state(model, train_cfg)
    batches = train_batches(data, train_cfg.batch_size, seq_length, seed=train_cfg.seed, bucket_chunk=bucket_chunk)
    history: list[dict[str, Any]] = []
    pending: list[tuple[int, Any]] = []
    best: tuple[int, dict[str, float | int], dict[str, np.ndarray]] | None = None
    val: dict[str, float | int] = {}
    train_seconds = eval_seconds = 0.0
    mark = time.perf_counter()
    bar = tqdm(range(1, n_steps + 1), desc=f"train lm [{backend.name}]", disable=not progress, unit="step")
    step = 0
    for step in bar:
        state, metrics = backend.train_step(state, next(batches))
        pending.append((step, metrics))
        out_of_time = max_seconds is not None and train_seconds + time.perf_counter() - mark >= max_seconds
        if not (step % train_cfg.eval_every == 0 or step == n_steps or out_of_time):
            continue
        # Read device scalars only here, so that JAX's dispatch runs ahead between evaluations.
        history += [{"step": s, "loss": float(m["loss"]), "grad_norm": float(m["grad_norm"])} for s, m in pending]
        pending.clear()
        eval_start = time.perf_counter()
        train_seconds += eval_start - mark
        val = evaluate_split(backend, backend.model_of(state), data, "val", seq_length)
        if keep_best and (best is None or val["nats_per_char"] < best[1]["nats_per_char"]):
            best = (step, dict(val), backend.to_params(backend.model_of(state)))
        history.append({"step": step, "split": "val", "epoch": round(step / per_epoch, 3),
                        "train_seconds": round(train_seconds, 1), **val})
        bar.set_postfix(loss=f"{history[-2]['loss']:.3f}", val=f"{val['nats_per_char']:.3f}")
        mark = time.perf_counter()
        eval_seconds += mark - eval_start
        if out_of_time:
            log(f"stopping at step {step}: the training-time budget of {max_seconds:.0f} s is spent")
            break
    model = backend.model_of(state)
    chosen: dict[str, Any] = {}
    if best is not None:
        model = backend.from_params(model_cfg, best[2])
        val = best[1]
        chosen = {"best_step": best[0], "best_val_nats_per_char": best[1]["nats_per_char"]}
        log(f"keeping the weights of step {best[0]} (val {best[1]['nats_per_char']:.4f} nats/char)")
    test = evaluate_split(backend, model, data, "test", seq_length)
    history.append({"step": step, "split": "test", "train_seconds": round(train_seconds, 2),
                    "eval_seconds": round(eval_seconds, 2), **test, **chosen,
                    "val": val, "epochs": round(step / per_epoch, 3)})
    if out is not None:
        _write_outputs(out, backend, model, model_cfg, data, history)
    return LMRunResult(model, val, test, train_seconds, step, history)


def _write_outputs(out: Path, backend: Backend, model: Any, cfg: LMConfig, data: LMData,
                   history: list[dict[str, Any]]) -> None:
    with (out / "metrics.jsonl").open("w") as f:
        for rec in history:
            f.write(json.dumps(rec) + "\n")
    train = [r for r in history if "split" not in r]
    vals = [(r["step"], r["nats_per_char"]) for r in history if r.get("split") == "val"]
    lm_curves([r["step"] for r in train], [r["loss"] for r in train], vals, out / "loss.png",
              title=f"{backend.name} {cfg.cell} x{cfg.num_layers} h{cfg.hidden_size} LM on {data.source}")
    checkpoint.save(out / "model.safetensors", checkpoint.Checkpoint(
        backend.config_of(model), backend.to_params(model), data.vocab, data=data.cfg))


def steps_for(train_cfg: TrainConfig, data: LMData, seq_length: int) -> int:
    """Optimizer steps of a run: `steps`, or `epochs` times the batches of one epoch."""
    if train_cfg.steps is not None:
        return train_cfg.steps
    return batches_per_epoch(data, train_cfg.batch_size, seq_length) * (train_cfg.epochs or 1)
