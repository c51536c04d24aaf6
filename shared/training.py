"""The training and evaluation loops, written once over the backend contract."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from shared import checkpoint
from shared.backend import Backend
from shared.batching import Sampler, batches_in_order, index_waste
from shared.config import ModelConfig, TrainConfig
from shared.dataset import Dataset, EncodedSplit
from shared.distributed import ShardedSampler, World, shard_of
from shared.errors import SeqbatchError
from shared.loop import FitResult, RunLoop
from shared.metrics import SELECT, classification_report, cross_entropy
from shared.plots import epoch_curves, loss_curve
from shared.runs import RunFolder, opened


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


def evaluate(backend: Backend, model: Any, split: EncodedSplit, *, world: World | None = None,
             **kw: Any) -> tuple[dict[str, float | int], np.ndarray]:
    """Metrics (top1, top2, balanced_accuracy, n, loss) and the logits they came from. With a
    `world`, each rank predicts its shard of the split and the logits are gathered, so every rank
    gets the whole split's logits and the metrics of one process."""
    if world is None or world.size == 1:
        logits = predict_logits(backend, model, split, **kw)
    else:
        local = predict_logits(backend, model, split.subset(shard_of(len(split), world.rank, world.size)), **kw)
        logits = world.gather_rows(local, len(split))
    loss = float(cross_entropy(logits, split.labels).mean()) if len(split) else float("nan")
    return classification_report(logits, split.labels, loss=loss), logits


@dataclass
class RunResult(FitResult):
    padding: dict[str, Any] = field(default_factory=dict)  # padding waste of the batches


def total_steps(cfg: TrainConfig, n_train: int) -> int:
    if cfg.steps is not None:
        return cfg.steps
    assert cfg.epochs is not None
    return cfg.epochs * math.ceil(n_train / cfg.batch_size)


def make_sampler(data: Dataset, cfg: TrainConfig, bucket_chunk: int = 0) -> Sampler:
    return Sampler(data.train.labels, cfg.batch_size, kind=cfg.sampler, seed=cfg.seed,
                   lengths=data.train.lengths, bucket_chunk=bucket_chunk)


def padding_waste(data: Dataset, cfg: TrainConfig, *, bucket_chunk: int = 0, multiple: int = 8) -> dict[str, Any]:
    """Share of padded positions over one epoch of training batches, without and with bucketing.

    Measured on fresh samplers with the run's seed, so the training stream is not disturbed.
    `unbucketed` uses the run's sampler kind without bucketing; `bucketed` is present when
    `bucket_chunk` is set.
    """
    lengths = data.train.lengths
    report: dict[str, Any] = {"multiple": multiple, "bucket_chunk": bucket_chunk,
                              "unbucketed": round(index_waste(lengths, make_sampler(data, cfg).epoch(),
                                                              multiple=multiple), 4)}
    if bucket_chunk:
        batches = make_sampler(data, cfg, bucket_chunk).epoch()
        report["bucketed"] = round(index_waste(lengths, batches, multiple=multiple), 4)
    return report


def train_probe(split: EncodedSplit, n: int, seed: int) -> EncodedSplit:
    """A fixed random subset of the training split, for per-epoch train accuracy and loss.

    Measured in eval mode (no dropout) with the epoch's final weights, so it is comparable with
    the validation figures; the mean loss of the epoch's training batches is recorded beside it.
    """
    if len(split) <= n:
        return split
    idx = np.sort(np.random.default_rng(seed).choice(len(split), n, replace=False))
    return split.subset(idx)


def fit(
    backend: Backend,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    data: Dataset,
    out_dir: str | Path | None = None,
    *,
    progress: bool = True,
    multiple: int = 8,
    bucket_chunk: int = 0,
    probe_size: int = 2000,
    log: Any = print,
    run_info: dict[str, Any] | None = None,
    keep_best: bool = False,
    folder: RunFolder | None = None,
    mode: str = "new",
    checkpoint_every: int | None = None,
    split: dict[str, Any] | None = None,
    initial: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None = None,
    select: str = "top1",
    world: World | None = None,
    resume_from: RunFolder | None = None,
) -> RunResult:
    """Train from a fresh seeded model (or resume a run folder); validate every `eval_every` steps
    and, with `epochs`, at each epoch's end; test once at the end.

    With `epochs`, each epoch adds a record `{"split": "epoch", "epoch", "train_loss",
    "train_accuracy", "train_batch_loss", "val_loss", "val_accuracy", "epoch_seconds"}`; the
    train figures come from `train_probe` (a fixed subset of up to `probe_size` training examples).
    With a run folder (`folder`, or `out_dir` opened with `mode` new/overwrite/resume; see
    shared/runs.py): config.json, metrics.jsonl streamed as training goes (loss per step, val
    metrics, epoch records, the final test metrics with `test_accuracy` as the last record), the
    run state in state/ (every `checkpoint_every` steps, else at each validation and every 10
    minutes), model.safetensors (with the TextConfig for text tasks and the `split` parameters),
    then loss.png and curves.png (epochs only). `run_info` adds keys to config.json. With
    `keep_best`, the weights of the validation with the best `select` metric (top1 or
    balanced_accuracy; the earliest among equals) are the ones tested and saved: model selection on
    validation, never on test. `initial` maps the
    seeded init's named parameters to the ones a fresh run starts from (e.g. pre-trained embedding
    rows, shared/init_embeddings.py); a resumed run restores its own and never calls it. With a
    `world` (data parallel over processes, shared/distributed.py), this process trains on its rank's
    shard of each global batch, evaluates its shard of each split (gathered), and only rank 0 is
    given a run folder; the other ranks of a resumed run read its state from `resume_from` (a
    folder opened with mode "read").
    """
    with opened(folder, out_dir, mode, log) as run:
        return _fit(backend, model_cfg, train_cfg, data, run, progress=progress, multiple=multiple,
                    bucket_chunk=bucket_chunk, probe_size=probe_size, log=log, run_info=run_info, keep_best=keep_best,
                    checkpoint_every=checkpoint_every, split=split, initial=initial, select=select, world=world,
                    resume_from=resume_from)


