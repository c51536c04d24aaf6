"""`seqbatch bench-kernels`: one training step on real IMDB batches, torch packed vs torch padded vs JAX.

The reference's `pack_padded_sequence` path has a backward whose cost grows with T^2 on a CPU
(reference_torch/models.py explains why); names (T <= 24) never show it, reviews do. This measures
one optimizer step (forward, backward, Adam, clipping as in `seqbatch train --task imdb`) per kernel
on bucketed batches drawn across an epoch of the IMDB train split, at several `--max-len`, and
writes kernels.json, kernels.md and kernels.png. Nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from parity import flags
from parity.bench import _backend_step, batch_pool, machine_info, measure, use_device
from shared.backend import torch_kernel
from shared.config import CELLS, ModelConfig, TrainConfig
from shared.dataset import imdb_dataset
from shared.paths import writable_dir
from shared.text import TextConfig

SHAPES = {"1": (1, False), "3bi": (3, True), "2bi": (2, True), "1bi": (1, True)}
IMPLS = ("torch_packed", "torch_padded", "jax_scan")


def _step(impl: str, model_cfg: ModelConfig, train_cfg: TrainConfig) -> Any:
    if impl == "jax_scan":
        return _backend_step("jax", model_cfg, train_cfg, per_example=False)
    with torch_kernel(impl.removeprefix("torch_")):
        return _backend_step("torch", model_cfg, train_cfg, per_example=False)


def run(a: argparse.Namespace) -> dict[str, Any]:
    use_device("cpu", ("torch", "jax"), a.threads)
    results: list[dict[str, Any]] = []
    jobs = [(L, cell, shape, impl) for L in a.max_lens for cell in a.cells for shape in a.shapes for impl in IMPLS]
    data_by_len = {}
    for L in a.max_lens:
        data_by_len[L] = imdb_dataset(a.data, TextConfig(max_len=L), seed=0, max_train=a.max_train)
    for L, cell, shape, impl in tqdm(jobs, desc="bench-kernels", unit="run", disable=a.no_progress):
        data = data_by_len[L]
        layers, bi = SHAPES[shape]
        model_cfg = ModelConfig(len(data.vocab), data.num_classes, cell=cell, num_layers=layers,  # type: ignore[arg-type]
                                bidirectional=bi, hidden_size=64, embed_dim=96)
        train_cfg = TrainConfig(optimizer="adam", lr=1e-3, batch_size=a.batch_size, clip_norm=3.0, seed=0)
        pool, waste = batch_pool(data, a.batch_size, bucketed=True, k=a.pool, seed=0)
        timing = measure(_step(impl, model_cfg, train_cfg), pool, repeats=a.pool, min_seconds=0.0)
        results.append({"max_len": L, "cell": cell, "shape": shape, "impl": impl, "batch_size": a.batch_size,
                        "time_steps": sum(b.tokens.shape[1] for b in pool) / len(pool), "padding_waste": waste,
                        **timing})
    return {"machine": machine_info("cpu", ("torch", "jax")), "threads": a.threads, "data": str(a.data),
            "results": results}


def write(report: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    (out / "kernels.json").write_text(json.dumps(report, indent=1) + "\n")
    rows = report["results"]
    key = sorted({(r["cell"], r["shape"], r["max_len"]) for r in rows})
    by = {(r["cell"], r["shape"], r["max_len"], r["impl"]): r for r in rows}
    lines = ["| cell | layers | max-len | mean T | torch packed ms | torch padded ms | jax scan ms "
             "| padded/packed speedup |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for cell, shape, L in key:
        p, d, j = (by.get((cell, shape, L, i)) for i in IMPLS)
        if p is None or d is None or j is None:
            continue
        lines.append(f"| {cell} | {shape} | {L} | {p['time_steps']:.0f} | {p['step_ms']:.0f} | {d['step_ms']:.0f} | "
                     f"{j['step_ms']:.0f} | {p['step_ms'] / d['step_ms']:.1f}x |")
    m = report["machine"]
    head = (f"One Adam step (batch {rows[0]['batch_size']}, emb 96, hidden 64, clip 3) on bucketed IMDB batches, "
            f"{report['threads']} thread(s); torch {m['versions'].get('torch')}, jax {m['versions'].get('jax')}; "
            f"{m.get('cpu', '')}\n\n")
    (out / "kernels.md").write_text(head + "\n".join(lines) + "\n")
    panels = sorted({(c, s) for c, s, _ in key})
    ncols = min(3, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.4 * nrows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (cell, shape) in zip(axes.flat, panels, strict=False):
        for impl, style in zip(IMPLS, ("o-", "s-", "^-"), strict=True):
            pts = sorted((r["time_steps"], r["step_ms"]) for r in rows
                         if r["cell"] == cell and r["shape"] == shape and r["impl"] == impl)
            ax.plot(*zip(*pts, strict=True), style, label=impl.replace("_", " "))
        layers = "1 layer" if shape == "1" else shape.replace("bi", " layers, bidirectional")
        ax.set(title=f"{cell}, {layers}", xlabel="padded time steps (mean over the pool)",
               ylabel="ms per training step", yscale="log")
        ax.grid(alpha=0.3)
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(out / "kernels.png", dpi=110)
    plt.close(fig)


def add_bench_kernels(sub: Any) -> None:
    p = sub.add_parser("bench-kernels", help="torch packed vs torch padded vs jax on IMDB-length batches",
                       description=__doc__)
    p.add_argument("--data", type=Path, default=None,
                   help="IMDB folder (e.g. ../shared/data/imdb); default: the embedded synthetic reviews")
    p.add_argument("--cells", type=flags.split, default=("lstm", "gru", "rnn_tanh"),
                   help="comma-separated cells among rnn_tanh, rnn_relu, lstm, gru (default lstm,gru,rnn_tanh)")
    p.add_argument("--shapes", type=flags.split, default=("1", "3bi"),
                   help=f"comma-separated layer shapes among {', '.join(SHAPES)} (default 1,3bi)")
    p.add_argument("--max-lens", type=flags.int_list, default=(100, 200, 400),
                   help="comma-separated --max-len values (default 100,200,400)")
    p.add_argument("--batch-size", type=int, default=32, help="examples per step (default 32, the source's)")
    p.add_argument("--pool", type=int, default=4, help="batches per measurement, drawn across the epoch (default 4)")
    p.add_argument("--max-train", type=int, default=5000, help="train reviews to draw batches from (default 5000)")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads for both libraries (default 1)")
    p.add_argument("--out", type=Path, required=True, help="folder for kernels.json, kernels.md, kernels.png")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=cmd_bench_kernels)


def cmd_bench_kernels(a: argparse.Namespace) -> int:
    a.cells = flags.names(a.cells, CELLS, "--cells")
    a.shapes = flags.names(a.shapes, SHAPES, "--shapes")
    flags.all_at_least(a.max_lens, 1, "--max-lens")
    flags.at_least(a.batch_size, 1, "--batch-size")
    flags.at_least(a.pool, 1, "--pool")
    flags.at_least(a.max_train, 1, "--max-train")
    flags.threads(a.threads)
    flags.existing(a.data)
    out = writable_dir(a.out)  # last, and before minutes of work
    report = run(a)
    write(report, out)
    print((out / "kernels.md").read_text(), end="")
    print(f"wrote {out}/kernels.json, kernels.md, kernels.png", file=sys.stderr)
    return 0
