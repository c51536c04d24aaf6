"""Plots people would rather look at than read: loss curves and confusion matrices (matplotlib, Agg)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def train_series(ax: Any, steps: Sequence[int], losses: Sequence[float], label: str) -> None:
    """The loss of every step, faint, and (from 20 steps on) its moving mean over ~2 % of the run."""
    ax.plot(steps, losses, lw=0.6, alpha=0.4, color="C0", label=label)
    if len(losses) >= 20:
        w = max(5, len(losses) // 50)
        smooth = np.convolve(losses, np.ones(w) / w, mode="valid")
        ax.plot(steps[w - 1 :], smooth, color="C0", label=f"{label} ({w}-step mean)")


def loss_curve(
    steps: Sequence[int],
    losses: Sequence[float],
    path: str | Path,
    *,
    val: dict[str, Sequence[tuple[int, float]]] | None = None,
    title: str = "",
) -> None:
    """Training loss per step (raw and smoothed), with optional validation series on a second axis."""
    fig, ax = plt.subplots(figsize=(7, 4))
    train_series(ax, steps, losses, "train loss")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy")
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if val:
        ax2 = ax.twinx()
        for i, (name, series) in enumerate(val.items()):
            if series:
                xs, ys = zip(*series, strict=True)
                ax2.plot(xs, ys, marker="o", ms=3, color=f"C{i + 1}", label=name)
        ax2.set_ylabel("validation")
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    ax.legend(handles, labels, loc="center right", fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def confusion_plot(matrix: np.ndarray, label_names: Sequence[str], path: str | Path, *, title: str = "") -> None:
    """Row-normalised confusion matrix (rows: true label), counts written in the cells."""
    rows = matrix.sum(axis=1, keepdims=True)
    norm = np.divide(matrix, rows, out=np.zeros_like(matrix, dtype=float), where=rows > 0)
    n = len(label_names)
    fig, ax = plt.subplots(figsize=(max(5, 0.45 * n + 2), max(4, 0.45 * n + 1.5)))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), label_names, rotation=90, fontsize=8)
    ax.set_yticks(range(n), label_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(n):
        for j in range(n):
            if matrix[i, j]:
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=6,
                        color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of true label")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def lm_curves(
    steps: Sequence[int], losses: Sequence[float], val: Sequence[tuple[int, float]], path: str | Path, *,
    title: str = "",
) -> None:
    """A language model's training loss per step (raw and smoothed) and validation loss, both in nats/char."""
    fig, ax = plt.subplots(figsize=(7, 4))
    train_series(ax, steps, losses, "train")
    if val:
        xs, ys = zip(*val, strict=True)
        ax.plot(xs, ys, marker="o", ms=3, color="C1", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("nats per character")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def epoch_curves(records: Sequence[dict[str, Any]], path: str | Path, *, title: str = "",
                 train_label: str = "train (probe, eval mode)") -> None:
    """Per-epoch accuracy (left) and loss (right), train beside validation; the mean of the training
    batches' losses too, dashed, where the records have it (`train_batch_loss`)."""
    x = [r["epoch"] for r in records]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, key, name in ((axes[0], "accuracy", "accuracy"), (axes[1], "loss", "cross-entropy")):
        ax.plot(x, [r[f"train_{key}"] for r in records], marker="o", ms=3, label=train_label)
        ax.plot(x, [r[f"val_{key}"] for r in records], marker="o", ms=3, label="validation")
        if key == "loss" and all("train_batch_loss" in r for r in records):
            ax.plot(x, [r["train_batch_loss"] for r in records], ls="--", lw=1, label="train batches (mean)")
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
