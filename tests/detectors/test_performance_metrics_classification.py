"""Classification metrics against scikit-learn and a numpy ECE loop, bad input, and the CUDA
check of all three metric kinds against the CPU. Tolerances: see ``performance_helpers``.
"""

from __future__ import annotations

import inspect
import warnings
import zlib
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from detectors.performance.classification import classification_metrics
from detectors.performance.detection import detection_metrics
from detectors.performance.regression import regression_metrics
from tests.detectors.performance_helpers import REGRESSION, TOL, _missed_box_case


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _dataset(
    name: str,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, tuple[Any, ...] | None]:
    """(y_true, y_pred, probabilities, classes) of each named case, seeded."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    if name == "binary ints":
        y = rng.integers(0, 2, 300)
        proba = _softmax(rng.normal(size=(300, 2)) + 1.5 * np.eye(2)[y])
        return y, None, proba, None
    if name == "multiclass strings":
        labels = np.array(["cat", "dog", "eel", "fox"])
        idx = rng.integers(0, 4, 400)
        proba = _softmax(rng.normal(size=(400, 4)) + np.eye(4)[idx])
        # y_pred given separately and not the argmax: a noisy copy of the truth
        pred = np.where(rng.random(400) < 0.6, idx, rng.integers(0, 4, 400))
        return labels[idx], labels[pred], proba, None
    if name == "binary tied scores":
        y = rng.integers(0, 2, 250)
        p = np.round(np.clip(0.35 + 0.3 * y + rng.normal(0, 0.2, 250), 0, 1), 1)
        return y, None, np.column_stack([1 - p, p]), None
    if name == "multiclass tied scores":
        rows = _softmax(rng.normal(size=(6, 3)))  # six distinct rows: every column has ties
        pick = rng.integers(0, 6, 300)
        y = np.where(rng.random(300) < 0.5, rows[pick].argmax(1), rng.integers(0, 3, 300))
        return y + 10, None, rows[pick], None
    if name == "class never predicted":
        labels = np.array(["a", "b", "c"])
        idx = rng.integers(0, 3, 200)
        pred = np.where(rng.random(200) < 0.7, idx, rng.integers(0, 3, 200))
        pred[pred == 2] = 0  # "c" occurs in y_true but is never predicted
        proba = _softmax(rng.normal(size=(200, 3)))
        return labels[idx], labels[pred], proba, None
    if name == "custom class order":
        labels = np.array(["yes", "no"])
        idx = rng.integers(0, 2, 150)
        proba = _softmax(rng.normal(size=(150, 2)) + np.eye(2)[idx])
        return labels[idx], None, proba, ("yes", "no")  # positive class: "no"
    if name == "class absent from y_true":
        y = rng.integers(0, 2, 120)  # class 2 never occurs: AUC undefined
        pred = rng.integers(0, 3, 120)
        return y, pred, _softmax(rng.normal(size=(120, 3))), (0, 1, 2)
    raise KeyError(name)


CASES = [
    "binary ints",
    "multiclass strings",
    "binary tied scores",
    "multiclass tied scores",
    "class never predicted",
    "custom class order",
    "class absent from y_true",
]


def _sk_log_loss(y: np.ndarray, proba: np.ndarray, labels: list[Any]) -> float:
    # scikit-learn reads the columns in sorted label order whatever order labels= gives
    order = sorted(range(len(labels)), key=lambda i: labels[i])
    labels, proba = [labels[i] for i in order], proba[:, order]
    # scikit-learn 1.9 renamed y_pred to y_proba; older releases only know y_pred
    if "y_proba" in inspect.signature(skm.log_loss).parameters:
        return float(skm.log_loss(y, y_proba=proba, labels=labels))
    return float(skm.log_loss(y, proba, labels=labels))


def _ece_loop(proba: np.ndarray, y_idx: np.ndarray, n_bins: int) -> float:
    """Top-label ECE the slow way: bin by bin, |accuracy - confidence| weighted by bin size."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    conf, top = proba.max(axis=1), proba.argmax(axis=1)
    total = 0.0
    for b in range(n_bins):
        lower_ok = conf > edges[b] if b > 0 else conf >= edges[b]
        members = lower_ok & (conf <= edges[b + 1])
        if members.any():
            gap = abs(np.mean(top[members] == y_idx[members]) - np.mean(conf[members]))
            total += members.mean() * gap
    return total


