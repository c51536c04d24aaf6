"""Classification metrics over logits (scikit-learn where it has them)."""

from __future__ import annotations

import numpy as np
from jaxtyping import Float, Int
from sklearn.metrics import balanced_accuracy_score, confusion_matrix

# The validation metrics `--keep-best` can select on (shared/training.py `fit(select=...)`).
SELECT: tuple[str, ...] = ("top1", "balanced_accuracy")


def top_k_accuracy(logits: Float[np.ndarray, "n classes"], labels: Int[np.ndarray, " n"], k: int) -> float:
    """Fraction of examples whose label is among the k highest logits (ties broken by class order)."""
    if len(labels) == 0:
        return float("nan")
    top = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return float((top == np.asarray(labels)[:, None]).any(axis=1).mean())


def classification_report(
    logits: Float[np.ndarray, "n classes"], labels: Int[np.ndarray, " n"], *, loss: float | None = None
) -> dict[str, float | int]:
    """top1, top2, balanced accuracy and count (and the mean loss when given), as one flat dict."""
    labels = np.asarray(labels)
    pred = logits.argmax(axis=1)
    report: dict[str, float | int] = {
        "top1": top_k_accuracy(logits, labels, 1),
        "top2": top_k_accuracy(logits, labels, 2),
        "balanced_accuracy": float(balanced_accuracy_score(labels, pred)) if len(labels) else float("nan"),
        "n": len(labels),
    }
    if loss is not None:
        report["loss"] = loss
    return report


def confusion(
    logits: Float[np.ndarray, "n classes"], labels: Int[np.ndarray, " n"], num_classes: int
) -> Int[np.ndarray, "classes classes"]:
    """Rows: true label; columns: predicted label."""
    return confusion_matrix(labels, logits.argmax(axis=1), labels=list(range(num_classes)))


def cross_entropy(logits: Float[np.ndarray, "n classes"], labels: Int[np.ndarray, " n"]) -> Float[np.ndarray, " n"]:
    """Per-example cross-entropy in float64 (log-sum-exp shifted by the max)."""
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -logp[np.arange(len(labels)), labels]


def softmax(logits: Float[np.ndarray, "n classes"]) -> Float[np.ndarray, "n classes"]:
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
