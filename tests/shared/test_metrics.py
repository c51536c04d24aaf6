"""Top-k accuracy, balanced accuracy, confusion matrices, cross-entropy, softmax."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shared.metrics import classification_report, confusion, cross_entropy, softmax, top_k_accuracy

# Four examples, three classes. Rankings per row: [2,1,0], [0,1,2], [1,2,0], [0,2,1].
LOGITS = np.array(
    [
        [0.1, 0.5, 2.0],
        [3.0, 1.0, -1.0],
        [0.0, 2.0, 1.0],
        [1.0, -2.0, 0.5],
    ]
)
LABELS = np.array([2, 1, 0, 2])


def test_top_k_accuracy() -> None:
    assert top_k_accuracy(LOGITS, LABELS, 1) == pytest.approx(1 / 4)  # only row 0
    assert top_k_accuracy(LOGITS, LABELS, 2) == pytest.approx(3 / 4)  # rows 0, 1, 3
    assert top_k_accuracy(LOGITS, LABELS, 3) == pytest.approx(1.0)
    assert math.isnan(top_k_accuracy(LOGITS[:0], LABELS[:0], 1))


def test_top_k_breaks_ties_by_class_order() -> None:
    tied = np.zeros((2, 3))
    assert top_k_accuracy(tied, np.array([0, 1]), 1) == pytest.approx(0.5)


def test_balanced_accuracy_averages_per_class_recall() -> None:
    # Predictions argmax: [2, 0, 1, 0]. Recall: class 0 -> 0/1, class 1 -> 0/1, class 2 -> 1/2.
    report = classification_report(LOGITS, LABELS, loss=0.5)
    assert report["balanced_accuracy"] == pytest.approx((0 + 0 + 0.5) / 3)
    assert report["top1"] == pytest.approx(0.25) and report["top2"] == pytest.approx(0.75)
    assert report["n"] == 4 and report["loss"] == 0.5
    assert "loss" not in classification_report(LOGITS, LABELS)


def test_balanced_accuracy_is_not_fooled_by_the_majority_class() -> None:
    labels = np.array([0] * 9 + [1])
    always_zero = np.tile([1.0, 0.0], (10, 1))
    report = classification_report(always_zero, labels)
    assert report["top1"] == pytest.approx(0.9)
    assert report["balanced_accuracy"] == pytest.approx(0.5)


def test_confusion_rows_are_true_labels() -> None:
    matrix = confusion(LOGITS, LABELS, 3)
    assert matrix.tolist() == [[0, 1, 0], [1, 0, 0], [1, 0, 1]]
    assert matrix.sum() == len(LABELS)


def test_confusion_keeps_classes_that_never_occur() -> None:
    matrix = confusion(LOGITS, LABELS, 5)
    assert matrix.shape == (5, 5)
    assert matrix[3:].sum() == 0 and matrix[:, 3:].sum() == 0


def test_cross_entropy_matches_log_softmax() -> None:
    ce = cross_entropy(LOGITS, LABELS)
    expected = -np.log(softmax(LOGITS)[np.arange(4), LABELS])
    np.testing.assert_allclose(ce, expected, rtol=1e-12)
    assert cross_entropy(np.array([[0.0, 0.0]]), np.array([1]))[0] == pytest.approx(math.log(2))


def test_softmax_survives_large_logits() -> None:
    p = softmax(np.array([[1000.0, 0.0], [-1000.0, -1000.0]], dtype=np.float32))
    assert np.isfinite(p).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_allclose(p[1], [0.5, 0.5])
