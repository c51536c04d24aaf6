"""`seqbatch bench-scaling`: how a training step's cost grows with sequence length, batch size and hidden size.

One Adam step of the LSTM classifier (embedding 32, one layer, clip 5) on synthetic ragged batches
(lengths uniform in [T/2, T], so packing and masking have real work to skip), for torch packed (the
reference), torch padded (reference_torch's second correct kernel) and the JAX port, along three
sweeps through one base point (T 100, B 128, H 128):

- sequence length T: 10 ... 1,000 (the work is linear in T: so should the time be);
- batch size B: 1 ... 1,024 (linear in B once the machine is saturated; flat while it is not);
- hidden size H: 64 ... 1,024 (the products grow as H^2: GFLOP/s shows how well each path uses them).

Each record has `step_ms`, `tokens_per_s` (real tokens), `gflop_per_s` (the recurrent products on real
tokens, as `seqbatch bench` counts them) and `peak_mem_mb`. The report gives, for T and B, the log-log
slope of step time between neighbouring points: ~1 is linear, below 1 is the machine filling up, and a
slope above `SUPERLINEAR` is named in the report as super-linear (torch's packed backward on a CPU is
O(T^2 B), pytorch/pytorch#149194; see the README's "Long sequences"). Nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from parity import flags
from shared.paths import writable_dir

IMPLS = ("torch_packed", "torch_padded", "jax_scan")
BASE = {"T": 100, "B": 128, "H": 128}
SWEEPS: dict[str, tuple[int, ...]] = {"T": (10, 30, 100, 300, 1000), "B": (1, 4, 16, 64, 256, 1024),
                                      "H": (64, 128, 256, 512, 1024)}
QUICK_SWEEPS: dict[str, tuple[int, ...]] = {"T": (10, 30), "B": (1, 4), "H": (8, 16)}
QUICK_BASE = {"T": 10, "B": 4, "H": 8}
VOCAB, CLASSES, EMBED = 60, 18, 32
SUPERLINEAR = 1.3  # a step-time slope above this between neighbouring points is reported as super-linear


def batches(t: int, b: int, n: int, seed: int = 0) -> list[Any]:
    """`n` batches of `b` random sequences, lengths uniform in [ceil(t/2), t], padded to t."""
    from shared.batching import pad

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        lengths = rng.integers(math.ceil(t / 2), t + 1, b)
        seqs = [rng.integers(2, VOCAB, n_).astype(np.int32) for n_ in lengths]
        out.append(pad(seqs, rng.integers(0, CLASSES, b), time=t))
    return out


def measure_point(impl: str, t: int, b: int, h: int, peak: float, *, min_seconds: float) -> dict[str, Any]:
    from parity.bench import MemoryProbe, _backend_step, measure, recurrent_flops
    from shared.backend import torch_kernel
    from shared.config import ModelConfig, TrainConfig

    backend = "jax" if impl == "jax_scan" else "torch"
    model_cfg = ModelConfig(VOCAB, CLASSES, cell="lstm", hidden_size=h, embed_dim=EMBED)
    train_cfg = TrainConfig(optimizer="adam", lr=1e-3, batch_size=b, clip_norm=5.0, seed=0)
    with torch_kernel(impl.removeprefix("torch_")) if backend == "torch" else nullcontext():
        step = _backend_step(backend, model_cfg, train_cfg, per_example=False)
    pool = batches(t, b, 2)
    memory = MemoryProbe("cpu", backend)
    memory.reset()
    timing = measure(step, pool, repeats=3, min_seconds=min_seconds)
    tokens = float(np.mean([float(x.lengths.sum()) for x in pool]))
    flops = float(np.mean([recurrent_flops(model_cfg, x) for x in pool]))
    seconds = timing["step_ms"] / 1e3
    return {"impl": impl, "backend": backend, "T": t, "B": b, "H": h, "step_ms": round(timing["step_ms"], 3),
            "tokens_per_s": tokens / seconds, "gflop_per_s": flops / seconds / 1e9,
            "flops_fraction": flops / seconds / peak, "peak_mem_mb": round(memory.peak_mb(), 1)}


def plan(sweeps: dict[str, tuple[int, ...]], base: dict[str, int], impls: tuple[str, ...]) -> list[dict[str, Any]]:
    jobs = []
    for axis, values in sweeps.items():
        for v in values:
            point = {**base, axis: v}
            jobs += [{"sweep": axis, "impl": impl, **point} for impl in impls]
    return jobs


def slopes(records: list[dict[str, Any]], axis: str, impl: str) -> list[tuple[int, int, float]]:
    """(x0, x1, d log step_ms / d log x) between neighbouring points of one sweep and impl."""
    pts = sorted((r[axis], r["step_ms"]) for r in records if r["sweep"] == axis and r["impl"] == impl)
    return [(x0, x1, math.log(y1 / y0) / math.log(x1 / x0)) for (x0, y0), (x1, y1) in itertools.pairwise(pts)]


def run(a: argparse.Namespace) -> dict[str, Any]:
    from tqdm.auto import tqdm

    from parity.bench import machine_info, matmul_peak, use_device

    use_device("cpu", ("torch", "jax"), a.threads)
    peaks = matmul_peak("cpu", ("torch", "jax"))
    sweeps, base = (QUICK_SWEEPS, QUICK_BASE) if a.quick else (SWEEPS, BASE)
    records = []
    for job in tqdm(plan(sweeps, base, a.impls), desc="bench-scaling", unit="run", disable=a.no_progress):
        point = measure_point(job["impl"], job["T"], job["B"], job["H"], max(peaks.values()),
                              min_seconds=a.min_seconds)
        records.append({"sweep": job["sweep"], **point})
    return {"machine": machine_info("cpu", ("torch", "jax")), "threads": a.threads, "base": base,
            "matmul_peak_flops": peaks, "records": records}


def markdown(report: dict[str, Any]) -> str:
    recs = report["records"]
    impls = [i for i in IMPLS if any(r["impl"] == i for r in recs)]
    m = report["machine"]
    base = report["base"]
    lines = [f"# bench-scaling (cpu): one Adam step of the LSTM classifier, embedding {EMBED}, ragged lengths in "
             f"[T/2, T]; base point T {base['T']}, B {base['B']}, H {base['H']}", "",
             f"{m.get('cpu', '')}; torch {m['versions'].get('torch')}, jax {m['versions'].get('jax')}; "
             f"threads: {report['threads'] or 'all'}", ""]
    for axis, title in (("T", "sequence length"), ("B", "batch size"), ("H", "hidden size")):
        lines += [f"## {title} ({axis})", "", "| " + axis + " | " + " | ".join(
            f"{i} ms | {i} tokens/s | {i} GFLOP/s" for i in impls) + " |",
            "| ---: |" + " ---: |" * (3 * len(impls))]
        for x in sorted({r[axis] for r in recs if r["sweep"] == axis}):
            cells = []
            for i in impls:
                r = next((r for r in recs if r["sweep"] == axis and r["impl"] == i and r[axis] == x), None)
                cells += ["", "", ""] if r is None else [f"{r['step_ms']:.1f}", f"{r['tokens_per_s']:,.0f}",
                                                         f"{r['gflop_per_s']:.1f}"]
            lines.append(f"| {x} | " + " | ".join(cells) + " |")
        if axis in ("T", "B"):
            lines += ["", f"Log-log slope of step time against {axis} (1 = linear):", ""]
            for i in impls:
                parts = [f"{x0}->{x1}: {s:.2f}" + (" **super-linear**" if s > SUPERLINEAR else "")
                         for x0, x1, s in slopes(recs, axis, i)]
                lines.append(f"- {i}: " + ", ".join(parts))
        lines.append("")
    return "\n".join(lines)


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = report["records"]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    for ax, (axis, label) in zip(axes, (("T", "sequence length T"), ("B", "batch size B"), ("H", "hidden size H")),
                                 strict=True):
        key = "gflop_per_s" if axis == "H" else "step_ms"
        for impl, style in zip(IMPLS, ("o-", "s-", "^-"), strict=True):
            pts = sorted((r[axis], r[key]) for r in recs if r["sweep"] == axis and r["impl"] == impl)
            if pts:
                ax.plot(*zip(*pts, strict=True), style, label=impl.replace("_", " "))
        if axis != "H":  # a dashed linear reference through the smallest jax point
            pts = sorted((r[axis], r[key]) for r in recs if r["sweep"] == axis and r["impl"] == "jax_scan")
            if pts:
                x0, y0 = pts[0]
                xs = [p[0] for p in pts]
                ax.plot(xs, [y0 * x / x0 for x in xs], "k--", lw=0.8, label="linear")
        ax.set(xscale="log", yscale="log", xlabel=label,
               ylabel="GFLOP/s (recurrent products)" if axis == "H" else "ms per training step")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.suptitle("How a training step scales (LSTM classifier, ragged batches, CPU)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def add_bench_scaling(sub: Any) -> None:
    p = sub.add_parser("bench-scaling", help="step time against sequence length, batch size and hidden size",
                       description=__doc__.splitlines()[0] + " Writes scaling.json, scaling.md and scaling.png.")
    p.add_argument("--impls", type=flags.split, default=IMPLS,
                   help=f"comma-separated among {', '.join(IMPLS)} (default all)")
    p.add_argument("--min-seconds", type=float, default=1.0,
                   help="time each point at least this long (seconds > 0; default 1)")
    p.add_argument("--threads", type=int, default=None, help="pin to this many CPUs (default: all)")
    p.add_argument("--quick", action="store_true", help="a tiny grid (smoke test, seconds)")
    p.add_argument("--out", type=Path, required=True, help="folder for scaling.json, scaling.md, scaling.png")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=cmd_bench_scaling)


def cmd_bench_scaling(a: argparse.Namespace) -> int:
    a.impls = flags.names(a.impls, IMPLS, "--impls")
    flags.positive_seconds(a.min_seconds, "--min-seconds")
    flags.threads(a.threads)
    out = writable_dir(a.out)  # last, and before minutes of work
    report = run(a)
    (out / "scaling.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "scaling.md").write_text(markdown(report))
    plot(report, out / "scaling.png")
    print(markdown(report))
    print(f"wrote {out}/scaling.json, scaling.md, scaling.png", file=sys.stderr)
    return 0
