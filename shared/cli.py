"""`seqbatch`: the command line. Thin by design: it builds configs and calls library functions."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shared import checkpoint
from shared.backend import BACKENDS, get_backend
from shared.config import CELLS, ModelConfig, TrainConfig
from shared.dataset import encode_splits, name_chars, names_dataset
from shared.errors import SeqbatchError
from shared.metrics import confusion, softmax
from shared.names import load_names_or_default
from shared.splits import stratified_split


def _backend_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=sorted(BACKENDS), default="torch",
                   help="which implementation runs the model: torch (reference) or jax (port); default torch")


def _data_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, default=None,
                   help="folder of <Label>.txt files, one name per line (e.g. ../shared/data/names); "
                        "default: the embedded surname set from the faker package")


def add_train(sub: Any) -> None:
    p = sub.add_parser("train", help="train a classifier and write a run folder",
                       description="Train a sequence classifier on either backend; writes config.json, "
                                   "metrics.jsonl, loss.png and model.safetensors to --out.")
    _backend_arg(p)
    _data_arg(p)
    p.add_argument("--cell", choices=CELLS, default="lstm", help="recurrent cell (default lstm)")
    p.add_argument("--layers", type=int, default=1, help="stacked recurrent layers (default 1)")
    p.add_argument("--hidden", type=int, default=128, help="hidden size per direction (default 128)")
    p.add_argument("--bidirectional", action="store_true", help="run a reverse direction too")
    p.add_argument("--embed-dim", type=int, default=None,
                   help="embedding size; omit for one-hot character input (the seed tutorial's)")
    p.add_argument("--dropout", type=float, default=0.0, help="dropout between stacked layers (default 0)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="parameter dtype")
    p.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd", help="optimizer (default sgd)")
    p.add_argument("--lr", type=float, default=0.15, help="learning rate (default 0.15)")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default 0.9)")
    p.add_argument("--batch-size", type=int, default=512, help="examples per step (default 512)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, default=None, help="optimizer steps (default 2000)")
    g.add_argument("--epochs", type=int, default=None, help="passes over the training split instead of --steps")
    p.add_argument("--clip-norm", type=float, default=None, help="global gradient-norm clipping (torch's formula)")
    p.add_argument("--sampler", choices=("random", "epoch", "balanced"), default="random",
                   help="random: with replacement (seed tutorial); epoch: shuffled passes; "
                        "balanced: classes in proportion in every batch")
    p.add_argument("--eval-every", type=int, default=200, help="validate every N steps (default 200)")
    p.add_argument("--bucket", type=int, default=8, help="pad lengths up to a multiple of this (default 8)")
    p.add_argument("--seed", type=int, default=0, help="seed for init, split and sampling (default 0)")
    p.add_argument("--out", type=Path, required=True, help="run folder to write")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=cmd_train)


def cmd_train(a: argparse.Namespace) -> int:
    from shared.training import fit

    backend = get_backend(a.backend)
    data = names_dataset(a.data, seed=a.seed)
    model_cfg = ModelConfig(
        vocab_size=len(data.vocab), num_classes=data.num_classes, cell=a.cell, num_layers=a.layers,
        bidirectional=a.bidirectional, hidden_size=a.hidden, embed_dim=a.embed_dim, dropout=a.dropout, dtype=a.dtype,
    )
    steps = a.steps if a.steps is not None or a.epochs is not None else 2000
    train_cfg = TrainConfig(
        optimizer=a.optimizer, lr=a.lr, momentum=a.momentum, batch_size=a.batch_size, steps=steps,
        epochs=a.epochs, clip_norm=a.clip_norm, seed=a.seed, sampler=a.sampler, eval_every=a.eval_every,
    )
    print(f"data: {data.source}: {len(data.train)} train / {len(data.val)} val / {len(data.test)} test, "
          f"{data.num_classes} labels, {len(data.vocab)} tokens", file=sys.stderr)
    result = fit(backend, model_cfg, train_cfg, data, a.out, progress=not a.no_progress, multiple=a.bucket)
    print(json.dumps({"backend": backend.name, "train_seconds": round(result.seconds, 1), "steps": result.steps,
                      "val": result.val, "test": result.test}))
    print(f"wrote {a.out}/model.safetensors, metrics.jsonl, loss.png", file=sys.stderr)
    return 0


def _run_config(ckpt_path: Path) -> dict[str, Any]:
    cfg = ckpt_path.parent / "config.json"
    return json.loads(cfg.read_text()) if cfg.is_file() else {}


def add_eval(sub: Any) -> None:
    p = sub.add_parser("eval", help="evaluate a checkpoint on a split; prints one JSON object",
                       description="Evaluate a checkpoint (from either backend) on the val or test split of "
                                   "the data it was trained on. Prints top1, top2, balanced_accuracy, n.")
    p.add_argument("--checkpoint", type=Path, required=True, help="model.safetensors written by `seqbatch train`")
    _backend_arg(p)
    _data_arg(p)
    p.add_argument("--split", choices=("val", "test"), default="test", help="which split (default test)")
    p.add_argument("--seed", type=int, default=None,
                   help="split seed; default: the one in config.json beside the checkpoint, else 0")
    p.add_argument("--confusion", type=Path, default=None, help="also write a confusion-matrix PNG here")
    p.add_argument("--logits-out", type=Path, default=None, help="also save the logits as .npy")
    p.set_defaults(func=cmd_eval)


def cmd_eval(a: argparse.Namespace) -> int:
    from shared.plots import confusion_plot
    from shared.training import evaluate

    ckpt = checkpoint.load(a.checkpoint)
    if ckpt.vocab is None or ckpt.labels is None:
        raise SeqbatchError(f"{a.checkpoint}: no vocabulary/labels in the metadata; it gives logits but cannot "
                            "be evaluated on text")
    run = _run_config(a.checkpoint)
    seed = a.seed if a.seed is not None else run.get("train", {}).get("seed", 0)
    examples = load_names_or_default(a.data)
    if examples.label_names != ckpt.labels:
        raise SeqbatchError(f"{a.checkpoint} was trained on labels {ckpt.labels}, but the data "
                            f"({a.data or 'default'}) has {examples.label_names}")
    data = encode_splits(stratified_split(examples, seed=seed), name_chars, ckpt.vocab, str(a.data or "default"))
    backend = get_backend(a.backend)
    model = backend.from_params(ckpt.config, ckpt.params)
    split = data.val if a.split == "val" else data.test
    report, logits = evaluate(backend, model, split)
    print(json.dumps({"backend": backend.name, "split": a.split, **report}))
    if a.confusion is not None:
        confusion_plot(confusion(logits, split.labels, len(ckpt.labels)), ckpt.labels, a.confusion,
                       title=f"{a.checkpoint} on {a.split} ({backend.name})")
        print(f"wrote {a.confusion}", file=sys.stderr)
    if a.logits_out is not None:
        np.save(a.logits_out, logits)
    return 0


def add_predict(sub: Any) -> None:
    p = sub.add_parser("predict", help="top labels with probabilities for names",
                       description="Print the most likely labels for each name given.")
    p.add_argument("--checkpoint", type=Path, required=True, help="model.safetensors written by `seqbatch train`")
    _backend_arg(p)
    p.add_argument("--top", type=int, default=3, help="labels to show per name (default 3)")
    p.add_argument("--json", action="store_true", help="print JSON lines instead of text")
    p.add_argument("names", nargs="+", metavar="NAME", help="names to classify")
    p.set_defaults(func=cmd_predict)


def cmd_predict(a: argparse.Namespace) -> int:
    from shared.batching import pad

    ckpt = checkpoint.load(a.checkpoint)
    missing = [k for k, v in (("vocabulary", ckpt.vocab), ("labels", ckpt.labels)) if v is None]
    if missing:
        raise SeqbatchError(f"{a.checkpoint} has no {' or '.join(missing)} in its metadata: it gives logits for "
                            "token ids, but cannot turn names into predictions")
    assert ckpt.vocab is not None and ckpt.labels is not None
    seqs = [ckpt.vocab.encode(name_chars(n)) for n in a.names]
    for n in a.names:
        unknown = ckpt.vocab.unknown_count(name_chars(n))
        if unknown:
            warnings.warn(f"{n!r}: {unknown} character(s) not in the vocabulary, read as <unk>", stacklevel=1)
    backend = get_backend(a.backend)
    model = backend.from_params(ckpt.config, ckpt.params)
    probs = softmax(backend.logits(model, pad(seqs, np.zeros(len(seqs), np.int32))))
    for name, p in zip(a.names, probs, strict=True):
        top = np.argsort(-p, kind="stable")[: a.top]
        if a.json:
            print(json.dumps({"name": name, "top": [[ckpt.labels[i], round(float(p[i]), 4)] for i in top]},
                             ensure_ascii=False))
        else:
            print(f"{name}: " + ", ".join(f"{ckpt.labels[i]} {p[i]:.1%}" for i in top))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seqbatch",
        description="Batched training of variable-length sequence models on two backends (PyTorch, JAX).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_train(sub)
    add_eval(sub)
    add_predict(sub)
    try:
        from parity.cli import register
    except ImportError:
        pass
    else:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except SeqbatchError as e:
        print(f"seqbatch: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