@pytest.mark.parametrize("name", CASES)
def test_classification_matches_sklearn(name: str) -> None:
    y, pred, proba, classes = _dataset(name)
    m = classification_metrics(y, pred, probabilities=proba, classes=classes, device="cpu")
    assert proba is not None
    seen = set(y.tolist()) | (set() if pred is None else set(pred.tolist()))
    labels = list(classes) if classes is not None else sorted(seen)
    assert list(m.classes) == labels
    y_pred = pred if pred is not None else np.asarray(labels)[proba.argmax(axis=1)]
    assert m.n == len(y)
    assert m.accuracy == pytest.approx(skm.accuracy_score(y, y_pred), abs=TOL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true"
        balanced = skm.balanced_accuracy_score(y, y_pred)
    assert m.balanced_accuracy == pytest.approx(balanced, abs=TOL)
    p, r, f, s = skm.precision_recall_fscore_support(y, y_pred, labels=labels, zero_division=0)
    np.testing.assert_allclose(m.precision, p, atol=TOL)
    np.testing.assert_allclose(m.recall, r, atol=TOL)
    np.testing.assert_allclose(m.f1, f, atol=TOL)
    np.testing.assert_array_equal(m.support, s)
    for average in ("macro", "micro"):
        expected = skm.precision_recall_fscore_support(
            y, y_pred, labels=labels, average=average, zero_division=0
        )
        got = [getattr(m, f"{k}_{average}") for k in ("precision", "recall", "f1")]
        np.testing.assert_allclose(got, expected[:3], atol=TOL)
    np.testing.assert_array_equal(
        m.confusion_matrix, skm.confusion_matrix(y, y_pred, labels=labels)
    )
    assert m.log_loss == pytest.approx(_sk_log_loss(y, proba, labels), rel=TOL)
    y_idx = np.array([labels.index(v) for v in y.tolist()])
    assert m.expected_calibration_error == pytest.approx(_ece_loop(proba, y_idx, 10), abs=TOL)

    if name == "class absent from y_true":
        assert m.roc_auc is None
    elif len(labels) == 2:
        expected_auc = skm.roc_auc_score(y == labels[1], proba[:, 1])
        assert m.roc_auc == pytest.approx(expected_auc, abs=TOL)
    else:
        expected_auc = skm.roc_auc_score(
            y, proba, multi_class="ovr", average="macro", labels=labels
        )
        assert m.roc_auc == pytest.approx(expected_auc, abs=TOL)


def test_tied_scores_really_tie() -> None:
    """The tie cases would test nothing if the rounding left every score distinct."""
    for name in ("binary tied scores", "multiclass tied scores"):
        proba = _dataset(name)[2]
        assert proba is not None
        assert len(np.unique(proba[:, 1])) <= 11


def test_auc_and_ece_by_hand() -> None:
    # positives score 0.8 and 0.4, negatives 0.4 and 0.1: pairs (0.8 > both) + (0.4 = 0.4 -> 1/2)
    # + (0.4 > 0.1) = 3.5 of 4
    # rows: (0.9, 0.1) y=0, (0.6, 0.4) y=0, (0.6, 0.4) y=1, (0.2, 0.8) y=1
    p = np.array([0.1, 0.4, 0.4, 0.8])
    m = classification_metrics(
        [0, 0, 1, 1], probabilities=np.column_stack([1 - p, p]), device="cpu"
    )
    assert m.roc_auc == pytest.approx(3.5 / 4, abs=TOL)
    # confidences 0.9, 0.6, 0.6, 0.8 -> bins (0.8, 0.9]: 1 row, correct, gap 0.1;
    # (0.5, 0.6]: 2 rows, 1 correct, gap |0.5 - 0.6| = 0.1; (0.7, 0.8]: 1 row, correct, gap 0.2
    # ECE = (1 * 0.1 + 2 * 0.1 + 1 * 0.2) / 4 = 0.125
    assert m.expected_calibration_error == pytest.approx(0.125, abs=TOL)
    assert m.log_loss == pytest.approx(-np.mean(np.log([0.9, 0.6, 0.4, 0.8])), rel=TOL)


def test_ece_bin_count_changes_the_answer() -> None:
    y, _, proba, _ = _dataset("multiclass strings")
    assert proba is not None
    y_idx = np.unique(y, return_inverse=True)[1]
    for n_bins in (1, 3, 15):
        m = classification_metrics(y, probabilities=proba, n_bins=n_bins, device="cpu")
        assert m.expected_calibration_error == pytest.approx(
            _ece_loop(proba, y_idx, n_bins), abs=TOL
        )
    one = classification_metrics(y, probabilities=proba, n_bins=1, device="cpu")
    # a single bin: |overall accuracy - mean confidence|
    assert one.expected_calibration_error == pytest.approx(
        abs(one.accuracy - proba.max(axis=1).mean()), abs=TOL
    )


def test_one_dimensional_binary_probabilities() -> None:
    y, _, proba, _ = _dataset("binary ints")
    assert proba is not None
    full = classification_metrics(y, probabilities=proba, device="cpu")
    short = classification_metrics(y, probabilities=proba[:, 1], device="cpu")
    assert short.roc_auc == pytest.approx(full.roc_auc, abs=TOL)
    assert short.log_loss == pytest.approx(full.log_loss, rel=1e-9)


def test_single_class_window_still_scores() -> None:
    m = classification_metrics(["a", "a", "a"], ["a", "a", "a"], device="cpu")
    assert m.classes == ("a",) and m.accuracy == 1.0 and m.f1_macro == 1.0
    assert m.roc_auc is None and m.log_loss is None and m.expected_calibration_error is None


label_lists = st.lists(st.integers(0, 3), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_counts_match_sklearn_on_random_labels(data: st.DataObject) -> None:
    y = np.array(data.draw(label_lists))
    pred = np.array(data.draw(st.lists(st.integers(0, 3), min_size=len(y), max_size=len(y))))
    m = classification_metrics(y, pred, classes=[0, 1, 2, 3], device="cpu")
    np.testing.assert_array_equal(
        m.confusion_matrix, skm.confusion_matrix(y, pred, labels=[0, 1, 2, 3])
    )
    expected = skm.precision_recall_fscore_support(
        y, pred, labels=[0, 1, 2, 3], average="macro", zero_division=0
    )
    np.testing.assert_allclose(
        [m.precision_macro, m.recall_macro, m.f1_macro], expected[:3], atol=TOL
    )
    assert 0.0 <= m.balanced_accuracy <= 1.0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 4)), min_size=2, max_size=40))
