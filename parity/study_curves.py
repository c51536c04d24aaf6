"""`python -m parity.study_curves SWEEP_DIR OUT.png`: a sweep's per-epoch training loss against
examples seen and against training seconds, one line per grid point and backend (mean over seeds,
a band of ± one standard deviation): the batch-size study of issue 14 (the mini-batch lesson's SGD
vs mini-batch vs full batch) reads "which converges fastest in time, which is most stable" here.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np


def curves(sweep: Path) -> dict[tuple[str, str], list[list[dict[str, float]]]]:
    """(point, backend) -> per seed, the epoch records (train_loss, examples, seconds)."""
    out: dict[tuple[str, str], list[list[dict[str, float]]]] = defaultdict(list)
    for line in (sweep / "sweep.jsonl").read_text().splitlines():
        cell = json.loads(line)
        if cell.get("status") != "ok":
            continue
        folder = Path(cell["folder"])
        if not folder.is_absolute() and not folder.exists():  # written relative to where the sweep ran
            folder = sweep / folder
        records = [json.loads(r) for r in (folder / "metrics.jsonl").read_text().splitlines()]
        epochs = [r for r in records if r.get("split") == "epoch"]
        seen = 0
        rows = []
        for r in epochs:
            seen += int(r.get("train_n", 0))
            rows.append({"loss": r["train_loss"], "examples": seen, "seconds": r["train_seconds"]})
        point = ",".join(f"{k}={v}" for k, v in sorted(cell["grid"].items())) or "default"
        out[(point, cell["backend"])].append(rows)
    return out


def plot(data: dict[tuple[str, str], list[list[dict[str, float]]]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for i, ((point, backend), runs) in enumerate(sorted(data.items())):
        n = min(len(r) for r in runs)
        loss = np.array([[e["loss"] for e in r[:n]] for r in runs])
        mean, std = loss.mean(0), loss.std(0)
        style = "-" if backend == "torch" else "--"
        for ax, key in ((axes[0], "examples"), (axes[1], "seconds")):
            x = np.mean([[e[key] for e in r[:n]] for r in runs], axis=0)
            ax.plot(x, mean, style, color=f"C{i // 2}", label=f"{point} {backend}")
            ax.fill_between(x, mean - std, mean + std, color=f"C{i // 2}", alpha=0.15)
    axes[0].set_xlabel("training examples seen")
    axes[1].set_xlabel("training seconds (mean over seeds)")
    axes[1].set_xscale("log")
    for ax in axes:
        ax.set_ylabel("epoch training loss (size-weighted)")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, ncol=2)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m parity.study_curves SWEEP_DIR OUT.png", file=sys.stderr)
        return 2
    sweep, out = Path(argv[0]), Path(argv[1])
    plot(curves(sweep), out, f"{sweep.name}: loss against examples seen and against time (mean ± std over seeds)")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
