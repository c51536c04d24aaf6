"""Training skip-gram word vectors over the backend contract, written once for both backends.

- **Updates**: SGD (the default) is word2vec's: each pair's gradient applied at rate `lr` to the
  rows the batch touches (`sparse_step` in each backend's models/skipgram.py), the rate decaying
  linearly from `lr` to `min_lr` by corpus words read (`epoch + batch.progress` over the epochs;
  with `steps`, by steps). Adam (`optimizer="adam"`) is the dense `train_step` on the mean loss at
  a constant rate: exact, but it updates all V x D moments every step, so it is slow.
- **Batches** are generated on a second thread (NumPy releases the GIL), a function of the seed
  and the epoch only: a resumed run regenerates its epoch and skips what it had done.
- **Metrics** (metrics.jsonl): the mean loss over every `LOG_EVERY` steps; after each epoch
  `split: "epoch"` with the words read, the training seconds, words per second and, when the
  evaluation sets are found, `wordsim353`, `simlex999`, `analogy` (with `_used`/`_oov` counts);
  a final record `split: "final"` with the same.
- **Words per second** counts raw corpus words (before `min_count`) per second of training (batch
  generation included, evaluation not), as gensim reports them.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from shared import checkpoint
from shared.backend import Backend, kind_module
from shared.config import TrainConfig
from shared.kinds.skipgram import SkipgramConfig
from shared.loop import RunLoop
from shared.runs import RunFolder, opened
from shared.skipgram_data import SkipgramBatch, SkipgramDataConfig, WordCorpus, epoch_batches

LOG_EVERY = 500  # steps per loss record
GROUP_STEPS = 8  # steps per backend call (`sparse_steps`; JAX scans them in one jitted call)
PREFETCH = 16  # groups of batches generated ahead
GROUP = 128  # batches per group


@dataclass
class SkipgramResult:
    model: Any
    scores: dict[str, float | int]
    seconds: float
    steps: int
    words_per_second: float
    history: list[dict[str, Any]] = field(default_factory=list)


class Prefetched:
    """`items`, produced on a daemon thread up to `depth` groups of `group` items ahead; an
    exception there is raised here. Items travel in groups: one queue hand-over per item costs
    more than a small training step, and the producer works in bursts (a chunk of the corpus at a
    time) that a short queue cannot hide. `producing` says whether the producer is at work now (not
    waiting for room in the queue): the trainer lends the producer's core to its own step when it is
    not (`training_threads` in each backend's models/skipgram.py)."""

    def __init__(self, items: Iterator[Any], depth: int = PREFETCH, group: int = GROUP) -> None:
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._idle = threading.Event()  # set while the producer waits for room (or has finished)
        self._items, self._group, self._low = items, group, depth // 4
        self._current: Iterator[Any] = iter(())
        self._done = False
        self._thread = threading.Thread(target=self._produce, daemon=True, name="skipgram-batches")
        self._thread.start()

    @property
    def producing(self) -> bool:
        return not self._idle.is_set()

    def _put(self, kind: str, value: Any) -> bool:
        """Hand `value` over; when that fills the queue, wait until the consumer has taken three
        quarters of it, so that the producer works in a few long bursts rather than one short burst
        per group taken (each switch of the trainer's threads costs it a step's stall)."""
        self._idle.set()
        try:
            while not self._stop.is_set():
                try:
                    self._queue.put((kind, value), timeout=0.1)
                except queue.Full:
                    continue
                if self._queue.full():
                    while self._queue.qsize() > self._low and not self._stop.is_set():
                        time.sleep(0.002)
                return True
            return False
        finally:
            self._idle.clear()

    def _produce(self) -> None:
        batch: list[Any] = []
        try:
            for item in self._items:
                batch.append(item)
                if len(batch) == self._group:
                    if not self._put("items", batch):
                        return
                    batch = []
            self._put("items", batch)
            self._put("end", None)
        except BaseException as e:  # handed to the consumer, after the items made before it
            if self._put("items", batch):
                self._put("error", e)
        finally:
            self._idle.set()

    def __iter__(self) -> Prefetched:
        return self

    def __next__(self) -> Any:
        while True:
            for item in self._current:
                return item
            if self._done:
                raise StopIteration
            kind, value = self._queue.get()
            if kind == "end":
                self.close()
                raise StopIteration
            if kind == "error":
                self.close()
                raise value
            self._current = iter(value)

    def close(self) -> None:
        """Stop the producer (it may be blocked on a full queue) and end the iteration."""
        self._done = True
        self._current = iter(())
        self._stop.set()


def prefetched(items: Iterator[Any], depth: int = PREFETCH, group: int = GROUP) -> Prefetched:
    return Prefetched(items, depth, group)


def learning_rate(train_cfg: TrainConfig, min_lr: float, *, epoch: int, progress: float, step: int) -> float:
    """word2vec's linear decay from `lr` to `min_lr`: by corpus read over the epochs, or by step."""
    done = step / train_cfg.steps if train_cfg.steps is not None else (epoch + progress) / (train_cfg.epochs or 1)
    return max(min_lr, train_cfg.lr - (train_cfg.lr - min_lr) * min(done, 1.0))


def word_scores(backend: Backend, model: Any, words: tuple[str, ...], eval_dir: Path | None) -> dict[str, float | int]:
    """The three standard scores of the input vectors, or {} without evaluation sets."""
    if eval_dir is None:
        return {}
    from shared.word_eval import score_all

    return score_all(backend.to_params(model)["in_embed.weight"], words, eval_dir)


def fit_skipgram(
    backend: Backend,
    model_cfg: SkipgramConfig,
    train_cfg: TrainConfig,
    data_cfg: SkipgramDataConfig,
    corpus: WordCorpus,
    out_dir: str | Path | None = None,
    *,
    min_lr: float = 1e-4,
    eval_dir: Path | None = None,
    progress: bool = True,
    log: Callable[[str], Any] = print,
    run_info: dict[str, Any] | None = None,
    folder: RunFolder | None = None,
    mode: str = "new",
    checkpoint_every: int | None = None,
) -> SkipgramResult:
    """Train from a fresh seeded model (or resume a run folder). With a run folder: config.json,
    metrics.jsonl, state/, then model.safetensors (the words in its metadata) and loss.png."""
    with opened(folder, out_dir, mode, log) as run:
        return _fit(backend, model_cfg, train_cfg, data_cfg, corpus, run, min_lr=min_lr, eval_dir=eval_dir,
                    progress=progress, log=log, run_info=run_info, checkpoint_every=checkpoint_every)


def _batches(corpus: WordCorpus, data_cfg: SkipgramDataConfig, train_cfg: TrainConfig, start_epoch: int
             ) -> Iterator[tuple[int, SkipgramBatch]]:
    epoch = start_epoch
    while train_cfg.epochs is None or epoch < train_cfg.epochs:
        for batch in epoch_batches(corpus, data_cfg, train_cfg.batch_size, seed=train_cfg.seed, epoch=epoch):
            yield epoch, batch
        epoch += 1
        yield epoch, None  # the end of an epoch


def _fit(
    backend: Backend, model_cfg: SkipgramConfig, train_cfg: TrainConfig, data_cfg: SkipgramDataConfig,
    corpus: WordCorpus, folder: RunFolder | None, *, min_lr: float, eval_dir: Path | None, progress: bool,
    log: Callable[[str], Any], run_info: dict[str, Any] | None, checkpoint_every: int | None,
) -> SkipgramResult:
    km = kind_module(backend, "skipgram")
    sparse = train_cfg.optimizer == "sgd"
    config = {"backend": backend.name, "kind": "skipgram", "model": json.loads(model_cfg.to_json()),
              "train": json.loads(train_cfg.to_json()), "min_lr": min_lr, "raw_words": corpus.raw_words,
              "tokens": len(corpus), "vocab": len(corpus.words), **(run_info or {})}

    def make_checkpoint(params: dict[str, np.ndarray]) -> checkpoint.Checkpoint:
        return checkpoint.Checkpoint(model_cfg, params, words=corpus.words)

    loop = RunLoop(backend, model_cfg, train_cfg, folder, make_checkpoint, checkpoint_every, log)
    state, done = loop.start(config)
    counters = loop.counters
    epoch = int(counters.get("epoch", 0))  # epochs finished
    skip = done - int(counters.get("epoch_start_step", 0))  # steps of the current epoch already done
    train_seconds = float(counters.get("train_seconds", 0.0))
    words_done = float(counters.get("words", 0.0))
    epochs_total = train_cfg.epochs
    bar = tqdm(total=None if epochs_total is None else corpus.raw_words * epochs_total, initial=int(words_done),
               desc=f"train skipgram [{backend.name}]", unit="word", unit_scale=True, disable=not progress)
    pending: list[tuple[int, Any]] = []
    step = done
    scores: dict[str, float | int] = dict(counters.get("scores", {}))
    mark = time.perf_counter()
    stream = prefetched(_batches(corpus, data_cfg, train_cfg, epoch))
    ctx = folder.catch_signals() if folder is not None else contextlib.nullcontext()
    group: list[tuple[float, SkipgramBatch]] = []  # (rate, batch) waiting to run as one call
    at_end = False

    def boundary(s: int) -> bool:
        """Steps after which metrics are read and a save may come: groups end there, so that a
        resumed run groups its steps as the uninterrupted run did (bit-identical results)."""
        return (s % LOG_EVERY == 0 or (checkpoint_every is not None and s % checkpoint_every == 0)
                or (train_cfg.steps is not None and s >= train_cfg.steps))

    def run_group(state: Any) -> tuple[Any, bool]:
        nonlocal step, train_seconds, mark, words_done, scores
        lrs, batches = [lr for lr, _ in group], [b for _, b in group]
        group.clear()
        share_cores(stream.producing)
        if sparse:
            state, metrics = km.sparse_steps(state, batches, lrs)
        else:
            metrics = []
            for b in batches:
                state, m = km.train_step(state, b)
                metrics.append(m)
        pending.extend(zip(range(step + 1, step + len(batches) + 1), metrics, strict=True))
        step += len(batches)
        progress_now = batches[-1].progress
        ep_now = counters.get("epoch", 0)
        bar.update(int(corpus.raw_words * (ep_now + progress_now)) - bar.n)
        at_end = train_cfg.steps is not None and step >= train_cfg.steps
        if boundary(step) or loop.flush_due(step):
            _flush(loop, pending, state, km)
            now = time.perf_counter()
            train_seconds += now - mark
            counters.update(train_seconds=train_seconds, words=corpus.raw_words * (ep_now + progress_now))
            loop.checkpoint(state, step, evaluating=False, final=at_end)
            mark = time.perf_counter()
        if at_end:
            words_done = corpus.raw_words * (ep_now + progress_now)
            scores = word_scores(backend, backend.model_of(state), corpus.words, eval_dir)
        return state, at_end

    # `share_cores` (used by run_group) is bound here, before any group runs; closing the stream stops
    # its producer thread however the loop ends.
    with ctx, km.training_threads() as share_cores, contextlib.closing(stream):
        for ep, batch in stream:
            if batch is None:  # an epoch ended
                if group:
                    state, at_end = run_group(state)
                    if at_end:
                        break
                _flush(loop, pending, state, km)
                now = time.perf_counter()
                train_seconds += now - mark
                words_done = float(corpus.raw_words * ep)
                bar.update(int(words_done) - bar.n)
                scores = word_scores(backend, backend.model_of(state), corpus.words, eval_dir)
                counters.update(epoch=ep, epoch_start_step=step, train_seconds=train_seconds, words=words_done,
                                scores=scores)
                rate = words_done / max(train_seconds, 1e-9)
                loop.record({"step": step, "split": "epoch", "epoch": ep, "words": int(words_done),
                             "train_seconds": round(train_seconds, 2), "words_per_second": round(rate), **scores})
                if scores:
                    bar.set_postfix(ws353=f"{scores['wordsim353']:.3f}", analogy=f"{scores['analogy']:.3f}")
                loop.checkpoint(state, step, evaluating=True, final=ep == epochs_total)
                mark = time.perf_counter()
                continue
            if skip > 0:  # resuming: this epoch's batches up to the saved step are done
                skip -= 1
                continue
            if group and len(batch) != len(group[0][1]):  # an epoch's short last batch runs alone
                state, at_end = run_group(state)
            if not at_end:
                lr = learning_rate(train_cfg, min_lr, epoch=ep, progress=batch.progress, step=step + len(group))
                group.append((lr, batch))
                if len(group) == GROUP_STEPS or boundary(step + len(group)):
                    state, at_end = run_group(state)
            if at_end:
                break
    bar.close()
    _flush(loop, pending, state, km)
    rate = words_done / max(train_seconds, 1e-9)
    skipped = {"skipped_steps": counters["skipped"]} if counters.get("skipped") else {}
    loop.record({"step": step, "split": "final", "words": int(words_done), "train_seconds": round(train_seconds, 2),
                 "words_per_second": round(rate), **scores, **skipped})
    model = backend.model_of(state)
    if folder is not None:
        _write_outputs(folder.path, backend, model, loop.history, make_checkpoint, log)
    return SkipgramResult(model, scores, train_seconds, step, rate, loop.history)


def _flush(loop: RunLoop, pending: list[tuple[int, Any]], state: Any, km: Any) -> None:
    """One loss record per run of good steps (their mean loss, largest gradient norm), each bad step
    its own (so the guard in RunLoop.flush sees it)."""
    merged: list[tuple[int, dict[str, Any]]] = []
    run: list[tuple[int, float, float]] = []

    def close_run() -> None:
        if run:
            merged.append((run[-1][0], {"loss": float(np.mean([r[1] for r in run])),
                                        "grad_norm": float(max(r[2] for r in run)), "ok": True}))
            run.clear()

    host = km.host_metrics([m for _, m in pending])
    for (s, _), m in zip(pending, host, strict=True):
        loss, norm, ok = m["loss"], m["grad_norm"], bool(m.get("ok", True))
        if ok:
            run.append((s, loss, norm))
        else:
            close_run()
            merged.append((s, {"loss": loss, "grad_norm": norm, "ok": False}))
    close_run()
    pending.clear()
    loop.flush(merged, state)


def _write_outputs(out: Path, backend: Backend, model: Any, history: list[dict[str, Any]], make_checkpoint: Any,
                   log: Callable[[str], Any]) -> None:
    """The model first (atomically), then the plot: a plot that fails costs a warning, not the weights."""
    from shared.plots import loss_curve

    checkpoint.save(out / "model.safetensors", make_checkpoint(backend.to_params(model)))
    train = [r for r in history if "split" not in r]
    val = {key: [(r["step"], r[key]) for r in history if r.get("split") == "epoch" and key in r]
           for key in ("wordsim353", "simlex999", "analogy")}
    try:
        loss_curve([r["step"] for r in train], [r["loss"] for r in train], out / "loss.png",
                   val={k: v for k, v in val.items() if v}, title=f"{backend.name} skip-gram")
    except Exception as e:  # matplotlib and the file system raise many types
        log(f"warning: the plot was not written ({type(e).__name__}: {e}); the model and metrics were")
