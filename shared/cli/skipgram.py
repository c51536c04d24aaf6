"""`seqbatch train --task skipgram` (word2vec skip-gram with negative sampling) and `seqbatch eval` of
its checkpoints; `neighbors` and `export` live in shared/cli/words.py."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from shared import checkpoint
from shared.backend import get_backend
from shared.cli.common import _load_model, _stderr
from shared.cli.runflags import check_train_flags, recorded_flags
from shared.config import TrainConfig
from shared.errors import SeqbatchError
from shared.kinds.skipgram import SkipgramConfig
from shared.provenance import data_hash, environment
from shared.runs import RunFolder
from shared.runs import dumps as strict_json
from shared.skipgram_data import RULES, SkipgramDataConfig

# word2vec's and gensim's defaults (dimension 100, window 5, 5 negatives, sample 1e-3, min_count 5,
# SGD from 0.025 decaying linearly to 1e-4 over the run), 5 epochs, 1,024 pairs per step.
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "skipgram": {"hidden": None, "embed_dim": 100, "optimizer": "sgd", "lr": 0.025, "batch_size": 1024,
                 "epochs": 5, "sampler": None, "eval_every": None, "bucket": 8, "bucket_chunk": 0,
                 "clip_norm": None, "keep_best": False},
}
TASK_KINDS: dict[str, str] = {"skipgram": "skipgram"}
SKIPGRAM_FLAGS: dict[str, str] = {"window": "--window", "negatives": "--negatives", "min_count": "--min-count",
                                  "sample": "--sample", "subsample": "--subsample", "min_lr": "--min-lr",
                                  "word_eval": "--word-eval"}
# Flags of the recurrent tasks a skip-gram model has no use for (value given -> refused).
NOT_SKIPGRAM: dict[str, str] = {
    "class_weights": "--class-weights", "select": "--select",
    "padding": "--padding", "devices": "--devices", "procs": "--procs",
    "bidirectional": "--bidirectional", "sampler": "--sampler", "torch_kernel": "--torch-kernel", "level": "--level",
    "max_len": "--max-len", "truncate": "--truncate", "min_freq": "--min-freq", "max_vocab": "--max-vocab",
    "stop_words": "--stop-words", "keep_case": "--keep-case", "max_train": "--max-train", "max_test": "--max-test",
    "layers": "--layers", "hidden": "--hidden", "dropout": "--dropout", "clip_norm": "--clip-norm",
    "bucket": "--bucket", "bucket_chunk": "--bucket-chunk", "keep_best": "--keep-best", "eval_every": "--eval-every",
    "seq_length": "--seq-length", "lm_batching": "--lm-batching", "doc_unit": "--doc-unit",
    "time_limit": "--time-limit",
}


def add_skipgram_args(p: argparse.ArgumentParser) -> None:
    d = SkipgramDataConfig()
    g = p.add_argument_group("skip-gram (skipgram only)")
    g.add_argument("--window", type=int, default=None,
                   help=f"largest context radius; each centre draws its radius from 1..N (default {d.window})")
    g.add_argument("--negatives", type=int, default=None,
                   help=f"noise words per (centre, context) pair, drawn from count**0.75 (default {d.negatives})")
    g.add_argument("--min-count", type=int, default=None,
                   help=f"drop words seen fewer than N times in the corpus (default {d.min_count})")
    g.add_argument("--sample", type=float, default=None,
                   help=f"subsampling threshold t for frequent words (default {d.sample:g})")
    g.add_argument("--subsample", choices=RULES, default=None,
                   help="keep probability of a word of frequency f: word2vec (sqrt(f/t) + 1) * t/f (the C tool's "
                        "and gensim's), lesson sqrt(t/f) (discard 1 - sqrt(t/f)), none (default word2vec)")
    g.add_argument("--min-lr", type=float, default=None,
                   help="SGD: the learning rate decays linearly from --lr to this over the run, by corpus words "
                        "processed, as word2vec's alpha (default 1e-4)")
    g.add_argument("--word-eval", type=Path, default=None, metavar="DIR",
                   help="folder with wordsim353.tsv, simlex999.txt, questions-words.txt (e.g. "
                        "../shared/data/word-eval), scored after each epoch; default $SEQBATCH_WORD_EVAL, else "
                        "gensim's bundled copy when gensim is installed, else no scores")


def reject_skipgram_flags(a: argparse.Namespace) -> None:
    given = [flag for key, flag in SKIPGRAM_FLAGS.items() if getattr(a, key, None) is not None]
    if given:
        raise SeqbatchError(f"{', '.join(given)} apply to --task skipgram only, not {a.task}")


def data_config(a: argparse.Namespace) -> SkipgramDataConfig:
    d = SkipgramDataConfig()
    return SkipgramDataConfig(
        min_count=d.min_count if a.min_count is None else a.min_count,
        window=d.window if a.window is None else a.window,
        negatives=d.negatives if a.negatives is None else a.negatives,
        sample=d.sample if a.sample is None else a.sample,
        rule=a.subsample or d.rule,
    )


def min_lr(a: argparse.Namespace, lr: float) -> float:
    value = 1e-4 if a.min_lr is None else a.min_lr
    if not (math.isfinite(value) and 0 <= value <= lr):
        raise SeqbatchError(f"--min-lr must be in [0, --lr {lr:g}], got {value}")
    return value


def check_flags(a: argparse.Namespace, pick: dict[str, Any], defaults: dict[str, Any]) -> None:
    """Every flag of `train --task skipgram`, before the run folder is made or data read."""
    parser = a.train_parser
    given = [flag for key, flag in NOT_SKIPGRAM.items()
             if getattr(a, key, None) not in (None, False) and getattr(a, key) != parser.get_default(key)]
    if a.cell != parser.get_default("cell"):
        given.append("--cell")
    if a.momentum != parser.get_default("momentum"):
        given.append("--momentum (skip-gram SGD is plain, as word2vec's)")
    if given:
        raise SeqbatchError(f"{', '.join(given)} do not apply to --task skipgram")
    for key, flag in SKIPGRAM_FLAGS.items():
        value = getattr(a, key, None)
        if key in ("window", "negatives", "min_count") and value is not None and value < 1:
            raise SeqbatchError(f"{flag} must be >= 1, got {value}")
    data_config(a)  # its own checks (sample > 0, ...)
    if pick["embed_dim"] is not None and pick["embed_dim"] < 1:
        raise SeqbatchError(f"--embed-dim must be >= 1, got {pick['embed_dim']}")
    steps, epochs = a.steps, (a.epochs if a.steps is None else None)
    if steps is None and epochs is None:
        epochs = defaults["epochs"]
    a.steps, a.epochs = steps, epochs
    pick["dropout"] = 0.0
    if a.lr is None and pick["optimizer"] == "adam":
        pick["lr"] = 1e-3  # 0.025 is word2vec's SGD rate; Adam's usual one
    check_train_flags(a, pick, defaults)
    min_lr(a, pick["lr"])
    if a.word_eval is not None:
        from shared.word_eval import find_eval_dir

        find_eval_dir(a.word_eval)


def cmd_train(a: argparse.Namespace, pick: dict[str, Any], defaults: dict[str, Any], folder: RunFolder) -> int:
    """`seqbatch train --task skipgram` into the (locked) run folder `folder`, flags checked (`check_flags`)."""
    from shared.skipgram_corpus import load_corpus
    from shared.skipgram_training import fit_skipgram
    from shared.word_eval import find_eval_dir

    backend = get_backend(a.backend)
    data_cfg = data_config(a)
    eval_dir = find_eval_dir(a.word_eval)
    corpus, source = load_corpus(a.data, data_cfg.min_count)
    model_cfg = SkipgramConfig(vocab_size=len(corpus.words), embed_dim=pick["embed_dim"], dtype=a.dtype)
    train_cfg = TrainConfig(optimizer=pick["optimizer"], lr=pick["lr"], momentum=0.0, batch_size=pick["batch_size"],
                            steps=a.steps, epochs=a.epochs, seed=a.seed, on_nan=a.on_nan, max_loss=a.max_loss,
                            init=a.init)
    _stderr(f"data: {source}: {corpus.raw_words:,} words, {len(corpus):,} kept by --min-count "
            f"{data_cfg.min_count}, {len(corpus.words):,} distinct; scores: {eval_dir or 'none (see --word-eval)'}")
    info = {"task": a.task, "cli": recorded_flags(a), "environment": environment(),
            "data": {"source": source, "data_sha256": data_hash(a.data), **data_cfg.__dict__}}
    result = fit_skipgram(backend, model_cfg, train_cfg, data_cfg, corpus, min_lr=min_lr(a, pick["lr"]),
                          eval_dir=eval_dir, folder=folder, progress=not a.no_progress, log=_stderr, run_info=info,
                          checkpoint_every=a.checkpoint_every)
    print(strict_json({"backend": backend.name, "train_seconds": round(result.seconds, 1), "steps": result.steps,
                      "words_per_second": round(result.words_per_second), "scores": result.scores}))
    _stderr(f"wrote {a.out}/model.safetensors, metrics.jsonl, loss.png")
    return 0


def is_skipgram(ckpt: checkpoint.Checkpoint) -> bool:
    return isinstance(ckpt.config, SkipgramConfig)


def words_of(ckpt: checkpoint.Checkpoint, path: Path) -> tuple[str, ...]:
    if ckpt.words is None:
        raise SeqbatchError(f"{path}: a skip-gram checkpoint without seqbatch.words metadata has vectors for row "
                            "numbers, not words")
    return ckpt.words


def cmd_eval(a: argparse.Namespace, ckpt: checkpoint.Checkpoint) -> int:
    """WordSim-353, SimLex-999 and analogy scores of the checkpoint's input vectors, as JSON."""
    from shared.word_eval import find_eval_dir, score_all

    given = [flag for key, flag in (("confusion", "--confusion"), ("logits_out", "--logits-out"),
                                    ("max_train", "--max-train"), ("max_test", "--max-test"), ("seed", "--seed"),
                                    ("torch_kernel", "--torch-kernel"), ("data", "--data"))
             if getattr(a, key, None) is not None]
    if given:
        raise SeqbatchError(f"{', '.join(given)} do not apply to a skip-gram checkpoint ({a.checkpoint})")
    if a.task not in (None, "skipgram"):
        raise SeqbatchError(f"{a.checkpoint} is a skip-gram model (--task skipgram), not {a.task}")
    words = words_of(ckpt, a.checkpoint)
    folder = find_eval_dir(getattr(a, "word_eval", None))
    if folder is None:
        raise SeqbatchError("no word-evaluation sets found: give --word-eval DIR (e.g. ../shared/data/word-eval)")
    backend = get_backend(a.backend)
    model = _load_model(backend, ckpt, a.dtype)
    vectors = backend.to_params(model)["in_embed.weight"]
    print(strict_json({"backend": backend.name, **score_all(vectors, words, folder)}))
    return 0