def _fit(
    backend: Backend, model_cfg: ModelConfig, train_cfg: TrainConfig, data: Dataset, folder: RunFolder | None, *,
    progress: bool, multiple: int, bucket_chunk: int, probe_size: int, log: Any, run_info: dict[str, Any] | None,
    keep_best: bool, checkpoint_every: int | None, split: dict[str, Any] | None,
    initial: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None, select: str, world: World | None,
    resume_from: RunFolder | None = None,
) -> RunResult:
    if select not in SELECT:
        raise SeqbatchError(f"select must be one of {', '.join(SELECT)}, got {select!r}")
    padding = padding_waste(data, train_cfg, bucket_chunk=bucket_chunk, multiple=multiple)
    log(f"padding waste per epoch (multiple {multiple}): unbucketed {padding['unbucketed']:.1%}"
        + (f", bucketed (chunk {bucket_chunk}) {padding['bucketed']:.1%}" if bucket_chunk else ""))
    config = {"backend": backend.name, "model": json.loads(model_cfg.to_json()),
              "train": json.loads(train_cfg.to_json()), "data": data.source, "labels": data.label_names,
              "text": None if data.text is None else json.loads(data.text.to_json()), "padding": padding,
              "sizes": {"train": len(data.train), "val": len(data.val), "test": len(data.test),
                        "vocab": len(data.vocab)}, "split": split, **(run_info or {})}

    def make_checkpoint(params: dict[str, np.ndarray]) -> checkpoint.Checkpoint:
        return checkpoint.Checkpoint(model_cfg, params, data.vocab, list(data.label_names), data.text, split=split)

    loop = RunLoop(backend, model_cfg, train_cfg, folder, make_checkpoint, checkpoint_every, log, initial=initial,
                   source=resume_from)
    state, done = loop.start(config)
    sampler = make_sampler(data, train_cfg, bucket_chunk)
    n_steps = total_steps(train_cfg, len(data.train))
    per_epoch = math.ceil(len(data.train) / train_cfg.batch_size) if train_cfg.epochs is not None else 0
    probe = train_probe(data.train, probe_size, train_cfg.seed) if per_epoch else None
    batches = _stream(sampler, world)
    for _ in range(done):  # the stream is a function of the seed: replay it to where the run stopped
        next(batches)
    pending: list[tuple[int, dict[str, Any]]] = []
    val_report: dict[str, float | int] = loop.counters.get("val", {})
    epoch_start = start = time.perf_counter()
    eval_seconds = 0.0
    bar = tqdm(range(done + 1, n_steps + 1), desc=f"train [{backend.name}]", disable=not progress, unit="step",
               initial=done, total=n_steps)
    ctx = folder.catch_signals() if folder is not None else contextlib.nullcontext()
    with ctx:
        for step in bar:
            index, global_size = next(batches)
            batch = data.train.batch(index, multiple=multiple)
            if global_size is not None:
                batch = dataclasses.replace(batch, global_size=global_size)
            state, metrics = backend.train_step(state, batch)
            pending.append((step, metrics))
            epoch_end = per_epoch > 0 and step % per_epoch == 0
            evaluating = step % train_cfg.eval_every == 0 or epoch_end or step == n_steps
            if not (evaluating or loop.flush_due(step)):
                continue
            # Read device scalars only here, so that JAX's dispatch runs ahead between evaluations.
            loop.flush(pending, state)
            if evaluating:
                train_seconds = time.perf_counter() - epoch_start
                eval_start = time.perf_counter()
                val_report, _ = evaluate(backend, backend.model_of(state), data.val, multiple=multiple, world=world)
                loop.counters["val"] = val_report
                if keep_best:
                    loop.consider_best(step, val_report, lambda new, old: new[select] > old[select], state)
                record: dict[str, Any] = {"step": step, "split": "val", **val_report}
                if epoch_end:
                    record["epoch"] = step // per_epoch
                loop.record(record)
                if epoch_end and probe is not None:
                    loop.record(_epoch_record(backend, state, probe, loop.history, step, per_epoch, val_report,
                                              train_seconds, multiple, world))
                    last = loop.history[-1]
                    log(f"epoch {last['epoch']}: train acc {last['train_accuracy']:.4f} loss "
                        f"{last['train_loss']:.4f} | val acc {last['val_accuracy']:.4f} loss {last['val_loss']:.4f} | "
                        f"{train_seconds:.1f} s")
                loss_now = next(r["loss"] for r in reversed(loop.history) if "loss" in r and "split" not in r)
                bar.set_postfix(loss=f"{loss_now:.3f}", val_top1=f"{val_report['top1']:.3f}")
                eval_seconds += time.perf_counter() - eval_start
                if epoch_end:
                    epoch_start = time.perf_counter()
            loop.checkpoint(state, step, evaluating=evaluating, final=step == n_steps)
    seconds = time.perf_counter() - start
    model = backend.model_of(state)
    chosen: dict[str, Any] = {}
    if loop.best is not None:
        model = backend.from_params(backend.config_of(model), loop.best.params)
        val_report = loop.best.val
        chosen = {"best_step": loop.best.step, "best_val_top1": loop.best.val["top1"], "selected_on": select,
                  "best_val_balanced_accuracy": loop.best.val["balanced_accuracy"]}
        log(f"keeping the weights of step {loop.best.step} (val top-1 {loop.best.val['top1']:.4f}, balanced "
            f"{loop.best.val['balanced_accuracy']:.4f}; selected on {select})")
    test_report, _ = evaluate(backend, model, data.test, multiple=multiple, world=world)
    skipped = {"skipped_steps": loop.counters["skipped"]} if loop.counters.get("skipped") else {}
    loop.record({"step": n_steps, "split": "test", "train_seconds": round(seconds, 2),
                 "eval_seconds": round(eval_seconds, 2), **test_report, **chosen, **skipped,
                 "test_accuracy": test_report["top1"], "padding_waste": padding})
    if folder is not None:
        _write_outputs(folder.path, backend, model, model_cfg, data, loop.history, make_checkpoint, log)
    return RunResult(model, val_report, test_report, seconds, n_steps, loop.history, padding)


