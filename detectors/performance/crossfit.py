"""Cross-validated calibration on a labelled reference: the expected calibration error of the
raw and of the isotonic-calibrated probabilities on held-out folds, and each reference row
calibrated by the folds that did not see it (what CBPE's ``calibrate="auto"`` decides with,
and what its band is centred by).

The folds reweight the reference's columns sorted once (:func:`calibration.distinct`); a
fold's calibrator is only applied, so only its knots are fitted.
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import KFold

from detectors.performance.calibration import (
    SortedScores,
    calibrated_columns,
    distinct,
    isotonic,
    renormalised,
    sorted_columns,
)


def expected_calibration_error(
    probabilities: np.ndarray,
    labels: np.ndarray,
    *,
    n_bins: int = 10,
    orders: list[np.ndarray] | None = None,
) -> float:
    """Mean one-vs-rest expected calibration error over equal-frequency bins.

    ``labels`` are class indices into the columns. For two classes only the positive column is
    scored (the negative one has the same error). Per class: rows sorted by probability (a
    stable sort: tied rows in their order), cut into ``n_bins`` equally full bins (as
    ``np.array_split``), ``sum_b |sum p - sum y| / n``. ``orders``: an argsort of each scored
    column (ties in any order), when the caller has it.

    >>> p = np.array([[0.8, 0.2], [0.8, 0.2], [0.3, 0.7], [0.3, 0.7]])
    >>> expected_calibration_error(p, np.array([0, 0, 1, 1]), n_bins=2)
    0.25
    """
    classes = [1] if probabilities.shape[1] == 2 else range(probabilities.shape[1])
    n = len(labels)
    count = min(n_bins, n)
    size, extra = divmod(n, count)
    edges = np.cumsum([0] + [size + 1] * extra + [size] * (count - extra))
    errors = []
    for j, k in enumerate(classes):
        column = np.ascontiguousarray(probabilities[:, k])
        order = column.argsort() if orders is None else orders[j]
        order, ordered = _stable_at(column, order, edges[1:-1])
        hits = np.cumsum(labels[order] == k)
        found = hits[edges[1:] - 1] - np.append(0, hits[edges[1:-1] - 1])
        gap = sum(
            abs(ordered[lo:hi].sum() - f)
            for lo, hi, f in zip(edges[:-1], edges[1:], found.tolist(), strict=True)
        )
        errors.append(gap / n)
    return float(np.mean(errors))


def _stable_at(
    values: np.ndarray, order: np.ndarray, cuts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``order`` (an argsort of ``values``) with every run of tied values that a cut splits
    put back in row order, as a stable sort has it: which rows fall on each side of a cut is
    then a stable sort's. Elsewhere the order of tied rows changes no bin's sums (their values
    are equal). Also the sorted values. ``order`` itself is left as it is."""
    ordered = values[order]
    for cut in cuts.tolist():
        if ordered[cut - 1] != ordered[cut]:
            continue
        lo = int(np.searchsorted(ordered, ordered[cut], side="left"))
        hi = int(np.searchsorted(ordered, ordered[cut], side="right"))
        order = order.copy()
        order[lo:hi] = np.sort(order[lo:hi])
    return order, ordered


def _fold_calibrated(
    probabilities: np.ndarray,
    columns: list[SortedScores],
    counts: list[np.ndarray],
    test: np.ndarray,
    orders: list[np.ndarray],
) -> np.ndarray:
    """(rows, classes) ``probabilities`` (the reference's rows ``test``) calibrated by
    isotonic fits on the other reference rows: the probabilities :meth:`Calibrator.apply`
    gives, without the blocks its variance needs. ``counts``: per column, the rows and the
    class's rows at each distinct score of the whole reference; a fold's are those less the
    held-out rows' (whole numbers, so exactly what counting the fold's rows gives). ``orders``:
    the argsort of each calibrated column of ``probabilities``."""
    calibrated = np.empty((len(columns), len(probabilities)))
    ks = calibrated_columns(probabilities.shape[1])
    for j, (k, c) in enumerate(zip(ks, columns, strict=True)):
        size = len(c.x)
        held_out = c.inverse[test]
        total = counts[j][0] - np.bincount(held_out, minlength=size)
        positives = counts[j][1] - np.bincount(held_out, weights=c.member[test], minlength=size)
        kept, y, _, knot = isotonic(positives, total)
        order = orders[j]
        calibrated[j, order] = np.interp(probabilities[order, k], c.x[kept[knot]], y[knot])
    np.clip(calibrated, 0.0, 1.0, out=calibrated)
    return renormalised(probabilities, calibrated)[0].T


def cross_fitted(
    probabilities: np.ndarray,
    labels: np.ndarray,
    *,
    n_bins: int,
    seed: int,
    columns: list[SortedScores] | None = None,
) -> tuple[float, float, np.ndarray | None]:
    """Expected calibration error before and after calibration, on held-out folds, and the
    out-of-fold calibrated probabilities (None with fewer than 2 rows). ``columns``: the
    reference sorted by :func:`calibration.distinct`, when the caller has it.

    Isotonic regression scored on its own training rows is calibrated by construction, so
    each fold is calibrated by the other folds. Both errors are taken fold by fold and
    averaged: pooled out-of-fold probabilities would let a bin's labels leak into the
    calibration of the same bin's rows from other folds, flattering the calibrated side.
    """
    n_splits = min(5, len(labels))
    if n_splits < 2:
        return float("nan"), float("nan"), None
    raw, calibrated = [], []
    out_of_fold = np.empty_like(probabilities)
    # one sort of the scores for every fold
    if columns is None:
        columns = distinct(probabilities, labels)
    counts = [
        np.stack(
            [np.bincount(c.inverse).astype(np.float64), np.bincount(c.inverse, weights=c.member)]
        )
        for c in columns
    ]
    folds = KFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for _, test in folds.split(probabilities):
        scores, truth = probabilities[test], labels[test]
        # one sort of each held-out column, for its calibration and its error
        orders = list(sorted_columns(scores)[0])
        held_out = _fold_calibrated(scores, columns, counts, test, orders)
        out_of_fold[test] = held_out
        raw.append(expected_calibration_error(scores, truth, n_bins=n_bins, orders=orders))
        calibrated.append(expected_calibration_error(held_out, truth, n_bins=n_bins))
    return float(np.mean(raw)), float(np.mean(calibrated)), out_of_fold
