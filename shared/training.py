"""The training and evaluation loops, written once over the backend contract."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from shared.backend import Backend
from shared.batching import Sampler, batches_in_order
from shared.config import ModelConfig, TrainConfig
from shared.dataset import Dataset, EncodedSplit
from shared.metrics import classification_report, cross_entropy
from shared.plots import loss_curve


def predict_logits(
    backend: Backend, model: Any, split: EncodedSplit, *, batch_size: int = 1024, multiple: int = 8
) -> np.ndarray:
    """Logits for a whole split, in its order. Examples are sorted by length first so that each
    batch pads little, then put back in order."""
    if len(split) == 0:
        return np.zeros((0, backend.config_of(model).num_classes), np.float32)
    order = np.argsort(split.lengths, kind="stable")
    out: list[np.ndarray] = []
    for idx in batches_in_order(len(order), batch_size):
        out.append(backend.logits(model, split.batch(order[idx], multiple=multiple)))
    logits = np.concatenate(out)
    result = np.empty_like(logits)
    result[order] = logits
    return result


def evaluate(backend: Backend, model: Any, split: EncodedSplit, **kw: Any) -> tuple[dict[str, float | int], np.ndarray]:
    """Metrics (top1, top2, balanced_accuracy, n, loss) and the logits they came from."""
    logits = predict_logits(backend, model, split, **kw)
    loss = float(cross_entropy(logits, split.labels).mean()) if len(split) else float("nan")
    return classification_report(logits, split.labels, loss=loss), logits


@dataclass
class RunResult:
    model: Any
    val: dict[str, float | int]
    test: dict[str, float | int]
    seconds: float
    steps: int
    history: list[dict[str, Any]] = field(default_factory=list)


def total_steps(cfg: TrainConfig, n_train: int) -> int:
    if cfg.steps is not None:
        return cfg.steps
    assert cfg.epochs is not None
    return cfg.epochs * math.ceil(n_train / cfg.batch_size)


def fit(
    backend: Backend,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    data: Dataset,
    out_dir: str | Path | None = None,
    *,
    progress: bool = True,
    multiple: int = 8,
    log: Any = print,
) -> RunResult:
    """Train from a fresh seeded model; validate every `eval_every` steps; test once at the end.

    With `out_dir`: config.json, metrics.jsonl (loss per step, val metrics, the final test
    metrics as the last record), loss.png and model.safetensors are written there.
    """
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(
            json.dumps(
                {"backend": backend.name, "model": json.loads(model_cfg.to_json()),
                 "train": json.loads(train_cfg.to_json()), "data": data.source, "labels": data.label_names},
                indent=2, ensure_ascii=False,
            )
        )
    history: list[dict[str, Any]] = []
    model = backend.init(model_cfg, train_cfg.seed)
    state = backend.train_state(model, train_cfg)
    sampler = Sampler(data.train.labels, train_cfg.batch_size, kind=train_cfg.sampler, seed=train_cfg.seed)
    n_steps = total_steps(train_cfg, len(data.train))
    batches = iter(sampler)
    pending: list[tuple[int, dict[str, Any]]] = []
    val_report: dict[str, float | int] = {}
    start = time.perf_counter()
    bar = tqdm(range(1, n_steps + 1), desc=f"train [{backend.name}]", disable=not progress, unit="step")
    for step in bar:
        batch = data.train.batch(next(batches), multiple=multiple)
        state, metrics = backend.train_step(state, batch)
        pending.append((step, metrics))
        if step % train_cfg.eval_every == 0 or step == n_steps:
            # Read device scalars only here, so that JAX's dispatch runs ahead between evaluations.
            for s, m in pending:
                history.append({"step": s, "loss": float(m["loss"]), "grad_norm": float(m["grad_norm"])})
            pending.clear()
            val_report, _ = evaluate(backend, backend.model_of(state), data.val, multiple=multiple)
            history.append({"step": step, "split": "val", **val_report})
            bar.set_postfix(loss=f"{history[-2]['loss']:.3f}", val_top1=f"{val_report['top1']:.3f}")
    seconds = time.perf_counter() - start
    model = backend.model_of(state)
    test_report, _ = evaluate(backend, model, data.test, multiple=multiple)
    history.append({"step": n_steps, "split": "test", "train_seconds": round(seconds, 2), **test_report})
    if out is not None:
        with (out / "metrics.jsonl").open("w") as f:
            for rec in history:
                f.write(json.dumps(rec) + "\n")
        train = [r for r in history if "split" not in r]
        vals = [r for r in history if r.get("split") == "val"]
        loss_curve(
            [r["step"] for r in train], [r["loss"] for r in train], out / "loss.png",
            val={"val top-1": [(r["step"], r["top1"]) for r in vals],
                 "val balanced acc.": [(r["step"], r["balanced_accuracy"]) for r in vals]},
            title=f"{backend.name} {model_cfg.cell} x{model_cfg.num_layers} h{model_cfg.hidden_size} on {data.source}",
        )
        backend.save(model, out / "model.safetensors", vocab=data.vocab, labels=data.label_names)
    return RunResult(model, val_report, test_report, seconds, n_steps, history)
