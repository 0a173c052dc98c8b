"""CBPE's fast paths give the numbers of the straightforward computations they replace.

The estimate computes every metric, its gradient, the calibration and the cross-validated
errors with batched numpy (issue #18: at least 10x NannyML's speed with NannyML's numbers).
Each fast path is checked here against the plain computation it stands for, on data with and
without tied scores:

- ``expected_metrics`` against ``metric_values`` and ``gradients`` (the per-class code, itself
  checked against scikit-learn in ``test_cbpe_dle.py``): values equal to 1e-15, gradients to
  1e-12 (the ROC gradient is rearranged, so its rounding differs);
- ``Calibrator.calibrate`` against ``np.interp`` per column and the renormalisation: equal;
- ``expected_calibration_error`` (an unstable sort, tie runs split by a bin edge put back in
  row order) against a stable argsort and ``np.array_split``: equal;
- ``cross_fitted``'s out-of-fold probabilities against a calibrator fitted on each fold's
  training rows: equal;
- the calibration variance's cross-class term as a (blocks, blocks) matrix against the sum
  over the sampled reference rows it folds: relative 1e-9.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import KFold

from detectors.performance import calibration
from detectors.performance.calibration import Calibrator, sorted_columns
from detectors.performance.crossfit import cross_fitted, expected_calibration_error
from detectors.performance.expected import (
    METRICS,
    Decisions,
    expected_metrics,
    gradients,
    metric_values,
)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _data(
    seed: int, n: int, n_classes: int, ties: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores of an overconfident model, soft memberships and labels; ``ties`` rounds the
    scores to two decimals (many tied rows, as float32 or rounded model outputs have)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, n_classes)) * 1.2
    truth = _softmax(z)
    labels = (rng.uniform(size=(n, 1)) > truth.cumsum(axis=1)).sum(axis=1).clip(max=n_classes - 1)
    scores = _softmax(1.8 * z)
    if ties:
        scores = np.round(scores, 2)
        scores /= scores.sum(axis=1, keepdims=True)
    return scores, truth.T.copy(), labels


CASES = [(n_classes, ties) for n_classes in (2, 3, 5) for ties in (False, True)]


@pytest.mark.parametrize(("n_classes", "ties"), CASES)
def test_expected_metrics_equal_the_per_class_computation(n_classes: int, ties: bool) -> None:
    scores, q, _ = _data(1, 3_000, n_classes, ties)
    decisions = Decisions.of(scores, 0.4, METRICS)
    values, grads = expected_metrics(q, decisions, METRICS)
    np.testing.assert_allclose(
        values, metric_values(q[:, None, :], decisions, METRICS)[:, 0], rtol=0, atol=1e-15
    )
    for fast, plain in zip(grads, gradients(q, decisions, METRICS), strict=True):
        np.testing.assert_allclose(fast, plain, rtol=0, atol=1e-12)


def test_expected_metrics_keep_undefined_auc_undefined() -> None:
    scores, q, _ = _data(2, 50, 3, False)
    q[:] = 0.0
    q[0] = 1.0  # every row surely class 0: no negatives for class 0, no positives for 1, 2
    decisions = Decisions.of(scores, 0.5, METRICS)
    values, grads = expected_metrics(q, decisions, METRICS)
    plain = metric_values(q[:, None, :], decisions, METRICS)[:, 0]
    assert np.isnan(values[2]) and np.isnan(plain[2])
    np.testing.assert_allclose(values[:2], plain[:2], rtol=0, atol=1e-15)
    assert np.all(grads[2] == 0.0)


@pytest.mark.parametrize(("n_classes", "ties"), CASES)
def test_calibrate_is_np_interp_per_column(n_classes: int, ties: bool) -> None:
    scores, _, labels = _data(3, 4_000, n_classes, ties)
    calibrator = Calibrator.fit(scores, labels)
    window = _data(4, 1_500, n_classes, ties)[0]
    window[:n_classes] = np.eye(n_classes)  # scores of 0 and 1, past the knots
    q = calibrator.calibrate(window, *sorted_columns(window)).q
    columns = [1] if n_classes == 2 else range(n_classes)
    plain = np.array(
        [
            np.interp(window[:, k], step.x, step.y)
            for k, step in zip(columns, calibrator.steps, strict=True)
        ]
    ).clip(0.0, 1.0)
    if n_classes == 2:
        expected = np.vstack([1 - plain, plain])
    else:  # rows every calibrator puts at 0 keep the model's probabilities
        total = plain.sum(axis=0)
        expected = np.where(total > 1e-12, plain / np.where(total > 1e-12, total, 1), window.T)
    np.testing.assert_array_equal(q, expected)
    np.testing.assert_array_equal(calibrator.calibrate(window).q, q)  # sorting on its own


def _ece_stable(probabilities: np.ndarray, labels: np.ndarray, n_bins: int) -> float:
    """The expected calibration error with a stable sort and np.array_split, plainly."""
    classes = [1] if probabilities.shape[1] == 2 else range(probabilities.shape[1])
    errors = []
    for k in classes:
        order = np.argsort(probabilities[:, k], kind="stable")
        bins = np.array_split(order, min(n_bins, len(order)))
        gap = sum(abs(probabilities[b, k].sum() - (labels[b] == k).sum()) for b in bins)
        errors.append(gap / len(labels))
    return float(np.mean(errors))


@pytest.mark.parametrize(("n_classes", "ties"), CASES)
@pytest.mark.parametrize("n", [7, 1_001])
def test_ece_equals_a_stable_sort(n_classes: int, ties: bool, n: int) -> None:
    scores, _, labels = _data(5, n, n_classes, ties)
    if ties:  # coarser still: tie runs longer than a bin
        scores = np.round(scores, 1)
    for n_bins in (3, 10):
        assert expected_calibration_error(scores, labels, n_bins=n_bins) == _ece_stable(
            scores, labels, n_bins
        )


@pytest.mark.parametrize(("n_classes", "ties"), CASES)
def test_cross_fitted_calibrates_each_fold_on_its_training_rows(n_classes: int, ties: bool) -> None:
    scores, _, labels = _data(6, 2_000, n_classes, ties)
    raw, calibrated, out_of_fold = cross_fitted(scores, labels, n_bins=10, seed=3)
    assert out_of_fold is not None
    folds = KFold(n_splits=5, shuffle=True, random_state=3)
    errors = []
    for train, test in folds.split(scores):
        held_out = Calibrator.fit(scores[train], labels[train]).apply(scores[test])
        np.testing.assert_array_equal(out_of_fold[test], held_out)
        errors.append(_ece_stable(held_out, labels[test], 10))
    assert calibrated == float(np.mean(errors))
    assert raw == float(
        np.mean([_ece_stable(scores[t], labels[t], 10) for _, t in folds.split(scores)])
    )


@pytest.mark.parametrize("n_classes", [3, 5])
def test_cross_term_matrix_equals_the_sum_over_rows(
    n_classes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    scores, _, labels = _data(7, 20_000, n_classes, False)
    window = _data(8, 2_000, n_classes, False)[0]
    decisions = Decisions.of(window, 0.5, METRICS)

    def variance() -> np.ndarray:
        calibrated = Calibrator.fit(scores, labels).calibrate(window)
        grads = expected_metrics(calibrated.q, decisions, METRICS)[1]
        return calibrated.variance(grads)

    folded = variance()
    monkeypatch.setattr(calibration, "CROSS_MATRIX_BLOCKS", 0)  # the rows, one by one
    summed = variance()
    assert np.all(folded > 0)
    np.testing.assert_allclose(folded, summed, rtol=1e-9)
