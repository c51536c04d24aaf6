"""`seqbatch bench`: parse flags, run parity/bench.py, write bench.json, bench.md and the plots.

The measuring lives in parity/bench.py; this module only turns flags into a BenchConfig and
records into files people read (a markdown table with the target ratios, two PNG plots).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from parity import flags
from shared.errors import SeqbatchError
from shared.paths import writable_dir

FASTEST = "fastest"  # in TARGETS: the fastest of torch's correct kernels (packed, padded, compiled if run) there
# Targets the project set itself (figures to report, not tests): at batch 512, hidden 128, LSTM.
TARGET_AT = {"cell": "lstm", "hidden": 128, "batch_size": 512}
TARGETS: list[tuple[str, tuple[str, str], tuple[str, str], float]] = [
    ("torch batched / torch per-example", ("torch", "seqbatch"), ("torch", "per_example"), 100.0),
    ("jax batched / jax per-example", ("jax", "seqbatch"), ("jax", "per_example"), 100.0),
    ("jax batched / flax nn.RNN", ("jax", "seqbatch"), ("jax", "flax_nn_rnn"), 1.5),
    ("jax batched / torch packed", ("jax", "seqbatch"), ("torch", "seqbatch"), 1.5),
    ("jax batched / torch's fastest correct kernel (packed, padded or compiled)", ("jax", "seqbatch"),
     ("torch", FASTEST), 1.2),
    ("torch packed / torch padded nn.LSTM", ("torch", "seqbatch"), ("torch", "torch_padded"), 1.0),
]


def _csv(kind: type, names: dict[str, str] | None = None) -> Any:
    def parse(text: str) -> tuple[Any, ...]:
        try:
            items = [kind(names.get(t, t) if names else t) for t in text.split(",") if t]
        except ValueError as e:
            raise argparse.ArgumentTypeError(f"bad list {text!r}: {e}") from e
        if names and any(t not in names for t in text.split(",") if t):
            raise argparse.ArgumentTypeError(f"{text!r}: choose from {', '.join(names)}")
        return tuple(items)

    return parse


def add_bench(sub: Any) -> None:
    from parity.bench import CELL_NAMES

    p = sub.add_parser("bench", help="time batched vs per-example training on both backends, with anchors",
                       description="Measure training throughput (examples/s of one optimizer step) per backend, "
                                   "cell, hidden size and batch size on names data; the per-example baseline, "
                                   "length bucketing, JAX compile time, peak memory and matmul efficiency; "
                                   "anchors (flax nn.RNN, torch padded nn.LSTM, cuDNN on GPU). Writes bench.json, "
                                   "bench.md and PNG plots to --out.")
    p.add_argument("--backend", choices=("torch", "jax", "both"), default="both", help="which backends (default both)")
    p.add_argument("--cells", type=_csv(str, CELL_NAMES), default=("rnn_tanh", "lstm", "gru"),
                   help="comma-separated cells among rnn (tanh), lstm, gru (default all three)")
    p.add_argument("--hidden", type=_csv(int), default=(128, 512),
                   help="comma-separated hidden sizes (default 128,512)")
    p.add_argument("--batch-sizes", type=_csv(int), default=(1, 32, 128, 512, 2048),
                   help="comma-separated batch sizes (default 1,32,128,512,2048)")
    p.add_argument("--data", type=Path, default=None,
                   help="names folder of <Label>.txt files (e.g. ../shared/data/names); default: the embedded set")
    p.add_argument("--quick", action="store_true",
                   help="small grid (lstm, hidden 128, batch 32 and 512, anchors): a few minutes on a laptop CPU")
    p.add_argument("--out", type=Path, default=None, help="output folder (default parity/results/bench-<device>/)")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None,
                   help="where both backends run (default cuda when torch sees a GPU, else cpu)")
    p.add_argument("--jax-kernel", choices=("scan", "cudnn"), default="scan",
                   help="JAX LSTM kernel: the masked per-example scan (default) or cuDNN (GPU, float32 only)")
    p.add_argument("--repeats", type=int, default=3,
                   help="minimum timed steps per measurement, in whole passes over its batch pool (default 3)")
    p.add_argument("--per-example-n", type=int, default=None,
                   help="examples per per-example measurement (default 64; 16 with --quick)")
    p.add_argument("--threads", type=int, default=None,
                   help="pin the run to N CPUs and N torch threads (e.g. 1 on a machine shared with other jobs, "
                        "where multi-threaded torch stalls); default: all CPUs, each library's own threads")
    p.add_argument("--pad-multiple", type=int, default=8, metavar="M",
                   help="pad every batch to a multiple of M time steps, as `seqbatch train --bucket M` (default 8; "
                        "1 pads exactly: least padding for the masked scan, one JAX compilation per length)")
    p.add_argument("--torch-compile", action="store_true",
                   help="also time torch's padded kernel with its forward under torch.compile (impl "
                        "seqbatch_compiled; compilation in the warm-up, not in step_ms); counts as a torch path")
    p.add_argument("--isolate", action="store_true",
                   help="run each measurement in a fresh process, so that its peak_mem_mb is that path's alone "
                        "(slower: every process imports the libraries and loads the data)")
    p.add_argument("--no-anchors", action="store_true", help="skip the flax / torch-padded / cuDNN anchors")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=cmd_bench)


def _default_device() -> str:
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def check_flags(a: argparse.Namespace) -> Path:
    """Every flag of `seqbatch bench`, then the output folder (created, a probe written): before any work."""
    flags.at_least(a.repeats, 1, "--repeats")
    flags.all_at_least(a.hidden, 1, "--hidden")
    flags.all_at_least(a.batch_sizes, 1, "--batch-sizes")
    if not a.cells:
        raise SeqbatchError("--cells: give at least one of rnn, lstm, gru")
    flags.at_least(a.per_example_n, 1, "--per-example-n")
    flags.at_least(a.pad_multiple, 1, "--pad-multiple")
    flags.threads(a.threads)
    flags.existing(a.data)
    a.device = a.device or _default_device()
    return writable_dir(a.out or Path(__file__).resolve().parent / "results" / f"bench-{a.device}")


def cmd_bench(a: argparse.Namespace) -> int:
    from dataclasses import replace

    from parity.bench import BenchConfig, quick, run

    out = check_flags(a)
    device = a.device
    backends = ("torch", "jax") if a.backend == "both" else (a.backend,)
    cfg = BenchConfig(backends=backends, cells=a.cells, hiddens=a.hidden, batch_sizes=a.batch_sizes, data=a.data,
                      device=device, jax_kernel=a.jax_kernel, repeats=a.repeats, anchors=not a.no_anchors,
                      threads=a.threads, multiple=a.pad_multiple, torch_compile=a.torch_compile,
                      isolate=a.isolate)
    if a.quick:
        cfg = replace(quick(cfg), anchors=not a.no_anchors)
    if a.per_example_n is not None:
        cfg = replace(cfg, per_example_n=a.per_example_n)
    result = run(cfg, progress=not a.no_progress, log=lambda s: print(s, file=sys.stderr))
    for path in write_report(result, out):
        print(f"wrote {path}", file=sys.stderr)
    print(target_table(result["results"]))
    return 0


# ---- report ------------------------------------------------------------------------------------


def _find(results: list[dict[str, Any]], backend: str, impl: str, bucketed: bool, at: dict[str, Any]) -> Any:
    if impl == FASTEST:
        from parity.bench import TORCH_PATHS

        found = [_find(results, backend, i, bucketed, at) for i in TORCH_PATHS]
        return max((f for f in found if f is not None), default=None)
    for r in results:
        same = r["backend"] == backend and r["impl"] == impl and r["cell"] == at["cell"] and r["hidden"] == at["hidden"]
        # per-example throughput does not depend on the batch size: one record per cell and hidden size
        if same and (impl == "per_example" or (r["batch_size"] == at["batch_size"] and r["bucketed"] == bucketed)):
            return r["examples_per_s"]
    return None


def target_table(results: list[dict[str, Any]]) -> str:
    """The target ratios at batch 512 / hidden 128 / LSTM (or the nearest the run measured)."""
    at = dict(TARGET_AT)
    lstm = [r for r in results if r["cell"] == "lstm" and r["impl"] == "seqbatch"] or [
        r for r in results if r["impl"] == "seqbatch"]
    if lstm and not any(r["batch_size"] == 512 and r["hidden"] == 128 for r in lstm):
        at = {"cell": lstm[-1]["cell"], "hidden": lstm[-1]["hidden"], "batch_size": lstm[-1]["batch_size"]}
    multiple = next((r.get("pad_multiple", 8) for r in results), 8)
    rows = [f"Target ratios at {at['cell']}, hidden {at['hidden']}, batch {at['batch_size']} "
            "(plain: the epoch sampler; bucketed: length-sorted chunks of 16 batches; "
            f"lengths padded to a multiple of {multiple}):", "",
            "| ratio | target | plain | bucketed |", "| --- | --- | --- | --- |"]
    for name, (b1, i1), (b2, i2), goal in TARGETS:
        cells = []
        for bucketed in (False, True):
            num = _find(results, b1, i1, bucketed, at)
            den = _find(results, b2, i2, bucketed, at)  # anchors ran plain only: n/a when bucketed
            cells.append("n/a" if num is None or den is None else
                         f"{num / den:.2f}x {'met' if num / den >= goal else 'MISSED'}")
        rows.append(f"| {name} | >= {goal:g}x | {cells[0]} | {cells[1]} |")
    return "\n".join(rows)


COLUMNS = [("backend", "{}"), ("impl", "{}"), ("cell", "{}"), ("hidden", "{}"), ("batch_size", "{}"),
           ("bucketed", "{}"), ("examples_per_s", "{:,.0f}"), ("step_ms", "{:.2f}"),
           ("speedup_vs_per_example", "{:.1f}x"), ("padding_waste", "{:.0%}"), ("time_steps", "{:.1f}"),
           ("compile_s", "{:.2f}"), ("compilations", "{}"), ("peak_mem_mb", "{:,.0f}"), ("flops_fraction", "{:.1%}")]


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    peaks = ", ".join(f"{k} {v / 1e9:,.0f} GFLOP/s" for k, v in result["matmul_peak_flops"].items())
    lines = [f"# seqbatch bench ({result['device']})", "",
             f"- machine: {m.get('gpu') or m['cpu']}, {m['cpu_count']} CPUs, {m['platform']}",
             f"- versions: {', '.join(f'{k} {v}' for k, v in m['versions'].items())}",
             f"- data: {result['data']}; matmul peak measured here: {peaks}",
             "- examples/s of one optimizer step after warm-up (median pass over a pool of real batches); "
             "per-example = one unpadded sequence at a time, one update per batch", "",
             target_table(result["results"]), "", "## All measurements", "",
             "| " + " | ".join(c for c, _ in COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    for r in result["results"]:
        lines.append("| " + " | ".join(fmt.format(r[c]) if c in r else "" for c, fmt in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def plots(results: list[dict[str, Any]], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    batched = [r for r in results if r["impl"] != "per_example"]
    backends = sorted({r["backend"] for r in batched})
    paths = []
    for name, key, ylabel in (("throughput.png", "examples_per_s", "examples / s"),
                              ("speedup.png", "speedup_vs_per_example", "speedup over per-example")):
        fig, axes = plt.subplots(1, max(1, len(backends)), figsize=(6 * max(1, len(backends)), 4.5), squeeze=False)
        for ax, backend in zip(axes[0], backends, strict=False):
            series: dict[str, list[tuple[int, float]]] = defaultdict(list)
            for r in batched:
                if r["backend"] == backend and key in r:
                    label = f"{r['impl']} {r['cell']} h{r['hidden']}" + (" bucketed" if r["bucketed"] else "")
                    series[label].append((r["batch_size"], r[key]))
            for label, pts in sorted(series.items()):
                xs, ys = zip(*sorted(pts), strict=True)
                ax.plot(xs, ys, marker="o", ms=3, ls="--" if "bucketed" in label else "-", label=label)
            ax.set(xscale="log", yscale="log", xlabel="batch size", ylabel=ylabel, title=f"{backend} ({ylabel})")
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize=6)
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        paths.append(out / name)
    return paths


def write_report(result: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(result, indent=1))
    (out / "bench.md").write_text(markdown(result))
    return [out / "bench.json", out / "bench.md", *plots(result["results"], out)]
