"""Training and evaluating the MLP on tabular data over the backend contract, written once for both backends.

- **Batches**: epochs of shuffled mini-batches from a seeded NumPy generator (`shared.batching.Sampler`,
  kind "epoch"; the last batch of an epoch is the short one), the same index batches on both
  backends, fed through the backend's `loader` (torch: `TensorDataset` + `DataLoader` whose
  `batch_sampler` yields these batches). A resumed run replays the index stream to its step.
- **Per epoch** (metrics.jsonl, `split: "epoch"`): `train_loss`, each batch's mean loss (before its
  update) weighted by the batch's size over the examples of the epoch, sum(B_i * loss_i) / sum(B_i)
  (the short last batch counts for its examples only; a skipped step's are left out);
  `train_accuracy`, the same forward passes' correct predictions over those examples; `val_loss`
  and `val_accuracy` (and `val_balanced_accuracy`) of the epoch's final weights. Every step's own
  record (`step`, `loss`, `grad_norm`) precedes them.
- **At the end**: the test split once (`split: "test"`, with `test_accuracy`); with `keep_best`, the
  weights of the epoch with the best validation top-1 (the earliest among equals) are tested and saved.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from shared import checkpoint
from shared.backend import Backend, kind_module
from shared.batching import Sampler, batches_in_order
from shared.config import TrainConfig
from shared.errors import SeqbatchError
from shared.kinds.mlp import MLPConfig
from shared.loop import FitResult, RunLoop
from shared.metrics import classification_report, cross_entropy
from shared.runs import RunFolder, opened
from shared.tabular import TabularData, TabularSplit

EVAL_BATCH = 1024


def predict_logits(backend: Backend, model: Any, split: TabularSplit, *, batch_size: int = EVAL_BATCH
                   ) -> np.ndarray:
    """Logits for a whole split, in its order."""
    km = kind_module(backend, "mlp")
    if len(split) == 0:
        return np.zeros((0, backend.config_of(model).num_classes), np.float32)
    return np.concatenate([km.logits(model, split.batch(idx)) for idx in batches_in_order(len(split), batch_size)])


def evaluate_tabular(backend: Backend, model: Any, split: TabularSplit) -> tuple[dict[str, float | int], np.ndarray]:
    """Metrics (top1, top2, balanced_accuracy, n, loss) and the logits they came from."""
    logits = predict_logits(backend, model, split)
    loss = float(cross_entropy(logits, split.labels).mean()) if len(split) else float("nan")
    return classification_report(logits, split.labels, loss=loss), logits


TabularResult = FitResult  # the loop's result (shared/loop.py)


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    return math.ceil(n_train / batch_size)


def fit_mlp(
    backend: Backend,
    model_cfg: MLPConfig,
    train_cfg: TrainConfig,
    data: TabularData,
    out_dir: str | Path | None = None,
    *,
    progress: bool = True,
    log: Callable[[str], Any] = print,
    run_info: dict[str, Any] | None = None,
    keep_best: bool = False,
    folder: RunFolder | None = None,
    mode: str = "new",
    checkpoint_every: int | None = None,
    split: dict[str, Any] | None = None,
) -> TabularResult:
    """Train for `train_cfg.epochs` epochs from a fresh seeded model (or resume a run folder),
    validating after each; test once. With a run folder: config.json, metrics.jsonl streamed, the
    run state in state/, then model.safetensors (labels, feature standardisation and `split` in its
    metadata), loss.png and curves.png."""
    if train_cfg.epochs is None:
        raise SeqbatchError("the MLP trains in epochs: give TrainConfig(epochs=..., steps=None)")
    if len(data.train) == 0:
        raise SeqbatchError(f"{data.source}: the training split is empty")
    with opened(folder, out_dir, mode, log) as run:
        return _fit(backend, model_cfg, train_cfg, data, run, progress=progress, log=log, run_info=run_info,
                    keep_best=keep_best, checkpoint_every=checkpoint_every, split=split)


def _fit(
    backend: Backend, model_cfg: MLPConfig, train_cfg: TrainConfig, data: TabularData, folder: RunFolder | None, *,
    progress: bool, log: Callable[[str], Any], run_info: dict[str, Any] | None, keep_best: bool,
    checkpoint_every: int | None, split: dict[str, Any] | None,
) -> TabularResult:
    km = kind_module(backend, "mlp")
    per_epoch = steps_per_epoch(len(data.train), train_cfg.batch_size)
    n_steps = per_epoch * (train_cfg.epochs or 1)
    config = {"backend": backend.name, "kind": "mlp", "model": json.loads(model_cfg.to_json()),
              "train": json.loads(train_cfg.to_json()), "data": data.source, "labels": data.label_names,
              "features": list(data.scaling.names), "steps_per_epoch": per_epoch,
              "sizes": {"train": len(data.train), "val": len(data.val), "test": len(data.test)}, "split": split,
              **(run_info or {})}

    def make_checkpoint(params: dict[str, np.ndarray]) -> checkpoint.Checkpoint:
        return checkpoint.Checkpoint(model_cfg, params, labels=list(data.label_names), split=split,
                                     features=data.scaling)

    loop = RunLoop(backend, model_cfg, train_cfg, folder, make_checkpoint, checkpoint_every, log)
    state, done = loop.start(config)
    counters = loop.counters
    indices = iter(Sampler(data.train.labels, train_cfg.batch_size, kind="epoch", seed=train_cfg.seed))
    for _ in range(done):  # the stream is a function of the seed: replay it to where the run stopped
        next(indices)
    batches = km.loader(backend.model_of(state), data.train, itertools.islice(indices, n_steps - done))
    pending: list[tuple[int, dict[str, Any]]] = []
    sizes: dict[int, int] = {}
    val: dict[str, float | int] = counters.get("val", {})
    train_seconds = float(counters.get("train_seconds", 0.0))
    mark = time.perf_counter()
    bar = tqdm(range(done + 1, n_steps + 1), desc=f"train mlp [{backend.name}]", disable=not progress, unit="step",
               initial=done, total=n_steps)
    ctx = folder.catch_signals() if folder is not None else contextlib.nullcontext()
    with ctx:
        for step, batch in zip(bar, batches, strict=True):
            state, metrics = backend.train_step(state, batch)
            pending.append((step, metrics))
            sizes[step] = len(batch[1])
            epoch_end = step % per_epoch == 0
            if not (epoch_end or loop.flush_due(step)):
                continue
            _accumulate(counters, pending, sizes)  # before `flush` clears what is pending
            loop.flush(pending, state)
            train_seconds += time.perf_counter() - mark
            counters["train_seconds"] = train_seconds
            if epoch_end:
                val, _ = evaluate_tabular(backend, backend.model_of(state), data.val)
                counters["val"] = val
                if keep_best:
                    loop.consider_best(step, val, lambda new, old: new["top1"] > old["top1"], state)
                loop.record(_epoch_record(counters, step, step // per_epoch, val, train_seconds))
                last = loop.history[-1]
                bar.set_postfix(loss=f"{last['train_loss']:.3f}", val_acc=f"{last['val_accuracy']:.3f}")
                if not progress:
                    log(f"epoch {last['epoch']}: train acc {last['train_accuracy']:.4f} loss {last['train_loss']:.4f}"
                        f" | val acc {last['val_accuracy']:.4f} loss {last['val_loss']:.4f}")
            loop.checkpoint(state, step, evaluating=epoch_end, final=step == n_steps)
            mark = time.perf_counter()
    model = backend.model_of(state)
    chosen: dict[str, Any] = {}
    if loop.best is not None:
        model = backend.from_params(model_cfg, loop.best.params)
        val = loop.best.val
        chosen = {"best_step": loop.best.step, "best_val_top1": loop.best.val["top1"]}
        log(f"keeping the weights of step {loop.best.step} (val top-1 {loop.best.val['top1']:.4f})")
    test, _ = evaluate_tabular(backend, model, data.test)
    skipped = {"skipped_steps": counters["skipped"]} if counters.get("skipped") else {}
    loop.record({"step": n_steps, "split": "test", "train_seconds": round(train_seconds, 3), **test, **chosen,
                 **skipped, "test_accuracy": test["top1"]})
    if folder is not None:
        _write_outputs(folder.path, backend, model, model_cfg, data, loop.history, make_checkpoint, log)
    return TabularResult(model, val, test, train_seconds, n_steps, loop.history)


def _accumulate(counters: dict[str, Any], pending: list[tuple[int, dict[str, Any]]], sizes: dict[int, int]) -> None:
    """Add the pending steps to the epoch's running sums (kept in the loop's counters, so that a run
    resumed mid-epoch reports the same epoch figures): loss x batch size, correct, examples. A
    step the guard rejected (not ok) is left out."""
    for step, m in pending:
        size = sizes.pop(step)
        if not bool(m.get("ok", True)):
            continue
        counters["epoch_loss_sum"] = counters.get("epoch_loss_sum", 0.0) + size * float(m["loss"])
        counters["epoch_correct"] = counters.get("epoch_correct", 0) + int(m["correct"])
        counters["epoch_seen"] = counters.get("epoch_seen", 0) + size


def _epoch_record(counters: dict[str, Any], step: int, epoch: int, val: dict[str, float | int],
                  train_seconds: float) -> dict[str, Any]:
    seen = int(counters.pop("epoch_seen", 0))
    loss_sum = float(counters.pop("epoch_loss_sum", 0.0))
    correct = int(counters.pop("epoch_correct", 0))
    return {"step": step, "split": "epoch", "epoch": epoch,
            "train_loss": loss_sum / seen if seen else float("nan"),  # sum(B_i * loss_i) / sum(B_i)
            "train_accuracy": correct / seen if seen else float("nan"), "train_n": seen,
            "val_loss": val["loss"], "val_accuracy": val["top1"], "val_balanced_accuracy": val["balanced_accuracy"],
            "train_seconds": round(train_seconds, 3)}


def _write_outputs(out: Path, backend: Backend, model: Any, cfg: MLPConfig, data: TabularData,
                   history: list[dict[str, Any]], make_checkpoint: Any, log: Callable[[str], Any]) -> None:
    """The model first (atomically), then the plots: a plot that fails costs a warning, not the weights."""
    from shared.plots import epoch_curves, loss_curve

    checkpoint.save(out / "model.safetensors", make_checkpoint(backend.to_params(model)))
    title = f"{backend.name} MLP {'-'.join(map(str, cfg.widths))} on {data.source}"
    train = [r for r in history if "split" not in r]
    epochs = [r for r in history if r.get("split") == "epoch"]
    try:
        loss_curve([r["step"] for r in train], [r["loss"] for r in train], out / "loss.png",
                   val={"val accuracy": [(r["step"], r["val_accuracy"]) for r in epochs]}, title=title)
        if epochs:
            epoch_curves(epochs, out / "curves.png", title=title, train_label="train (during the epoch)")
    except Exception as e:  # matplotlib and the file system raise many types
        log(f"warning: the plots were not written ({type(e).__name__}: {e}); the model and metrics were")