def _epoch_record(
    backend: Backend, state: Any, probe: EncodedSplit, history: list[dict[str, Any]], step: int, per_epoch: int,
    val_report: dict[str, float | int], train_seconds: float, multiple: int, world: World | None,
) -> dict[str, Any]:
    train_report, _ = evaluate(backend, backend.model_of(state), probe, multiple=multiple, world=world)
    batch_losses = [r["loss"] for r in history if "split" not in r and step - per_epoch < r["step"] <= step]
    return {
        "step": step, "split": "epoch", "epoch": step // per_epoch,
        "train_loss": train_report["loss"], "train_accuracy": train_report["top1"],
        "train_batch_loss": float(np.mean(batch_losses)), "train_probe_n": len(probe),
        "val_loss": val_report["loss"], "val_accuracy": val_report["top1"],
        "epoch_seconds": round(train_seconds, 2),
    }


def _stream(sampler: Sampler, world: World | None) -> Iterator[tuple[np.ndarray, int | None]]:
    """(indices, global batch size or None) per step: the sampler's batches, or this rank's shards
    (a backend that shards the global batch itself, JAX over processes, takes the whole batch)."""
    if world is None or world.size == 1 or not world.shards_batches:
        return ((index, None) for index in sampler)
    return iter(ShardedSampler(sampler, world.rank, world.size))


def _write_outputs(
    out: Path, backend: Backend, model: Any, model_cfg: ModelConfig, data: Dataset, history: list[dict[str, Any]],
    make_checkpoint: Any, log: Any,
) -> None:
    """The model first (atomically), then the plots: a plot that fails costs a warning, not the weights."""
    checkpoint.save(out / "model.safetensors", make_checkpoint(backend.to_params(model)))
    train = [r for r in history if "split" not in r]
    vals = [r for r in history if r.get("split") == "val"]
    bi = "bi" if model_cfg.bidirectional else ""
    title = f"{backend.name} {bi}{model_cfg.cell} x{model_cfg.num_layers} h{model_cfg.hidden_size} on {data.source}"
    try:
        loss_curve(
            [r["step"] for r in train], [r["loss"] for r in train], out / "loss.png",
            val={"val top-1": [(r["step"], r["top1"]) for r in vals],
                 "val balanced acc.": [(r["step"], r["balanced_accuracy"]) for r in vals]},
            title=title,
        )
        epochs = [r for r in history if r.get("split") == "epoch"]
        if epochs:
            epoch_curves(epochs, out / "curves.png", title=title)
    except Exception as e:
        log(f"warning: the plots were not written ({type(e).__name__}: {e}); the model and metrics were")
