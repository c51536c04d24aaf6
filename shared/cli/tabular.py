"""`seqbatch train --task wine|tabular` (an MLP on numeric features), and `seqbatch eval` / `predict` of
its checkpoints. The data: shared/tabular.py; the training loop: shared/tabular_training.py.

    seqbatch train --task wine --out runs/wine                       # 13 -> 10 -> 10 -> 3, Adam 1e-3, batch 32
    seqbatch train --task tabular --data table.csv --target label --hidden-sizes 32,16 --out runs/t
    seqbatch eval --checkpoint runs/wine/model.safetensors --backend jax
    seqbatch predict --checkpoint M 13.2,1.78,2.14,11.2,100,2.65,2.76,0.26,1.28,4.38,1.05,3.4,1050  # raw values
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from shared import checkpoint
from shared.backend import get_backend, kind_module
from shared.cli import lm, skipgram
from shared.cli.common import _load_model, _stderr
from shared.cli.runflags import check_train_flags, recorded_flags
from shared.config import TrainConfig, check_seed
from shared.errors import SeqbatchError
from shared.kinds.mlp import MLPConfig, TabularBatch
from shared.metrics import confusion, softmax
from shared.provenance import data_hash, environment
from shared.runs import RunFolder
from shared.runs import dumps as strict_json
from shared.tabular import TEST_FRACTION, VAL_FRACTION, Standardization, Table, read_csv, split_table, wine_table

# The mini-batch lesson's setup: two hidden layers of 10, Adam at 1e-3, batches of 32, 100 epochs.
_DEFAULTS: dict[str, Any] = {"hidden": None, "embed_dim": None, "optimizer": "adam", "lr": 1e-3, "batch_size": 32,
                             "epochs": 100, "sampler": None, "eval_every": None, "bucket": None, "bucket_chunk": None,
                             "clip_norm": None, "keep_best": False}
TASK_DEFAULTS: dict[str, dict[str, Any]] = {"wine": dict(_DEFAULTS), "tabular": dict(_DEFAULTS)}
TASK_KINDS: dict[str, str] = {"wine": "mlp", "tabular": "mlp"}
DEFAULT_HIDDEN = "10,10"
WINE_SOURCE = "sklearn.datasets.load_wine"
TABULAR_FLAGS: dict[str, str] = {"hidden_sizes": "--hidden-sizes", "target": "--target"}
# Flags of the sequence tasks an MLP has no use for (value given -> refused).
NOT_TABULAR: dict[str, str] = {
    "class_weights": "--class-weights", "select": "--select",
    "padding": "--padding", "devices": "--devices", "procs": "--procs",
    "bidirectional": "--bidirectional", "sampler": "--sampler", "torch_kernel": "--torch-kernel", "level": "--level",
    "max_len": "--max-len", "truncate": "--truncate", "min_freq": "--min-freq", "max_vocab": "--max-vocab",
    "stop_words": "--stop-words", "keep_case": "--keep-case", "max_train": "--max-train", "max_test": "--max-test",
    "layers": "--layers (use --hidden-sizes)", "hidden": "--hidden (use --hidden-sizes)", "embed_dim": "--embed-dim",
    "dropout": "--dropout", "bucket": "--bucket", "bucket_chunk": "--bucket-chunk", "eval_every": "--eval-every",
    "steps": "--steps (the MLP trains in --epochs)",
}


def add_tabular_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("tabular data and the MLP (wine, tabular only)")
    g.add_argument("--hidden-sizes", default=None, metavar="H1,H2,...",
                   help="widths of the hidden layers, comma-separated: Linear -> ReLU per width, then a linear head "
                        f"over the classes (default {DEFAULT_HIDDEN})")
    g.add_argument("--target", default=None, metavar="COLUMN",
                   help="--task tabular: the CSV column holding the class; every other column is a numeric feature")


def reject_tabular_flags(a: argparse.Namespace) -> None:
    given = [flag for key, flag in TABULAR_FLAGS.items() if getattr(a, key, None) is not None]
    if given:
        raise SeqbatchError(f"{', '.join(given)} apply to --task wine and tabular only, not {a.task}")


def hidden_sizes(text: str | None) -> tuple[int, ...]:
    """`--hidden-sizes 10,10` as (10, 10); SeqbatchError for anything else."""
    text = DEFAULT_HIDDEN if text is None else text
    parts = [t.strip() for t in text.split(",")]
    if not all(t.isdigit() for t in parts):
        raise SeqbatchError(f"--hidden-sizes must be layer widths separated by commas, e.g. {DEFAULT_HIDDEN}; got "
                            f"{text!r:.60}")
    sizes = tuple(int(t) for t in parts)
    if min(sizes) < 1:
        raise SeqbatchError(f"--hidden-sizes {text}: every hidden layer needs a width >= 1")
    return sizes


def check_flags(a: argparse.Namespace, pick: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """Every flag of `train --task wine|tabular`, before the run folder is made or data read; `pick` back."""
    lm.reject_lm_flags(a)
    skipgram.reject_skipgram_flags(a)
    parser = a.train_parser
    given = [flag for key, flag in NOT_TABULAR.items()
             if getattr(a, key, None) not in (None, False) and getattr(a, key) != parser.get_default(key)]
    if a.cell != parser.get_default("cell"):
        given.append("--cell")
    if given:
        raise SeqbatchError(f"{', '.join(given)} do not apply to --task {a.task}")
    if a.task == "wine":
        extra = [f for f, v in (("--data", a.data), ("--target", a.target)) if v is not None]
        if extra:
            raise SeqbatchError(f"{', '.join(extra)} do not apply to --task wine (scikit-learn's bundled set); "
                                "--task tabular reads a CSV")
    elif a.data is None or a.target is None:
        raise SeqbatchError("--task tabular needs --data FILE.csv and --target COLUMN")
    hidden_sizes(a.hidden_sizes)
    if a.epochs is None:
        a.epochs = defaults["epochs"]
    check_train_flags(a, pick, defaults)
    return pick


def load_table(task: str, data: Path | None, target: str | None) -> Table:
    if task == "wine":
        return wine_table()
    assert data is not None and target is not None
    return read_csv(data, target)


def cmd_train(a: argparse.Namespace, pick: dict[str, Any], defaults: dict[str, Any], folder: RunFolder) -> int:
    """`seqbatch train --task wine|tabular` into the (locked) run folder `folder`, flags checked (`check_flags`)."""
    from shared.tabular_training import fit_mlp, steps_per_epoch

    backend = get_backend(a.backend)
    data = split_table(load_table(a.task, a.data, a.target), a.seed)
    model_cfg = MLPConfig(num_features=data.num_features, num_classes=data.num_classes,
                          hidden_sizes=hidden_sizes(a.hidden_sizes), dtype=a.dtype)
    per_epoch = steps_per_epoch(len(data.train), pick["batch_size"])  # validation after each epoch
    train_cfg = TrainConfig(optimizer=pick["optimizer"], lr=pick["lr"], momentum=a.momentum,
                            batch_size=pick["batch_size"], steps=None, epochs=a.epochs, clip_norm=pick["clip_norm"],
                            seed=a.seed, sampler="epoch", eval_every=per_epoch, on_nan=a.on_nan, max_loss=a.max_loss,
                            init=a.init)
    _stderr(f"data: {data.source}: {len(data.train)} train / {len(data.val)} val / {len(data.test)} test rows "
            f"(stratified {1 - VAL_FRACTION - TEST_FRACTION:.0%}/{VAL_FRACTION:.0%}/{TEST_FRACTION:.0%}), "
            f"{data.num_features} features standardised with the train split's mean and std, "
            f"{data.num_classes} classes")
    split = {"task": a.task, "seed": a.seed, "data": str(Path(a.data).resolve()) if a.data is not None else WINE_SOURCE,
             "data_sha256": data_hash(a.data), "target": a.target, "val": VAL_FRACTION, "test": TEST_FRACTION}
    info = {"task": a.task, "cli": recorded_flags(a), "environment": environment()}
    result = fit_mlp(backend, model_cfg, train_cfg, data, progress=not a.no_progress, log=_stderr, run_info=info,
                     keep_best=pick["keep_best"], folder=folder, checkpoint_every=a.checkpoint_every, split=split)
    print(strict_json({"backend": backend.name, "train_seconds": round(result.seconds, 2), "steps": result.steps,
                      "epochs": a.epochs, "val": result.val, "test": result.test}))
    _stderr(f"wrote {a.out}/model.safetensors, metrics.jsonl, loss.png, curves.png")
    return 0


def is_mlp(ckpt: checkpoint.Checkpoint) -> bool:
    return isinstance(ckpt.config, MLPConfig)


def _inputs_known(ckpt: checkpoint.Checkpoint, path: Path) -> tuple[list[str], Standardization]:
    if ckpt.labels is None or ckpt.features is None:
        raise SeqbatchError(f"{path}: an MLP checkpoint without seqbatch.labels and seqbatch.features metadata gives "
                            "logits for standardised inputs, but cannot read raw rows")
    return ckpt.labels, ckpt.features


def cmd_eval(a: argparse.Namespace, ckpt: checkpoint.Checkpoint) -> int:
    """top1, top2, balanced accuracy, n and loss (rounded to 1e-6, below which the two backends'
    float32 arithmetic may differ) on the val or test split, re-created from the checkpoint's split
    parameters and standardised with its stored train statistics."""
    from shared.plots import confusion_plot
    from shared.tabular_training import evaluate_tabular

    labels, scaling = _inputs_known(ckpt, a.checkpoint)
    given = [flag for key, flag in (("max_train", "--max-train"), ("max_test", "--max-test"),
                                    ("torch_kernel", "--torch-kernel"), ("word_eval", "--word-eval"))
             if getattr(a, key, None) is not None]
    if given:
        raise SeqbatchError(f"{', '.join(given)} do not apply to an MLP checkpoint ({a.checkpoint})")
    split = dict(ckpt.split or {})
    task = split.get("task")
    if task not in TASK_KINDS:
        raise SeqbatchError(f"{a.checkpoint}: its seqbatch.split metadata does not say which task (wine or tabular) "
                            "it was trained on")
    if a.task not in (None, task):
        raise SeqbatchError(f"{a.checkpoint} is a checkpoint for --task {task}, not {a.task}")
    if task == "tabular" and not isinstance(split.get("target"), str):
        raise SeqbatchError(f"{a.checkpoint}: its seqbatch.split metadata does not name the --target column")
    if a.seed is not None:
        check_seed(a.seed, "--seed")
    seed = int(split.get("seed", 0)) if a.seed is None else a.seed
    data_path = a.data
    if task == "wine" and data_path is not None:
        raise SeqbatchError(f"--data does not apply to a --task wine checkpoint ({a.checkpoint})")
    if task == "tabular" and data_path is None:
        data_path = Path(str(split.get("data", "")))
        if not data_path.is_file():
            raise SeqbatchError(f"{a.checkpoint} was trained on {split.get('data')!r}, which is not there: give "
                                "--data FILE.csv")
    if task == "tabular" and split.get("data_sha256") not in (None, data_hash(data_path)):
        warnings.warn(f"{a.checkpoint} was trained on other data than {data_path}; its validation and test splits "
                      "are not the ones it was selected and tested on", stacklevel=1)
    data = split_table(load_table(task, data_path, split.get("target")), seed, scaling=scaling)
    if data.label_names != labels:
        raise SeqbatchError(f"{a.checkpoint} was trained on classes {labels[:8]}, but {data.source} has "
                            f"{data.label_names[:8]}")
    backend = get_backend(a.backend)
    model = _load_model(backend, ckpt, a.dtype)
    part = data.val if a.split == "val" else data.test
    report, logits = evaluate_tabular(backend, model, part)
    report["loss"] = round(float(report["loss"]), 6)
    print(strict_json({"backend": backend.name, "split": a.split, **report}))
    if a.confusion is not None:
        confusion_plot(confusion(logits, part.labels, len(labels)), labels, a.confusion,
                       title=f"{a.checkpoint} on {a.split} ({backend.name})")
        _stderr(f"wrote {a.confusion}")
    if a.logits_out is not None:
        np.save(a.logits_out, logits)
    return 0


def cmd_predict(a: argparse.Namespace, ckpt: checkpoint.Checkpoint) -> int:
    """The most likely classes of each ROW: raw feature values separated by commas, in the order of
    the checkpoint's feature names, standardised with its stored train statistics."""
    labels, scaling = _inputs_known(ckpt, a.checkpoint)
    if a.task not in (None, *TASK_KINDS):
        raise SeqbatchError(f"{a.checkpoint} is an MLP checkpoint (--task wine or tabular), not {a.task}")
    rows = []
    for text in a.names:
        cells = [c.strip() for c in text.split(",")]
        try:
            values = [float(c) for c in cells]
        except ValueError:
            values = []
        if len(values) != len(scaling.names) or not np.isfinite(values).all():
            raise SeqbatchError(f"row {text!r:.60}: give {len(scaling.names)} numbers separated by commas, in the "
                                f"order {', '.join(scaling.names)}")
        rows.append(values)
    top_n = a.top if a.top is not None else min(3, len(labels))
    if not 1 <= top_n <= len(labels):
        raise SeqbatchError(f"--top {top_n}: give 1 to {len(labels)} (the checkpoint's number of classes)")
    backend = get_backend(a.backend)
    model = _load_model(backend, ckpt, a.dtype)
    features = scaling.apply(np.asarray(rows, np.float64))
    probs = softmax(kind_module(backend, "mlp").logits(model, TabularBatch(features, np.zeros(len(rows), np.int64))))
    for text, row, p in zip(a.names, rows, probs, strict=True):
        top = np.argsort(-p, kind="stable")[:top_n]
        if a.json:
            print(strict_json({"row": row, "top": [[labels[i], round(float(p[i]), 4)] for i in top]}))
        else:
            print(f"{text}: " + ", ".join(f"{labels[i]} {p[i]:.1%}" for i in top))
    return 0
