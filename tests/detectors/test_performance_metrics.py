"""Realized performance metrics against scikit-learn, a numpy ECE loop and hand-worked mAP.

Tolerances: classification and regression metrics to 1e-12 (absolute for values in [0, 1],
relative otherwise): both sides are the same few sums of float64 values, only in another
summation order. Confusion matrices, counts and hand-worked detection fixtures are compared
exactly or to 1e-12 (the fixtures use boxes whose IoU and AP are exact small fractions).
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
from detectors.performance.detection import Box, box_iou, detection_metrics
from detectors.performance.regression import regression_metrics

RNG = np.random.default_rng(20260301)
TOL = 1e-12


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


# ---- regression ------------------------------------------------------------------------------

REGRESSION = {
    "normal": (RNG.normal(5, 2, 300), None),
    "zeros in y_true (MAPE epsilon)": (np.array([0.0, 1.0, -2.0, 0.0, 3.5, 4.0]), None),
    "large scale": (RNG.exponential(1e6, 200), None),
    "two rows": (np.array([1.0, 3.0]), np.array([2.0, 2.5])),
    "constant target, imperfect": (np.full(5, 3.0), np.array([3.0, 3.0, 2.0, 3.0, 4.0])),
    "constant target, perfect": (np.full(4, -1.5), np.full(4, -1.5)),
}


@pytest.mark.parametrize("name", list(REGRESSION))
def test_regression_matches_sklearn(name: str) -> None:
    y, pred = REGRESSION[name]
    if pred is None:
        pred = y + np.random.default_rng(len(name)).normal(0, np.abs(y).mean() / 5, len(y))
    m = regression_metrics(y, pred, device="cpu")
    assert m.n == len(y)
    assert m.mae == pytest.approx(skm.mean_absolute_error(y, pred), rel=TOL)
    assert m.rmse == pytest.approx(skm.root_mean_squared_error(y, pred), rel=TOL)
    assert m.mape == pytest.approx(skm.mean_absolute_percentage_error(y, pred), rel=TOL)
    assert m.r2 == pytest.approx(skm.r2_score(y, pred), rel=TOL, abs=TOL)


def test_regression_single_row_and_bad_input() -> None:
    assert np.isnan(regression_metrics([1.0], [2.0], device="cpu").r2)
    with pytest.raises(ValueError, match="must match"):
        regression_metrics([1.0, 2.0], [1.0], device="cpu")
    with pytest.raises(ValueError, match="finite"):
        regression_metrics([1.0, np.nan], [1.0, 2.0], device="cpu")
    with pytest.raises(ValueError, match="1-D"):
        regression_metrics([[1.0, 2.0]], [[1.0, 2.0]], device="cpu")
    with pytest.raises(ValueError, match="empty"):
        regression_metrics([], [], device="cpu")


# values in cents: squares of tiny floats (1e-293) underflow to 0 in any implementation
finite = st.integers(-(10**8), 10**8).map(lambda v: v / 100)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(finite, finite), min_size=2, max_size=30))
def test_regression_invariants(rows: list[tuple[float, float]]) -> None:
    y, pred = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
    m = regression_metrics(y, pred, device="cpu")
    assert 0.0 <= m.mae <= m.rmse * (1 + 1e-12)
    assert m.r2 <= 1.0
    assert m.mae == pytest.approx(skm.mean_absolute_error(y, pred), rel=1e-12, abs=1e-300)


# ---- detection -------------------------------------------------------------------------------


def test_iou_of_hand_computed_boxes() -> None:
    a = [[0, 0, 2, 2]]
    others = [
        [1, 1, 3, 3],  # overlap 1x1 = 1, union 4 + 4 - 1 = 7
        [0, 0, 2, 1],  # inside, half the area: 2 / 4
        [2, 0, 4, 2],  # touching edges only: 0
        [5, 5, 6, 6],  # apart: 0
        [0, 0, 2, 2],  # identical: 1
        [-1, -1, 3, 3],  # contains a: 4 / 16
    ]
    np.testing.assert_allclose(
        box_iou(a, others, device="cpu"), [[1 / 7, 0.5, 0.0, 0.0, 1.0, 0.25]], atol=TOL
    )
    assert box_iou([[1, 1, 1, 1]], [[1, 1, 1, 1]], device="cpu")[0, 0] == 0.0  # no area at all
    assert box_iou(np.zeros((0, 4)), a, device="cpu").shape == (0, 1)


def test_detection_duplicate_and_wrong_class() -> None:
    gt = [[Box("cat", 0, 0, 10, 10), Box("cat", 20, 20, 30, 30)]]
    pred = [
        [
            Box("cat", 0, 0, 10, 10, 0.9),  # IoU 1 with the first cat: TP
            Box("cat", 1, 1, 10, 10, 0.8),  # IoU 0.81 with the same, already taken cat: FP
            Box("dog", 20, 20, 30, 30, 0.7),  # right place, wrong class (no dog in truth): FP
        ]
    ]
    m = detection_metrics(gt, pred, classes=["cat", "dog"], device="cpu")
    # cat, by score: TP, FP -> P = 1, 1/2 at R = 1/2, 1/2; envelope 1 up to R = 1/2, then 0
    # AP = 1/2 * 1 = 0.5. dog has no ground truth: AP NaN, left out of mAP -> mAP = 0.5
    assert m.average_precision[0] == pytest.approx(0.5, abs=TOL)
    assert np.isnan(m.average_precision[1])
    assert m.mean_average_precision == pytest.approx(0.5, abs=TOL)
    np.testing.assert_allclose(m.precision, [0.5, 0.0], atol=TOL)
    np.testing.assert_allclose(m.recall, [0.5, 0.0], atol=TOL)
    assert m.true_positives.tolist() == [1, 0] and m.n_predictions.tolist() == [2, 1]
    assert m.n_ground_truth.tolist() == [2, 0]
    # micro: 1 TP of 3 predictions, 1 of 2 ground-truth boxes
    assert m.precision_overall == pytest.approx(1 / 3, abs=TOL)
    assert m.recall_overall == pytest.approx(0.5, abs=TOL)


def _missed_box_case() -> tuple[list[list[Box]], list[list[Box]]]:
    gt = [
        [
            Box("cat", 0, 0, 4, 4),
            Box("cat", 10, 10, 14, 14),
            Box("cat", 20, 0, 24, 4),
            Box("cat", 40, 40, 44, 44),  # never predicted: a miss
        ]
    ]
    pred = [
        [
            Box("cat", 0, 0, 4, 2, 0.95),  # IoU 8 / 16 = 0.5 exactly: matches (>=)
            Box("cat", 10, 10, 14, 13, 0.9),  # IoU 12 / 16 = 0.75: TP
            Box("cat", 30, 30, 34, 34, 0.8),  # no overlap: FP
            Box("cat", 20, 0, 24, 3, 0.3),  # IoU 0.75 with the third: TP, but late
        ]
    ]
    return gt, pred


def test_detection_missed_box_and_envelope() -> None:
    gt, pred = _missed_box_case()
    m = detection_metrics(gt, pred, classes=["cat"], device="cpu")
    # by score: TP TP FP TP -> P = 1, 1, 2/3, 3/4 at R = 1/4, 1/2, 1/2, 3/4
    # envelope (max to the right): 1, 1, 3/4, 3/4
    # AP = 1/4 * 1 + 1/4 * 1 + 0 * 3/4 + 1/4 * 3/4 = 0.6875 (R never reaches 1: a miss)
    assert m.average_precision[0] == pytest.approx(0.6875, abs=TOL)
    assert m.mean_average_precision == pytest.approx(0.6875, abs=TOL)
    assert m.precision[0] == pytest.approx(0.75, abs=TOL)
    assert m.recall[0] == pytest.approx(0.75, abs=TOL)
    # only scores >= 0.5 count for precision/recall: TP TP FP -> 2/3 and 2/4; AP unchanged
    cut = detection_metrics(gt, pred, classes=["cat"], score_threshold=0.5, device="cpu")
    assert cut.precision[0] == pytest.approx(2 / 3, abs=TOL)
    assert cut.recall[0] == pytest.approx(0.5, abs=TOL)
    assert cut.average_precision[0] == pytest.approx(0.6875, abs=TOL)
    # a stricter IoU: the 0.5 box becomes an FP -> FP TP FP TP: P = 0, 1/2, 1/3, 1/2 at
    # R = 0, 1/4, 1/4, 1/2; envelope 1/2 everywhere up to R = 1/2 -> AP = 1/2 * 1/2 = 0.25
    strict = detection_metrics(gt, pred, classes=["cat"], iou_threshold=0.6, device="cpu")
    assert strict.average_precision[0] == pytest.approx(0.25, abs=TOL)


def test_detection_several_images() -> None:
    gt = [
        [Box("cat", 0, 0, 10, 10), Box("dog", 50, 50, 60, 60)],
        [Box("cat", 0, 0, 10, 10), Box("cat", 100, 100, 110, 110)],
        [],
    ]
    pred: list[list[Box | dict[str, Any]]] = [
        [
            {"cls": "cat", "x_min": 0, "y_min": 0, "x_max": 10, "y_max": 10, "score": 0.6},
            {"class": "dog", "x_min": 50, "y_min": 50, "x_max": 60, "y_max": 60, "score": 0.9},
            {"cls": "cat", "x_min": 50, "y_min": 50, "x_max": 60, "y_max": 60, "score": 0.8},
        ],
        [
            Box("cat", 0, 0, 10, 10, 0.7),
            Box("cat", 100, 100, 110, 110, 0.4),
            # where image 0 has its dog, but this image has none: FP
            Box("dog", 50, 50, 60, 60, 0.95),
        ],
        [Box("cat", 0, 0, 5, 5, 0.65)],  # an image with no objects: FP
    ]
    m = detection_metrics(gt, pred, classes=["cat", "dog"], device="cpu")
    # cat by score: 0.8 FP, 0.7 TP, 0.65 FP, 0.6 TP, 0.4 TP with 3 ground-truth cats
    # P = 0, 1/2, 1/3, 1/2, 3/5 at R = 0, 1/3, 1/3, 2/3, 1; envelope 3/5 throughout
    # AP = (1/3 + 1/3 + 1/3) * 3/5 = 0.6
    # dog: 0.95 FP, 0.9 TP with 1 dog: P = 0, 1/2 at R = 0, 1 -> AP = 1 * 1/2 = 0.5
    np.testing.assert_allclose(m.average_precision, [0.6, 0.5], atol=TOL)
    assert m.mean_average_precision == pytest.approx(0.55, abs=TOL)
    np.testing.assert_allclose(m.precision, [3 / 5, 1 / 2], atol=TOL)
    np.testing.assert_allclose(m.recall, [1.0, 1.0], atol=TOL)
    # micro: 4 TP of 7 predictions; all 4 objects found
    assert m.precision_overall == pytest.approx(4 / 7, abs=TOL)
    assert m.recall_overall == pytest.approx(1.0, abs=TOL)
    assert m.n_images == 3


def test_detection_matches_the_best_unmatched_box_not_the_first() -> None:
    gt = [[Box("x", 0, 0, 10, 10), Box("x", 2, 0, 12, 10)]]
    pred = [
        [
            # IoU 85/115 = 0.739 with the first box, 95/105 = 0.905 with the second: takes the
            # second. Taking the first (also >= 0.7) would leave the next one without a match.
            Box("x", 1.5, 0, 11.5, 10, 0.9),
            # IoU 90/110 = 0.818 with the first, 70/130 = 0.538 with the second
            Box("x", -1, 0, 9, 10, 0.8),
        ]
    ]
    m = detection_metrics(gt, pred, classes=["x"], iou_threshold=0.7, device="cpu")
    assert m.true_positives.tolist() == [2]
    assert m.average_precision[0] == pytest.approx(1.0, abs=TOL)


def test_detection_empty_and_undefined() -> None:
    m = detection_metrics([[Box("a", 0, 0, 1, 1)]], [[]], classes=["a", "b"], device="cpu")
    assert m.average_precision[0] == 0.0 and np.isnan(m.average_precision[1])
    assert m.mean_average_precision == 0.0 and m.precision_overall == 0.0
    none = detection_metrics([[]], [[Box("a", 0, 0, 1, 1, 0.5)]], classes=["a"], device="cpu")
    assert none.mean_average_precision is None and none.precision_overall == 0.0


def test_detection_rejects_bad_input() -> None:
    box = Box("a", 0, 0, 1, 1)
    with pytest.raises(ValueError, match="1 images but predictions has 2"):
        detection_metrics([[box]], [[box], []], classes=["a"], device="cpu")
    with pytest.raises(ValueError, match=r"predictions\[0\]\[0\] has class 'z'"):
        detection_metrics([[box]], [[Box("z", 0, 0, 1, 1)]], classes=["a"], device="cpu")
    with pytest.raises(ValueError, match=r"ground_truth\[0\]\[0\]: a box needs x_max >= x_min"):
        detection_metrics([[Box("a", 2, 0, 1, 1)]], [[]], classes=["a"], device="cpu")
    with pytest.raises(ValueError, match="no 'y_max'"):
        detection_metrics(
            [[{"cls": "a", "x_min": 0, "y_min": 0, "x_max": 1}]], [[]], classes=["a"], device="cpu"
        )
    with pytest.raises(ValueError, match="must be numbers"):
        detection_metrics(
            [[{"cls": "a", "x_min": "left", "y_min": 0, "x_max": 1, "y_max": 1}]],
            [[]],
            classes=["a"],
            device="cpu",
        )
    with pytest.raises(ValueError, match="finite"):
        detection_metrics([[]], [[Box("a", 0, 0, 1, 1, float("nan"))]], classes=["a"], device="cpu")
    with pytest.raises(ValueError, match="list of boxes"):
        detection_metrics([box], [[]], classes=["a"], device="cpu")  # type: ignore[list-item]
    with pytest.raises(ValueError, match="iou_threshold"):
        detection_metrics([[box]], [[box]], classes=["a"], iou_threshold=0.0, device="cpu")
    with pytest.raises(ValueError, match="each once"):
        detection_metrics([[box]], [[box]], classes=["a", "a"], device="cpu")


coordinate = st.integers(0, 20)


@st.composite
def images(draw: st.DrawFn) -> list[list[Box]]:
    out = []
    for _ in range(draw(st.integers(1, 4))):
        boxes = []
        for _ in range(draw(st.integers(0, 4))):
            x, y = draw(coordinate), draw(coordinate)
            w, h = draw(st.integers(1, 8)), draw(st.integers(1, 8))
            boxes.append(Box(draw(st.sampled_from("ab")), x, y, x + w, y + h))
        out.append(boxes)
    return out


@settings(max_examples=50, deadline=None)
@given(images(), st.randoms(use_true_random=False))
def test_detection_properties(gt: list[list[Box]], rnd: Any) -> None:
    # predicting the truth exactly finds everything: AP 1 where there is ground truth
    perfect = [[Box(b.cls, b.x_min, b.y_min, b.x_max, b.y_max, 0.9) for b in img] for img in gt]
    m = detection_metrics(gt, perfect, classes=["a", "b"], device="cpu")
    has_gt = m.n_ground_truth > 0
    np.testing.assert_allclose(m.average_precision[has_gt], 1.0, atol=TOL)
    np.testing.assert_allclose(m.recall[has_gt], 1.0, atol=TOL)
    # shuffled images and boxes with distinct scores give the same numbers
    n_boxes = sum(len(img) for img in gt)
    scores = iter(rnd.sample(range(n_boxes), n_boxes))  # distinct: no tie to break by order
    scored = [
        [Box(b.cls, b.x_min + 1, b.y_min, b.x_max, b.y_max, next(scores)) for b in img]
        for img in gt
    ]
    first = detection_metrics(gt, scored, classes=["a", "b"], device="cpu")
    order = list(range(len(gt)))
    rnd.shuffle(order)
    shuffled = [rnd.sample(scored[i], len(scored[i])) for i in order]
    again = detection_metrics([gt[i] for i in order], shuffled, classes=["a", "b"], device="cpu")
    np.testing.assert_allclose(again.average_precision, first.average_precision, atol=TOL)
    np.testing.assert_array_equal(again.true_positives, first.true_positives)
    assert 0.0 <= first.precision_overall <= 1.0 and 0.0 <= first.recall_overall <= 1.0
    flat = np.array([[b.x_min, b.y_min, b.x_max, b.y_max] for img in gt for b in img]).reshape(
        -1, 4
    )
    matrix = box_iou(flat, flat, device="cpu")
    np.testing.assert_allclose(matrix, matrix.T, atol=TOL)
    assert np.all((matrix >= 0) & (matrix <= 1 + TOL))
    np.testing.assert_allclose(np.diag(matrix), 1.0, atol=TOL)


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
