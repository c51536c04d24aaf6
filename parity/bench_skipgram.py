"""`seqbatch bench-skipgram`: skip-gram word vectors side by side with gensim's `Word2Vec`, on one
corpus with one set of hyperparameters (issue 13, item 7).

Every implementation gets the same documents (shared/skipgram_corpus.py's tokens: for IMDB, all
50,000 reviews, one document each) and word2vec's settings: dimension 100, window 5, 5 negatives,
`sample=1e-3`, `min_count=5`, SGD from 0.025 decaying linearly to 1e-4, and the same number of
epochs. gensim runs skip-gram (`sg=1`) with `--gensim-workers` threads (2 by default: this
machine's cores); ours run one process each.

Speed is raw corpus words (before `min_count`) per second of training, as gensim counts them:
vocabulary building and evaluation are not timed; our batch generation is. Quality is WordSim-353
and SimLex-999 Spearman rho and 3CosAdd analogy accuracy over the 30,000 most frequent words
(shared/word_eval.py, which equals gensim's `evaluate_word_pairs`/`evaluate_word_analogies`),
after every epoch. The run also checks that the torch-trained vectors give the same scores and
neighbours when loaded into the JAX backend.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from parity import flags
from shared.errors import SeqbatchError
from shared.paths import writable_dir

IMPLS = ("gensim", "torch", "jax")
PROBE_WORDS = ("great", "awful", "actor", "funny", "boring")


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("gensim", "torch", "jax", "jaxlib", "flax", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def run_gensim(docs: list[list[str]], raw_words: int, args: argparse.Namespace, eval_dir: Path | None,
               log: Any) -> dict[str, Any]:
    from gensim.models import Word2Vec
    from gensim.models.callbacks import CallbackAny2Vec

    from shared.word_eval import score_all

    class Epochs(CallbackAny2Vec):  # type: ignore[misc]
        def __init__(self) -> None:
            self.records: list[dict[str, Any]] = []
            self.eval_seconds = 0.0
            self.start = time.perf_counter()

        def on_epoch_end(self, model: Any) -> None:
            now = time.perf_counter()
            seconds = now - self.start - self.eval_seconds
            scores = score_all(model.wv.vectors, model.wv.index_to_key, eval_dir) if eval_dir else {}
            self.eval_seconds += time.perf_counter() - now
            ep = len(self.records) + 1
            self.records.append({"epoch": ep, "train_seconds": round(seconds, 2),
                                 "words_per_second": round(raw_words * ep / seconds), **scores})
            log(f"gensim epoch {ep}: {self.records[-1]}")

    model = Word2Vec(vector_size=args.embed_dim, window=args.window, negative=args.negatives, sample=args.sample,
                     min_count=args.min_count, workers=args.gensim_workers, sg=1, hs=0, alpha=0.025,
                     min_alpha=1e-4, seed=args.seed)
    t = time.perf_counter()
    model.build_vocab(docs)
    vocab_seconds = time.perf_counter() - t
    cb = Epochs()
    model.train(docs, total_examples=len(docs), epochs=args.epochs, callbacks=[cb])
    seconds = cb.records[-1]["train_seconds"]
    return {"impl": "gensim", "vocab": len(model.wv), "vocab_seconds": round(vocab_seconds, 2),
            "train_seconds": seconds, "words_per_second": round(raw_words * args.epochs / seconds),
            "first_epoch_words_per_second": cb.records[0]["words_per_second"], "epochs": cb.records,
            "final": {k: v for k, v in cb.records[-1].items() if k not in ("epoch", "train_seconds")},
            "workers": args.gensim_workers}


def run_ours(name: str, corpus: Any, args: argparse.Namespace, eval_dir: Path | None, log: Any
             ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    from shared.backend import get_backend
    from shared.config import TrainConfig
    from shared.kinds.skipgram import SkipgramConfig
    from shared.skipgram_data import SkipgramDataConfig
    from shared.skipgram_training import fit_skipgram

    backend = get_backend(name)
    model_cfg = SkipgramConfig(vocab_size=len(corpus.words), embed_dim=args.embed_dim)
    train_cfg = TrainConfig(optimizer="sgd", lr=0.025, momentum=0.0, batch_size=args.batch_size, steps=None,
                            epochs=args.epochs, seed=args.seed)
    data_cfg = SkipgramDataConfig(min_count=args.min_count, window=args.window, negatives=args.negatives,
                                  sample=args.sample)
    result = fit_skipgram(backend, model_cfg, train_cfg, data_cfg, corpus, min_lr=1e-4, eval_dir=eval_dir,
                          progress=not args.no_progress, log=log)
    epochs = [{k: v for k, v in r.items() if k not in ("split", "step", "words")}
              for r in result.history if r.get("split") == "epoch"]
    for r in epochs:
        log(f"{name} epoch {r['epoch']}: {r}")
    record = {"impl": name, "vocab": len(corpus.words), "train_seconds": round(result.seconds, 2),
              "words_per_second": round(result.words_per_second), "steps": result.steps,
              "batch_size": args.batch_size, "first_epoch_words_per_second": epochs[0]["words_per_second"],
              "epochs": epochs, "final": {k: v for k, v in epochs[-1].items() if k not in ("epoch", "train_seconds")}}
    return record, backend.to_params(result.model)


def cross_backend(params: dict[str, np.ndarray], words: tuple[str, ...], eval_dir: Path | None) -> dict[str, Any]:
    """Scores and neighbours of torch-trained vectors read through each backend: identical?"""
    from shared.backend import get_backend
    from shared.kinds.skipgram import SkipgramConfig
    from shared.word_eval import nearest, score_all

    cfg = SkipgramConfig(vocab_size=len(words), embed_dim=params["in_embed.weight"].shape[1])
    seen = []
    for name in ("torch", "jax"):
        b = get_backend(name)
        vectors = b.to_params(b.from_params(cfg, params))["in_embed.weight"]
        probes = [w for w in PROBE_WORDS if w in words]
        seen.append({"scores": score_all(vectors, words, eval_dir) if eval_dir else {},
                     "neighbors": {w: nearest(vectors, words, w, 10) for w in probes}})
    neighbors = {w: [n for n, _ in v] for w, v in seen[0]["neighbors"].items()}
    return {"identical": seen[0] == seen[1], "neighbors": neighbors}


def markdown(result: dict[str, Any]) -> str:
    rows = result["runs"]
    ref = next((r for r in rows if r["impl"] == "gensim"), None)
    lines = [f"Skip-gram on {result['source']}: {result['raw_words']:,} words, {result['epochs']} epochs, dimension "
             f"{result['settings']['embed_dim']}, window {result['settings']['window']}, "
             f"{result['settings']['negatives']} negatives, sample {result['settings']['sample']:g}, min_count "
             f"{result['settings']['min_count']}; {result['machine']}.", "",
             "| implementation | words/s (all epochs) | vs gensim | first epoch words/s | train s | WordSim-353 rho | "
             "SimLex-999 rho | analogy acc |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        f = r["final"]
        ratio = f"{r['words_per_second'] / ref['words_per_second']:.2f}x" if ref else "-"
        lines.append(f"| {r['impl']} | {r['words_per_second']:,} | {ratio} | {r['first_epoch_words_per_second']:,} | "
                     f"{r['train_seconds']:.1f} | {f.get('wordsim353', float('nan')):.3f} | "
                     f"{f.get('simlex999', float('nan')):.3f} | {100 * f.get('analogy', float('nan')):.1f} % |")
    if "cross_backend" in result:
        c = result["cross_backend"]
        lines += ["", f"torch-trained vectors read through the JAX backend: scores and neighbours identical: "
                      f"{c['identical']}."]
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["runs"]
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.6))
    names = [r["impl"] for r in rows]
    axes[0].bar(names, [r["words_per_second"] / 1e3 for r in rows], color=[f"C{i}" for i in range(len(rows))])
    axes[0].set_ylabel("thousand raw words / s")
    axes[0].set_title("training speed")
    for ax, key, label in zip(axes[1:], ("wordsim353", "simlex999", "analogy"),
                              ("WordSim-353 rho", "SimLex-999 rho", "analogy accuracy"), strict=True):
        for i, r in enumerate(rows):
            eps = [e for e in r["epochs"] if key in e]
            ax.plot([e["epoch"] for e in eps], [e[key] for e in eps], marker="o", color=f"C{i}", label=r["impl"])
        ax.set_xlabel("epoch")
        ax.set_title(label)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle(f"skip-gram on {result['source']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def add_bench_skipgram(sub: Any) -> None:
    p = sub.add_parser("bench-skipgram", help="skip-gram words/s and quality: gensim, torch and jax side by side",
                       description="Train word2vec skip-gram with gensim's Word2Vec and with both seqbatch backends on "
                                   "the same corpus and settings; report raw words per second and WordSim-353, "
                                   "SimLex-999 and analogy scores per epoch. Writes bench.json, bench.md, bench.png.")
    p.add_argument("--data", type=Path, default=None,
                   help="corpus as `seqbatch train --task skipgram --data` takes it (default: the embedded text)")
    p.add_argument("--word-eval", type=Path, default=None, metavar="DIR",
                   help="folder of the evaluation sets (default as `train --task skipgram`)")
    p.add_argument("--impls", default=",".join(IMPLS), help=f"comma list of {', '.join(IMPLS)} (default all)")
    p.add_argument("--epochs", type=int, default=5, help="epochs for every implementation (default 5)")
    p.add_argument("--embed-dim", type=int, default=100, help="vector dimension (default 100)")
    p.add_argument("--window", type=int, default=5, help="largest context radius (default 5)")
    p.add_argument("--negatives", type=int, default=5, help="noise words per pair (default 5)")
    p.add_argument("--sample", type=float, default=1e-3, help="subsampling threshold (default 1e-3)")
    p.add_argument("--min-count", type=int, default=5, help="drop rarer words (default 5)")
    p.add_argument("--batch-size", type=int, default=1024, help="pairs per step for torch and jax (default 1024)")
    p.add_argument("--gensim-workers", type=int, default=2, help="gensim's worker threads (default 2)")
    p.add_argument("--seed", type=int, default=0, help="seed of every implementation (default 0)")
    p.add_argument("--note", default="", help="what else ran on the machine during the timings (recorded)")
    p.add_argument("--out", type=Path, required=True, help="folder for bench.json, bench.md, bench.png")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.set_defaults(func=cmd_bench_skipgram)


def cmd_bench_skipgram(a: argparse.Namespace) -> int:
    import os
    import platform
    import sys

    from shared.skipgram_corpus import corpus_documents
    from shared.skipgram_data import SkipgramDataConfig, build_corpus
    from shared.word_eval import find_eval_dir

    impls = flags.names(flags.split(a.impls), {k: k for k in IMPLS}, "--impls")
    for key in ("epochs", "embed_dim", "window", "negatives", "min_count", "batch_size", "gensim_workers"):
        if getattr(a, key) < 1:
            raise SeqbatchError(f"--{key.replace('_', '-')} must be >= 1, got {getattr(a, key)}")
    SkipgramDataConfig(min_count=a.min_count, window=a.window, negatives=a.negatives, sample=a.sample)
    if "gensim" in impls:
        try:
            import gensim  # noqa: F401
        except ImportError as e:
            raise SeqbatchError("gensim is not installed: pip install -e '.[anchors]' (or drop it from --impls)") from e
    eval_dir = find_eval_dir(a.word_eval)
    out = writable_dir(a.out)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    docs, source = corpus_documents(a.data)
    corpus = build_corpus(docs, a.min_count, source=source)
    log(f"{source}: {corpus.raw_words:,} words, {len(corpus.words):,} distinct kept")
    result: dict[str, Any] = {
        "source": source, "raw_words": corpus.raw_words, "epochs": a.epochs,
        "settings": {k: getattr(a, k) for k in ("embed_dim", "window", "negatives", "sample", "min_count",
                                                  "batch_size", "gensim_workers", "seed")},
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}",
        "versions": _versions(), "note": a.note, "eval_dir": str(eval_dir) if eval_dir else None, "runs": [],
    }
    for impl in impls:
        if impl == "gensim":
            record = run_gensim(docs, corpus.raw_words, a, eval_dir, log)
        else:
            record, params = run_ours(impl, corpus, a, eval_dir, log)
            if impl == "torch":
                result["cross_backend"] = cross_backend(params, corpus.words, eval_dir)
        result["runs"].append(record)
        (out / "bench.json").write_text(json.dumps(result, indent=1) + "\n")  # after each, in case of a crash
    (out / "bench.md").write_text(markdown(result))
    plot(result, out / "bench.png")
    print(markdown(result))
    print(f"wrote {out}/bench.json, bench.md, bench.png")
    return 0
