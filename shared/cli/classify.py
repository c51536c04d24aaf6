"""`seqbatch train|eval|predict` for the classifier tasks (names, imdb); the train parser and the task
table serve every task, and hand another kind's task or checkpoint to its module (lm, skipgram, tabular)."""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from shared import checkpoint
from shared.backend import TORCH_KERNEL_ENV, get_backend
from shared.batching import SAMPLERS
from shared.cli import embeddings, lm, procs, skipgram, tabular
from shared.cli.common import (
    _backend_arg,
    _check_torch_kernel,
    _eval_dtype_arg,
    _load_model,
    _run_config,
    _stderr,
    _torch_kernel,
    _torch_kernel_arg,
    split_of,
)
from shared.cli.runflags import add_run_args, check_train_flags, open_run, recorded_flags, train_config
from shared.cli.textflags import add_text_args, reject_text_flags, text_config
from shared.config import CELLS, ModelConfig, check_seed
from shared.dataset import Dataset, encode_splits, imdb_dataset, name_chars, names_dataset
from shared.distributed import request_host_devices, world_size_from_env
from shared.errors import SeqbatchError
from shared.imbalance import CLASS_WEIGHTS, class_weights
from shared.metrics import SELECT, confusion, softmax
from shared.names import load_names_or_default
from shared.provenance import data_hash, environment
from shared.runs import dumps as strict_json
from shared.splits import stratified_split
from shared.text import TextConfig, text_tokens
from shared.vocab import Vocab

# Flags whose default depends on the task. IMDB follows the source's setup (embedding 96,
# hidden 64, batch 32, Adam, clipping at 3.0) and trains in epochs over length-bucketed batches.
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "names": {"hidden": 128, "embed_dim": None, "optimizer": "sgd", "lr": 0.15, "batch_size": 512,
              "steps": 2000, "sampler": "random", "eval_every": 200, "bucket": 8, "bucket_chunk": 0,
              "clip_norm": None, "keep_best": False, "select": "balanced_accuracy"},
    "imdb": {"hidden": 64, "embed_dim": 96, "optimizer": "adam", "lr": 1e-3, "batch_size": 32, "epochs": 5,
             "sampler": "epoch", "eval_every": None, "bucket": 32, "bucket_chunk": 50, "clip_norm": 3.0,
             "keep_best": True, "select": "top1"},
    **lm.TASK_DEFAULTS,
    **skipgram.TASK_DEFAULTS,
    **tabular.TASK_DEFAULTS,
}
for _d_ in TASK_DEFAULTS.values():
    _d_.setdefault("layers", 1)
    _d_.setdefault("dropout", 0.0)
# Which model kind (shared/kinds) each task trains.
TASK_KINDS: dict[str, str] = {"names": "classifier", "imdb": "classifier", **lm.TASK_KINDS, **skipgram.TASK_KINDS,
                              **tabular.TASK_KINDS}

def _d(key: str) -> str:
    """Help text naming each task's default."""
    return "default: " + ", ".join(f"{t} {v.get(key)}" for t, v in TASK_DEFAULTS.items())


def _task_arg(p: argparse.ArgumentParser, default: str | None = "names") -> None:
    p.add_argument("--task", choices=tuple(TASK_DEFAULTS), default=default,
                   help="names: surname -> language (characters); imdb: review -> sentiment (words or characters); "
                        "charlm: character language model (next character; a text file or folder of documents); "
                        "skipgram: word2vec word vectors (an IMDB folder, a text file or a folder of .txt); wine: "
                        "cultivar from 13 measurements (scikit-learn's set, an MLP); tabular: a CSV's --target "
                        "column from its other, numeric columns (an MLP)"
                        + (f"; default {default}" if default else "; default: the checkpoint's"))


def _data_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, default=None,
                   help="names: folder of <Label>.txt files, one name per line (e.g. ../shared/data/names); "
                        "imdb: folder with imdb_train.csv.xz and imdb_test.csv.xz, or an aclImdb folder; "
                        "charlm: a UTF-8 text file (e.g. ../shared/data/text/anna.txt) or, with --lm-batching "
                        "documents, a file or folder of .txt documents; tabular: a CSV file with a header line. "
                        "Default: an embedded set (faker surnames; synthetic reviews for imdb; Python's pydoc_data "
                        "topics for charlm)")


