"""`seqbatch train --task charlm`, `seqbatch eval` of a language model, and `seqbatch generate`."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from shared import checkpoint
from shared.backend import get_backend, kind_module
from shared.cli import procs
from shared.cli.common import _backend_arg, _eval_dtype_arg, _load_model, _run_config, _stderr
from shared.cli.runflags import check_train_flags, recorded_flags
from shared.config import TrainConfig, check_seed
from shared.distributed import request_host_devices
from shared.errors import SeqbatchError
from shared.kinds.lm import LMConfig
from shared.lm_data import LMDataConfig, load_lm_data
from shared.provenance import data_hash, environment
from shared.runs import RunFolder
from shared.runs import dumps as strict_json

# The char-RNN lesson's shape at a CPU-friendly width: 2 layers, embedding 64, dropout 0.2, Adam
# 2e-3, clipping 5, batch 64 x 100 characters, keep-best on validation loss.
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "charlm": {"hidden": 256, "embed_dim": 64, "layers": 2, "dropout": 0.2, "optimizer": "adam", "lr": 2e-3,
               "batch_size": 64, "epochs": 10, "eval_every": 200, "bucket": 8, "bucket_chunk": 20,
               "clip_norm": 5.0, "keep_best": True, "sampler": None},
}
TASK_KINDS: dict[str, str] = {"charlm": "lm"}
LM_FLAGS: dict[str, str] = {"seq_length": "--seq-length", "lm_batching": "--lm-batching", "doc_unit": "--doc-unit",
                            "time_limit": "--time-limit"}
# Classifier flags a language model has no use for.
NOT_LM: dict[str, str] = {
    "class_weights": "--class-weights", "select": "--select",
    "padding": "--padding",
    "bidirectional": "--bidirectional", "sampler": "--sampler", "torch_kernel": "--torch-kernel",
                          "level": "--level", "max_len": "--max-len", "truncate": "--truncate",
                          "min_freq": "--min-freq", "max_vocab": "--max-vocab", "stop_words": "--stop-words",
                          "keep_case": "--keep-case", "max_train": "--max-train", "max_test": "--max-test"}


def add_lm_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("language model (charlm only)")
    g.add_argument("--seq-length", type=int, default=None,
                   help="characters per window (stream), the truncated-backpropagation length (default 100)")
    g.add_argument("--lm-batching", choices=("stream", "documents"), default=None,
                   help="stream: one text in batch-size rows read window by window, state carried between "
                        "windows (the lesson's get_batches); documents: one padded sequence per document, fresh "
                        "state each (default: stream for a file, documents for a folder)")
    g.add_argument("--doc-unit", choices=("line", "file"), default=None,
                   help="documents: each non-blank line is one (e.g. one surname), or each file (default line)")
    g.add_argument("--time-limit", type=float, default=None,
                   help="stop training after this many minutes of training time (evaluation not counted); "
                        "the run then validates, tests and writes its folder as usual")


def reject_lm_flags(a: argparse.Namespace) -> None:
    given = [flag for key, flag in LM_FLAGS.items() if getattr(a, key, None) is not None]
    if given:
        raise SeqbatchError(f"{', '.join(given)} apply to --task charlm only, not {a.task}")


def _data_config(a: argparse.Namespace) -> LMDataConfig:
    batching = a.lm_batching or ("documents" if a.data is not None and Path(a.data).is_dir() else "stream")
    if a.doc_unit is not None and batching != "documents":
        raise SeqbatchError("--doc-unit applies to --lm-batching documents only")
    return LMDataConfig(batching=batching, doc_unit=a.doc_unit or "line", seed=a.seed)


def check_flags(a: argparse.Namespace, pick: dict[str, Any], defaults: dict[str, Any]) -> None:
    """Every flag of `train --task charlm`, before the run folder is made or data read."""
    given = [flag for key, flag in NOT_LM.items() if getattr(a, key, None) not in (None, False)]
    if given:
        raise SeqbatchError(f"{', '.join(given)} apply to the classifier tasks, not --task charlm")
    seq_length = 100 if a.seq_length is None else a.seq_length
    if seq_length < 1:
        raise SeqbatchError(f"--seq-length must be >= 1, got {seq_length}")
    devices = 1 if a.devices is None else a.devices
    if devices < 1 or (devices > 1 and a.backend != "jax"):
        raise SeqbatchError(f"--devices {devices}: give N >= 1; N > 1 is the jax backend's data parallel")
    if devices > 1 and pick["batch_size"] % devices:
        raise SeqbatchError(f"--batch-size {pick['batch_size']} is not divisible by --devices {devices}: each "
                            f"device takes an equal share of the rows; give a multiple of {devices}")
    procs.check_procs(a, pick["batch_size"])
    if a.time_limit is not None and not (math.isfinite(a.time_limit) and a.time_limit > 0):
        raise SeqbatchError(f"--time-limit must be > 0 minutes, got {a.time_limit}")
    steps, epochs = a.steps, (a.epochs if a.steps is None else None)
    if steps is None and epochs is None:
        epochs = defaults["epochs"]
    a.steps, a.epochs = steps, epochs
    check_train_flags(a, pick, defaults)


def cmd_train(a: argparse.Namespace, pick: dict[str, Any], defaults: dict[str, Any], folder: RunFolder | None,
              source: RunFolder | None = None) -> int:
    """`seqbatch train --task charlm` into the (locked) run folder `folder` (None on the ranks after the
    first of a data-parallel run; `source`: the folder they resume from), flags checked (`check_flags`)."""
    from shared.lm_training import fit_lm

    seq_length = 100 if a.seq_length is None else a.seq_length
    steps, epochs = a.steps, a.epochs
    request_host_devices(a.devices or 1)  # before JAX starts
    # Over processes: torch DDP trains each rank on its rows; JAX runs one program over every process's devices.
    world = procs.worker_world(a)
    main_rank = world is None or world.main
    say = _stderr if main_rank else procs.quiet
    backend = get_backend(a.backend)
    data = load_lm_data(a.data, _data_config(a))
    model_cfg = LMConfig(vocab_size=len(data.vocab), cell=a.cell, num_layers=pick["layers"],
                         hidden_size=pick["hidden"], embed_dim=pick["embed_dim"], dropout=pick["dropout"],
                         dtype=a.dtype)
    train_cfg = TrainConfig(optimizer=pick["optimizer"], lr=pick["lr"], momentum=a.momentum,
                            batch_size=pick["batch_size"], steps=steps, epochs=epochs, clip_norm=pick["clip_norm"],
                            seed=a.seed, eval_every=pick["eval_every"], on_nan=a.on_nan, max_loss=a.max_loss,
                            init=a.init,
                            devices=world.devices if world is not None and not world.shards_batches else a.devices or 1)
    say(f"data: {data.source} ({data.cfg.batching}): {data.chars['train']} / {data.chars['val']} / "
            f"{data.chars['test']} characters train / val / test, {len(data.vocab)} tokens")
    info = {"task": a.task, "cli": recorded_flags(a), "environment": environment(),
            "split": {"seed": a.seed, "data": str(a.data or "default"), "data_sha256": data_hash(a.data)}}
    result = fit_lm(backend, model_cfg, train_cfg, data, seq_length=seq_length,
                    progress=not a.no_progress and main_rank, log=say, run_info=info, keep_best=pick["keep_best"],
                    max_seconds=None if a.time_limit is None else a.time_limit * 60,
                    bucket_chunk=pick["bucket_chunk"] or 0, folder=folder, checkpoint_every=a.checkpoint_every,
                    world=world, resume_from=source)
    if world is not None:
        world.close()
    if not main_rank:
        return 0
    print(strict_json({"backend": backend.name, "train_seconds": round(result.seconds, 1), "steps": result.steps,
                      "val": result.val, "test": result.test}))
    _stderr(f"wrote {a.out}/model.safetensors, metrics.jsonl, loss.png")
    return 0


def is_lm(ckpt: checkpoint.Checkpoint) -> bool:
    return isinstance(ckpt.config, LMConfig)


def _lm_checkpoint(ckpt: checkpoint.Checkpoint, path: Path) -> LMDataConfig:
    if ckpt.vocab is None or ckpt.data is None:
        raise SeqbatchError(f"{path}: a language model without vocabulary or seqbatch.data metadata gives logits "
                            "for ids, but cannot read or write text")
    return ckpt.data


def cmd_eval(a: argparse.Namespace, ckpt: checkpoint.Checkpoint) -> int:
    """Loss on the val or test split of the text the checkpoint was trained on (re-split the same way)."""
    from shared.lm_training import evaluate_split

    data_cfg = _lm_checkpoint(ckpt, a.checkpoint)
    given = [flag for key, flag in (("confusion", "--confusion"), ("logits_out", "--logits-out"),
                                    ("max_train", "--max-train"), ("max_test", "--max-test"),
                                    ("torch_kernel", "--torch-kernel")) if getattr(a, key, None) is not None]
    if given:
        raise SeqbatchError(f"{', '.join(given)} apply to classifier checkpoints; {a.checkpoint} is a language model")
    if a.task not in (None, "charlm"):
        raise SeqbatchError(f"{a.checkpoint} is a language model (--task charlm), not {a.task}")
    run = _run_config(a.checkpoint)
    if a.seed is not None:
        check_seed(a.seed, "--seed")
        data_cfg = LMDataConfig(data_cfg.batching, data_cfg.doc_unit, a.seed)
    data = load_lm_data(a.data, data_cfg, vocab=ckpt.vocab)
    backend = get_backend(a.backend)
    model = _load_model(backend, ckpt, a.dtype)
    report = evaluate_split(backend, model, data, a.split, int(run.get("seq_length", 100)))
    print(strict_json({"backend": backend.name, "split": a.split, **report}))
    return 0


def add_generate(sub: Any) -> None:
    p = sub.add_parser("generate", help="sample text from a language model checkpoint",
                       description="Prime a language model with --prime and sample up to --length characters. "
                                   "Sampling runs in NumPy from the backend's logits, so a checkpoint, prime and "
                                   "seed give the same text on both backends (greedy, --top-k 1, always).")
    p.add_argument("--checkpoint", type=Path, required=True, help="model.safetensors of a `--task charlm` run")
    _backend_arg(p)
    p.add_argument("--prime", default="", help="text to start from (a documents model, e.g. surnames, may "
                                               "start from nothing: it opens a new document)")
    p.add_argument("--length", type=int, default=500, help="characters to generate at most (default 500)")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="divide the logits by this before sampling; lower is more conservative (default 1.0)")
    p.add_argument("--top-k", type=int, default=None,
                   help="sample among the k most likely characters only; 1 is greedy decoding (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the NumPy sampler (default 0)")
    p.add_argument("--samples", type=int, default=1, help="texts to generate, seeds seed, seed+1, ... (default 1)")
    _eval_dtype_arg(p)
    p.set_defaults(func=cmd_generate)


def cmd_generate(a: argparse.Namespace) -> int:
    from shared.generate import SampleConfig, generate

    if a.samples < 1:
        raise SeqbatchError(f"--samples must be >= 1, got {a.samples}")
    check_seed(a.seed, "--seed")
    check_seed(a.seed + a.samples - 1, "--seed + --samples - 1")
    cfgs = [SampleConfig(a.length, a.temperature, a.top_k, a.seed + i) for i in range(a.samples)]
    ckpt = checkpoint.load(a.checkpoint)
    if not is_lm(ckpt):
        raise SeqbatchError(f"{a.checkpoint} is a classifier checkpoint; generate needs a language model "
                            "(seqbatch train --task charlm)")
    data_cfg = _lm_checkpoint(ckpt, a.checkpoint)
    assert ckpt.vocab is not None
    backend = get_backend(a.backend)
    model = _load_model(backend, ckpt, a.dtype)
    lm = kind_module(backend, "lm")
    for cfg in cfgs:
        print(generate(lm, model, ckpt.vocab, a.prime, cfg, documents=data_cfg.batching == "documents"))
    return 0
