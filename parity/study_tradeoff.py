"""`python -m parity.study_tradeoff OUT.png SWEEP_DIR [SWEEP_DIR ...]`: the names imbalance study of
issue 14 (study 3) as one picture and one table. Each finished run is a point (test top-1 against
test balanced accuracy), one colour per grid point, one marker per backend, the mean over seeds
drawn large; the table (printed as markdown) gives mean ± std of top-1, top-2 and balanced accuracy
and the training seconds per grid point and backend, over every sweep folder given (a second
sweep with another fixed flag, e.g. `--sampler uniform`, is labelled by its folder name).
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

METRICS = ("top1", "top2", "balanced_accuracy")


def runs(sweeps: list[Path]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """(label, backend) -> the finished runs' test records (plus `train_seconds`), in file order.
    The label is the grid point, prefixed by the sweep's folder name when several sweeps are given."""
    out: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for sweep in sweeps:
        for line in (sweep / "sweep.jsonl").read_text().splitlines():
            cell = json.loads(line)
            if cell.get("status") != "ok":
                continue
            point = ",".join(f"{k}={v}" for k, v in sorted(cell["grid"].items())) or "default"
            label = f"{sweep.name}: {point}" if len(sweeps) > 1 else point
            out[(label, cell["backend"])].append({**cell["test"], "train_seconds": cell["train_seconds"]})
    return out


def table(data: dict[tuple[str, str], list[dict[str, Any]]]) -> str:
    """Markdown: per (label, backend), mean ± std (ddof 1) over seeds, in percent for the accuracies."""
    lines = ["| configuration | backend | seeds | test top-1 % | test top-2 % | test balanced acc. % | train s |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for (label, backend), rows in sorted(data.items()):
        cells = []
        for key in (*METRICS, "train_seconds"):
            v = np.array([r[key] for r in rows], float) * (100 if key in METRICS else 1)
            std = v.std(ddof=1) if len(v) > 1 else 0.0
            cells.append(f"{v.mean():.1f} ± {std:.1f}")
        lines.append(f"| {label} | {backend} | {len(rows)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(data: dict[tuple[str, str], list[dict[str, Any]]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = sorted({label for label, _ in data})
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for (label, backend), rows in sorted(data.items()):
        color = f"C{labels.index(label) % 10}"
        marker = "o" if backend == "torch" else "s"
        x = np.array([r["top1"] for r in rows]) * 100
        y = np.array([r["balanced_accuracy"] for r in rows]) * 100
        ax.scatter(x, y, color=color, marker=marker, alpha=0.35, s=18)
        ax.scatter(x.mean(), y.mean(), color=color, marker=marker, s=90, edgecolor="black",
                   label=f"{label} ({backend})")
    ax.set_xlabel("test top-1 accuracy (%)")
    ax.set_ylabel("test balanced accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: python -m parity.study_tradeoff OUT.png SWEEP_DIR [SWEEP_DIR ...]", file=sys.stderr)
        return 2
    out, sweeps = Path(argv[0]), [Path(a) for a in argv[1:]]
    data = runs(sweeps)
    if not data:
        print(f"no finished runs in {', '.join(map(str, sweeps))}", file=sys.stderr)
        return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    plot(data, out, "test top-1 against balanced accuracy: each run small, the mean over seeds large "
                    "(circles torch, squares jax)")
    print(table(data), end="")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