def add_train(sub: Any) -> None:
    p = sub.add_parser("train", help="train a model (classifier or language model) and write a run folder",
                       description="Train a sequence classifier (--task names|imdb) or a character language "
                                   "model (--task charlm) on either backend; writes config.json, metrics.jsonl, "
                                   "loss.png (curves.png with --epochs) and model.safetensors to --out.")
    _task_arg(p)
    _backend_arg(p)
    _data_arg(p)
    p.add_argument("--cell", choices=CELLS, default="lstm", help="recurrent cell (default lstm)")
    p.add_argument("--layers", type=int, default=None, help=f"stacked recurrent layers ({_d('layers')})")
    p.add_argument("--hidden", type=int, default=None, help=f"hidden size per direction ({_d('hidden')})")
    p.add_argument("--bidirectional", action="store_true", help="run a reverse direction too")
    p.add_argument("--embed-dim", type=int, default=None,
                   help="embedding size; names default: one-hot character input (the seed tutorial's); "
                        "imdb default 96, or the dimension of --init-embeddings")
    p.add_argument("--dropout", type=float, default=None,
                   help=f"dropout between stacked layers (and, charlm, before the head) ({_d('dropout')})")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="parameter dtype")
    p.add_argument("--optimizer", choices=("sgd", "adam"), default=None, help=f"optimizer ({_d('optimizer')})")
    p.add_argument("--lr", type=float, default=None, help=f"learning rate ({_d('lr')})")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default 0.9)")
    p.add_argument("--batch-size", type=int, default=None, help=f"examples per step ({_d('batch_size')})")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, default=None, help="optimizer steps (default: names 2000)")
    g.add_argument("--epochs", type=int, default=None,
                   help="passes over the training split instead of --steps; records per-epoch train and "
                        "validation accuracy and loss (default: imdb 5)")
    p.add_argument("--clip-norm", type=float, default=None,
                   help=f"global gradient-norm clipping, torch's formula ({_d('clip_norm')})")
    p.add_argument("--sampler", choices=SAMPLERS, default=None,
                   help="random: with replacement (seed tutorial); epoch: shuffled passes; "
                        "balanced: classes in proportion in every batch; uniform: every class equally often "
                        f"(drawn with replacement, rare classes repeat) ({_d('sampler')})")
    p.add_argument("--class-weights", choices=CLASS_WEIGHTS, default=None,
                   help="weight each example's loss by its class, from the training counts: inverse: n / (C * n_c) "
                        "(each class the same total weight, scikit-learn's 'balanced'); sqrt: its square root; "
                        "the batch loss is torch's weighted mean (names and imdb; default none)")
    p.add_argument("--eval-every", type=int, default=None,
                   help="validate every N steps, and with --epochs at each epoch's end too "
                        "(default: names 200, imdb once per epoch)")
    p.add_argument("--bucket", type=int, default=None,
                   help=f"pad lengths up to a multiple of this; larger means fewer JAX compilations ({_d('bucket')})")
    p.add_argument("--bucket-chunk", type=int, default=None,
                   help="length bucketing: sort each chunk of K batches by length before cutting batches "
                        f"(epoch or balanced sampler); 0: off ({_d('bucket_chunk')})")
    p.add_argument("--keep-best", action=argparse.BooleanOptionalAction, default=None,
                   help="test and save the weights of the best validation top-1 rather than the last "
                        f"({_d('keep_best')})")
    p.add_argument("--select", choices=SELECT, default=None,
                   help="what --keep-best maximises on validation: top1 or balanced_accuracy (names: "
                        "balanced_accuracy, which study 3 found raises it 2.3 points at no cost in top-1; imdb: top1)")
    p.add_argument("--devices", type=int, default=None,
                   help="jax, names, imdb and charlm: data parallel in one program, each batch sharded over N devices "
                        "(on a CPU, N host devices made before JAX starts); the same model as one device "
                        "(default 1)")
    procs.add_procs_arg(p)
    p.add_argument("--seed", type=int, default=0, help="seed for init, split and sampling, in [0, 2**32) (default 0)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_run_args(p)
    _torch_kernel_arg(p)
    add_text_args(p)
    embeddings.add_embedding_args(p)
    lm.add_lm_args(p)
    skipgram.add_skipgram_args(p)
    tabular.add_tabular_args(p)
    p.set_defaults(func=cmd_train)


def load_task_data(task: str, a: argparse.Namespace, seed: int, vocab: Vocab | None = None,
                   text: TextConfig | None = None) -> Dataset:
    if task == "names":
        reject_text_flags(a)
        if vocab is None:
            return names_dataset(a.data, seed=seed)
        examples = load_names_or_default(a.data)
        return encode_splits(stratified_split(examples, seed=seed), name_chars, vocab, str(a.data or "default"))
    return imdb_dataset(a.data, text or text_config(a), seed=seed, max_train=a.max_train, max_test=a.max_test,
                        vocab=vocab)


def task_flags(a: argparse.Namespace) -> dict[str, Any]:
    """The flags whose default depends on the task, with the task's defaults filled in."""
    d = TASK_DEFAULTS[a.task]
    return {k: d.get(k) if getattr(a, k) is None else getattr(a, k)
            for k in ("hidden", "embed_dim", "optimizer", "lr", "batch_size", "sampler", "eval_every", "bucket",
                      "bucket_chunk", "clip_norm", "keep_best", "layers", "dropout", "select")}


def _checked_flags(a: argparse.Namespace) -> dict[str, Any]:
    """The task-dependent flags resolved (`task_flags`), every flag checked."""
    pick = task_flags(a)
    embeddings.check_flags(a, pick)  # sets pick["embed_dim"] to the vectors file's
    if TASK_KINDS[a.task] == "mlp":
        return tabular.check_flags(a, pick, TASK_DEFAULTS[a.task])
    tabular.reject_tabular_flags(a)
    if TASK_KINDS[a.task] == "lm":
        skipgram.reject_skipgram_flags(a)
        lm.check_flags(a, pick, TASK_DEFAULTS[a.task])
        return pick
    lm.reject_lm_flags(a)
    if TASK_KINDS[a.task] == "skipgram":
        skipgram.check_flags(a, pick, TASK_DEFAULTS[a.task])
        return pick
    skipgram.reject_skipgram_flags(a)
    _check_torch_kernel(a)
    if a.devices is not None and (a.devices < 1 or (a.devices > 1 and a.backend != "jax")):
        raise SeqbatchError(f"--devices {a.devices}: give N >= 1; N > 1 is the jax backend's data parallel "
                            "(torch's, DistributedDataParallel over processes, is not built yet)")
    procs.check_procs(a, a.batch_size)
    if a.task == "imdb":
        text_config(a)  # TextConfig's own checks (--padding right|left need a --max-len, ...)
    if a.bucket_chunk is None and pick["sampler"] == "random":
        pick["bucket_chunk"] = 0  # the task's bucketing default needs shuffled passes, not random draws
    check_train_flags(a, pick, TASK_DEFAULTS[a.task])
    return pick


def cmd_train(a: argparse.Namespace) -> int:
    from shared.training import fit

    if a.resume is None or (a.procs or 1) > 1:
        _checked_flags(a)  # before the run folder is made
    if (a.procs or 1) > 1 and world_size_from_env() == 1:
        if a.resume is not None:  # the run's own flags: its backend chooses the launcher
            open_run(a, _stderr, read_only=True)
            _checked_flags(a)
        return procs.launch(a)  # this command again, as N workers (shared/cli/procs.py)
    # A worker of a resumed run reads the run's flags (its backend) before joining the world; the
    # ranks after the first restore the state rank 0 resumes from this read-only folder.
    resumed_worker = a.resume is not None and world_size_from_env() > 1
    source = open_run(a, procs.quiet, read_only=True) if resumed_worker else None
    world = procs.worker_world(a)
    main_rank = world is None or world.main
    say = _stderr if main_rank else procs.quiet
    folder = open_run(a, _stderr) if main_rank else None  # before any data is read: a bad --out fails fast
    try:
        pick = _checked_flags(a)  # again, for the flags --resume put back
        own = {"lm": lm, "skipgram": skipgram, "mlp": tabular}.get(TASK_KINDS[a.task])
        if own is lm:
            return lm.cmd_train(a, pick, TASK_DEFAULTS[a.task], folder, source)
        if own is not None:  # another kind's task: its module trains it
            return own.cmd_train(a, pick, TASK_DEFAULTS[a.task], folder)
        request_host_devices(a.devices or 1)  # before JAX starts
        backend = get_backend(a.backend)
        data = load_task_data(a.task, a, a.seed)
        embedded = embeddings.prepare(a, data.vocab, _stderr)  # vectors read before any log line
        model_cfg = ModelConfig(
            vocab_size=len(data.vocab), num_classes=data.num_classes, cell=a.cell, num_layers=pick["layers"],
            bidirectional=a.bidirectional, hidden_size=pick["hidden"], embed_dim=pick["embed_dim"],
            dropout=pick["dropout"], dtype=a.dtype,
        )
        if pick["eval_every"] is None:  # once per epoch: validation at epoch ends only
            pick["eval_every"] = math.ceil(len(data.train) / pick["batch_size"])
        train_cfg = embedded.train_config(train_config(a, pick, pick["eval_every"], TASK_DEFAULTS[a.task]))
        devices = world.devices if world is not None and not world.shards_batches else a.devices or 1
        train_cfg = dataclasses.replace(train_cfg, devices=devices, class_weights=class_weights(
            data.train.labels, a.class_weights or "none", data.num_classes))
        say(f"data: {data.source}: {len(data.train)} train / {len(data.val)} val / {len(data.test)} test, "
            f"{data.num_classes} labels, {len(data.vocab)} tokens")
        if data.text is not None:
            say(f"text: {data.text.to_json()}; train lengths mean {data.train.lengths.mean():.1f}, "
                    f"max {data.train.lengths.max()}")
        split = {"seed": a.seed, "max_train": a.max_train, "max_test": a.max_test, "data": str(a.data or "default"),
                 "data_sha256": data_hash(a.data)}
        info: dict[str, Any] = {"task": a.task, "subsample": {"max_train": a.max_train, "max_test": a.max_test},
                                "cli": recorded_flags(a), "environment": environment()}
        if a.backend == "torch":
            info["torch_kernel"] = a.torch_kernel or os.environ.get(TORCH_KERNEL_ENV) or "packed"
        with _torch_kernel(a):
            result = fit(backend, model_cfg, train_cfg, data, progress=not a.no_progress and main_rank,
                         multiple=pick["bucket"], bucket_chunk=pick["bucket_chunk"], log=say, run_info=info,
                         keep_best=pick["keep_best"], folder=folder, checkpoint_every=a.checkpoint_every,
                         split=split, initial=embedded.initial, select=pick["select"] or "top1", world=world,
                         resume_from=source)
    finally:
        if folder is not None:
            folder.close()
    if world is not None:
        world.close()
    if not main_rank:
        return 0
    print(strict_json({"backend": backend.name, "train_seconds": round(result.seconds, 1), "steps": result.steps,
                      "val": result.val, "test": result.test, "padding_waste": result.padding}))
    _stderr(f"wrote {a.out}/model.safetensors, metrics.jsonl, loss.png")
    return 0


def _checkpoint_task(ckpt: checkpoint.Checkpoint, task: str | None, path: Path) -> str:
    """A checkpoint with a TextConfig is a text (imdb) model; one without reads characters (names)."""
    found = "imdb" if ckpt.text is not None else "names"
    if task is not None and task != found:
        has = "has" if ckpt.text is not None else "no"
        raise SeqbatchError(f"{path} is a checkpoint for --task {found} ({has} seqbatch.text metadata), not {task}")
    return found


def add_eval(sub: Any) -> None:
    p = sub.add_parser("eval", help="evaluate a checkpoint on a split; prints one JSON object",
                       description="Evaluate a checkpoint (from either backend) on the val or test split of "
                                   "the data it was trained on. Prints top1, top2, balanced_accuracy, n.")
    p.add_argument("--checkpoint", type=Path, required=True, help="model.safetensors written by `seqbatch train`")
    _task_arg(p, default=None)
    _backend_arg(p)
    _data_arg(p)
    p.add_argument("--split", choices=("val", "test"), default="test", help="which split (default test)")
    p.add_argument("--seed", type=int, default=None,
                   help="split seed; default: the one in config.json beside the checkpoint, else 0")
    p.add_argument("--confusion", type=Path, default=None, help="also write a confusion-matrix PNG here")
    p.add_argument("--logits-out", type=Path, default=None, help="also save the logits as .npy")
    p.add_argument("--word-eval", type=Path, default=None, metavar="DIR",
                   help="skip-gram checkpoints: folder with wordsim353.tsv, simlex999.txt, questions-words.txt "
                        "(default $SEQBATCH_WORD_EVAL, else gensim's bundled copy)")
    _eval_dtype_arg(p)
    _torch_kernel_arg(p)
    g = p.add_argument_group("imdb only")
    g.add_argument("--max-train", type=int, default=None,
                   help="the train subsample size the run used (it fixes the validation split); "
                        "default: from config.json beside the checkpoint")
    g.add_argument("--max-test", type=int, default=None,
                   help="evaluate on a stratified sample of N test reviews; default: from config.json, else all")
    p.set_defaults(func=cmd_eval)


def cmd_eval(a: argparse.Namespace) -> int:
    from shared.paths import writable_file
    from shared.plots import confusion_plot
    from shared.training import evaluate

    for flag, path in (("--confusion", a.confusion), ("--logits-out", a.logits_out)):
        if path is not None:
            writable_file(path, flag)  # before minutes of evaluation, not after
    ckpt = checkpoint.load(a.checkpoint)
    if lm.is_lm(ckpt):
        return lm.cmd_eval(a, ckpt)
    if skipgram.is_skipgram(ckpt):
        return skipgram.cmd_eval(a, ckpt)
    if tabular.is_mlp(ckpt):
        return tabular.cmd_eval(a, ckpt)
    if ckpt.vocab is None or ckpt.labels is None:
        raise SeqbatchError(f"{a.checkpoint}: no vocabulary/labels in the metadata; it gives logits but cannot "
                            "be evaluated on text")
    task = _checkpoint_task(ckpt, a.task, a.checkpoint)
    if a.seed is not None:
        check_seed(a.seed, "--seed")
    split = split_of(ckpt, a.checkpoint, _run_config(a.checkpoint), a.seed)
    seed = int(split.get("seed", 0))
    if task == "imdb":
        a.max_train = a.max_train if a.max_train is not None else split.get("max_train")
        a.max_test = a.max_test if a.max_test is not None else split.get("max_test")
    if split.get("data_sha256") not in (None, data_hash(a.data)):
        warnings.warn(f"{a.checkpoint} was trained on other data than {a.data or 'the embedded default'} "
                      f"(sha256 {split['data_sha256'][:12]}...); its validation and test splits are not the ones "
                      "it was selected and tested on", stacklevel=1)
    data = load_task_data(task, a, seed, vocab=ckpt.vocab, text=ckpt.text)
    if data.label_names != ckpt.labels:
        raise SeqbatchError(f"{a.checkpoint} was trained on labels {ckpt.labels}, but the data "
                            f"({a.data or 'default'}) has {data.label_names}")
    backend = get_backend(a.backend)
    with _torch_kernel(a):
        model = _load_model(backend, ckpt, a.dtype)
    split = data.val if a.split == "val" else data.test
    report, logits = evaluate(backend, model, split)
    print(strict_json({"backend": backend.name, "split": a.split, **report}))
    if a.confusion is not None:
        confusion_plot(confusion(logits, split.labels, len(ckpt.labels)), ckpt.labels, a.confusion,
                       title=f"{a.checkpoint} on {a.split} ({backend.name})")
        _stderr(f"wrote {a.confusion}")
    if a.logits_out is not None:
        np.save(a.logits_out, logits)
    return 0


def add_predict(sub: Any) -> None:
    p = sub.add_parser("predict", help="top labels with probabilities for names or reviews",
                       description="Print the most likely labels for each name (or review) given; a checkpoint "
                                   "with text metadata (imdb) tokenizes reviews as it was trained to.")
    p.add_argument("--checkpoint", type=Path, required=True, help="model.safetensors written by `seqbatch train`")
    _task_arg(p, default=None)
    _backend_arg(p)
    p.add_argument("--top", type=int, default=None, help="labels to show per input (default: names 3, imdb 1, MLP 3)")
    p.add_argument("--json", action="store_true", help="print JSON lines instead of text")
    _eval_dtype_arg(p)
    p.add_argument("names", nargs="+", metavar="TEXT", help="names (or reviews, for imdb) to classify; for an MLP "
                   "(wine, tabular), rows of raw feature values separated by commas (after --: -1.5,2 is no flag)")
    p.set_defaults(func=cmd_predict)


def cmd_predict(a: argparse.Namespace) -> int:
    from shared.batching import pad

    ckpt = checkpoint.load(a.checkpoint)
    if lm.is_lm(ckpt):
        raise SeqbatchError(f"{a.checkpoint} is a language model; `seqbatch generate` samples text from it")
    if skipgram.is_skipgram(ckpt):
        raise SeqbatchError(f"{a.checkpoint} is a skip-gram model; `seqbatch neighbors` and `seqbatch eval` use it")
    if tabular.is_mlp(ckpt):
        return tabular.cmd_predict(a, ckpt)
    missing = [k for k, v in (("vocabulary", ckpt.vocab), ("labels", ckpt.labels)) if v is None]
    if missing:
        raise SeqbatchError(f"{a.checkpoint} has no {' or '.join(missing)} in its metadata: it gives logits for "
                            "token ids, but cannot turn names into predictions")
    assert ckpt.vocab is not None and ckpt.labels is not None
    task = _checkpoint_task(ckpt, a.task, a.checkpoint)
    text_cfg = ckpt.text

    def tokens(t: str) -> list[str]:
        if text_cfg is None:
            return name_chars(t)
        toks = text_tokens(t, text_cfg)
        if not toks:
            raise SeqbatchError(f"review {t!r} has no tokens left after cleaning ({text_cfg.to_json()})")
        return toks

    seqs = [ckpt.vocab.encode(tokens(n)) for n in a.names]
    for n in a.names:
        toks = tokens(n)
        unknown = ckpt.vocab.unknown_count(toks)
        # Every review has rare words; warn there only when most of it is unknown (another language?).
        if unknown if task == "names" else unknown > len(toks) / 2:
            what = "character(s)" if task == "names" else f"of {len(toks)} tokens"
            warnings.warn(f"{n!r}: {unknown} {what} not in the vocabulary, read as <unk>", stacklevel=1)
    backend = get_backend(a.backend)
    model = _load_model(backend, ckpt, a.dtype)
    text = ckpt.text
    unmasked = {} if text is None or text.mask else {"time": text.max_len, "mask": False, "side": text.pad_side}
    probs = softmax(backend.logits(model, pad(seqs, np.zeros(len(seqs), np.int32), **unmasked)))
    top_n = a.top if a.top is not None else (3 if task == "names" else 1)
    if not 1 <= top_n <= len(ckpt.labels):
        raise SeqbatchError(f"--top {top_n}: give 1 to {len(ckpt.labels)} (the checkpoint's number of labels)")
    for name, p in zip(a.names, probs, strict=True):
        top = np.argsort(-p, kind="stable")[:top_n]
        if a.json:
            key = "name" if task == "names" else "text"
            print(strict_json({key: name, "top": [[ckpt.labels[i], round(float(p[i]), 4)] for i in top]}))
        else:
            print(f"{name}: " + ", ".join(f"{ckpt.labels[i]} {p[i]:.1%}" for i in top))
    return 0