def test_binary_auc_matches_sklearn_with_heavy_ties(rows: list[tuple[bool, int]]) -> None:
    y = np.array([r[0] for r in rows], dtype=int)
    p = np.array([r[1] for r in rows]) / 4.0
    m = classification_metrics(y, probabilities=p, classes=[0, 1], device="cpu")
    if y.min() == y.max():
        assert m.roc_auc is None
    else:
        assert m.roc_auc is not None
        assert m.roc_auc == pytest.approx(skm.roc_auc_score(y, p), abs=TOL)
        flipped = classification_metrics(y, probabilities=1 - p, classes=[0, 1], device="cpu")
        assert flipped.roc_auc == pytest.approx(1 - m.roc_auc, abs=TOL)


# ---- bad input -------------------------------------------------------------------------------


def test_classification_rejects_bad_input() -> None:
    proba = np.array([[0.3, 0.7], [0.5, 0.5], [0.9, 0.1]])
    with pytest.raises(ValueError, match="y_pred has 2 rows but y_true has 3"):
        classification_metrics([0, 1, 1], [0, 1], device="cpu")
    with pytest.raises(ValueError, match="probabilities has 3 rows but y_true has 2"):
        classification_metrics([0, 1], probabilities=proba, device="cpu")
    off = proba.copy()
    off[1] = [0.5, 0.5 + 2e-6]
    with pytest.raises(ValueError, match="sum to 1"):
        classification_metrics([0, 1, 1], probabilities=off, device="cpu")
    off[1] = [0.5, 0.5 + 1e-8]  # within the tolerance
    assert classification_metrics([0, 1, 1], probabilities=off, device="cpu").n == 3
    with pytest.raises(ValueError, match="3 columns but there are 2 classes"):
        classification_metrics(
            [0, 1], probabilities=np.full((2, 3), 1 / 3), classes=[0, 1], device="cpu"
        )
    with pytest.raises(ValueError, match="pass classes="):
        classification_metrics([0, 1], probabilities=np.full((2, 3), 1 / 3), device="cpu")
    with pytest.raises(ValueError, match=r"y_pred holds labels that are not among .*\['z'\]"):
        classification_metrics(["a", "b"], ["a", "z"], classes=["a", "b"], device="cpu")
    with pytest.raises(ValueError, match="y_true holds labels"):
        classification_metrics(["a", "q"], ["a", "b"], classes=["a", "b"], device="cpu")
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        classification_metrics([0, 1], probabilities=[[1.2, -0.2], [0.5, 0.5]], device="cpu")
    with pytest.raises(ValueError, match="1-D"):
        classification_metrics([[0, 1]], [[0, 1]], device="cpu")
    with pytest.raises(ValueError, match="y_pred, probabilities, or both"):
        classification_metrics([0, 1], device="cpu")
    with pytest.raises(ValueError, match="empty"):
        classification_metrics([], [], device="cpu")
    with pytest.raises(ValueError, match="repeat"):
        classification_metrics([0, 1], [0, 1], classes=[0, 1, 1], device="cpu")
    with pytest.raises(ValueError, match="n_bins"):
        classification_metrics([0, 1], probabilities=proba[:2], n_bins=0, device="cpu")


# ---- CUDA ------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    y, pred, proba, _ = _dataset("multiclass strings")
    cpu = classification_metrics(y, pred, probabilities=proba, device="cpu")
    gpu = classification_metrics(y, pred, probabilities=proba, device="cuda")
    np.testing.assert_array_equal(gpu.confusion_matrix, cpu.confusion_matrix)
    for field in ("roc_auc", "log_loss", "expected_calibration_error", "f1_macro"):
        assert getattr(gpu, field) == pytest.approx(getattr(cpu, field), abs=TOL)
    gt, boxes = _missed_box_case()
    assert detection_metrics(gt, boxes, classes=["cat"], device="cuda").average_precision[
        0
    ] == pytest.approx(0.6875, abs=TOL)
    r = REGRESSION["normal"][0]
    assert regression_metrics(r, r[::-1], device="cuda").r2 == pytest.approx(
        regression_metrics(r, r[::-1], device="cpu").r2, rel=TOL
    )
