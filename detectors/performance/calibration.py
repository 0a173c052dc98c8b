"""Calibration of a classifier's probabilities on a labelled reference (shared by the
label-free estimators): input checks, class indices, expected calibration error, and isotonic
calibrators, one class against the rest, optionally weighted.

A fitted calibrator is kept as the isotonic step function's knots and applied with
``np.interp``, what scikit-learn's ``IsotonicRegression`` computes. The fit runs scipy's pool
adjacent violators on scores sorted once per reference: the bootstrap calibrations reweight
the same sorted rows instead of sorting a resample each (scikit-learn's ``fit`` spends most of
its time validating and sorting).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import isotonic_regression
from sklearn.model_selection import KFold


def check_probabilities(data: Any, *, name: str, n_classes: int | None = None) -> np.ndarray:
    """``data`` as a float64 (rows, classes) array of probabilities, or a clear ValueError.

    A 1-D array is a binary classifier's positive-class score and becomes ``[1 - p, p]``.
    """
    array = np.asarray(data, dtype=np.float64)
    if array.ndim == 1:
        array = np.column_stack([1.0 - array, array])
    if array.ndim != 2 or array.shape[1] < 2:
        raise ValueError(
            f"{name} must be (rows,) positive-class scores or (rows, classes) probabilities "
            f"with at least 2 classes, got shape {np.shape(data)}"
        )
    if n_classes is not None and array.shape[1] != n_classes:
        raise ValueError(
            f"{name} must have {n_classes} columns (one per class seen in fit), "
            f"got shape {array.shape}"
        )
    if array.shape[0] == 0:
        raise ValueError(f"{name} has no rows")
    if not np.all(np.isfinite(array)) or array.min() < 0.0 or array.max() > 1.0:
        raise ValueError(f"{name} must hold finite probabilities in [0, 1]")
    return array


def expected_calibration_error(
    probabilities: np.ndarray, labels: np.ndarray, *, n_bins: int = 10
) -> float:
    """Mean one-vs-rest expected calibration error over equal-frequency bins.

    ``labels`` are class indices into the columns. For two classes only the positive column is
    scored (the negative one has the same error). Per class: rows sorted by probability, cut
    into ``n_bins`` equally full bins, ``sum_b |sum p - sum y| / n``.

    >>> p = np.array([[0.8, 0.2], [0.8, 0.2], [0.3, 0.7], [0.3, 0.7]])
    >>> expected_calibration_error(p, np.array([0, 0, 1, 1]), n_bins=2)
    0.25
    """
    classes = [1] if probabilities.shape[1] == 2 else range(probabilities.shape[1])
    errors = []
    for k in classes:
        order = np.argsort(probabilities[:, k], kind="stable")
        bins = np.array_split(order, min(n_bins, len(order)))
        gap = sum(abs(probabilities[b, k].sum() - (labels[b] == k).sum()) for b in bins)
        errors.append(gap / len(labels))
    return float(np.mean(errors))


def class_index(
    labels: Any, n_columns: int, classes: Sequence[Any] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Class names in column order, and each label as its column index (or a ValueError).

    ``classes`` names the columns in order; by default the sorted distinct labels. Every class
    must occur.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"reference_labels must be 1-D, got shape {labels.shape}")
    if len(labels) == 0:
        raise ValueError("reference_labels has no rows")
    distinct, inverse = np.unique(labels, return_inverse=True)
    names = np.asarray(classes) if classes is not None else distinct
    if len(names) != n_columns:
        raise ValueError(
            f"reference_labels hold {len(names)} classes but reference_probabilities has "
            f"{n_columns} columns; pass classes= to name the columns"
        )
    index = {name: k for k, name in enumerate(names.tolist())}
    unknown = [v for v in distinct.tolist() if v not in index]
    if unknown:
        raise ValueError(
            f"reference_labels hold classes {sorted(map(str, unknown))} "
            f"that are not among classes {names.tolist()}"
        )
    label_index = np.array([index[v] for v in distinct.tolist()], dtype=np.int64)[inverse]
    missing = [names[k] for k in range(len(names)) if not np.any(label_index == k)]
    if missing:
        raise ValueError(f"reference_labels hold no example of class(es) {missing}")
    return names, label_index


def _knots(
    x: np.ndarray, positives: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Isotonic regression on distinct sorted scores ``x`` carrying ``weights`` rows of which
    ``positives`` (weighted) belong to the class: the step function's knots, as scikit-learn's
    ``IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip")`` fits them (pool adjacent
    violators on the weighted means), up to its dropping of knots inside flat stretches, which
    ``np.interp`` does not need."""
    keep = weights > 0
    x = x[keep]
    y = np.clip(isotonic_regression(positives[keep] / weights[keep], weights=weights[keep]).x, 0, 1)
    # inside a flat stretch only its two ends matter to the interpolation (fewer knots make
    # every np.interp faster); scikit-learn drops the same points
    inner = np.ones(len(y), dtype=bool)
    inner[1:-1] = (y[1:-1] == y[:-2]) & (y[1:-1] == y[2:])
    inner[0] = inner[-1] = False
    return x[~inner], y[~inner]


@dataclass(frozen=True)
class _Distinct:
    """One class's reference scores made distinct and sorted, once for every fit."""

    x: np.ndarray  # distinct scores, ascending
    inverse: np.ndarray  # row -> its score's position in ``x``
    member: np.ndarray  # row -> 1.0 when its label is the class


def _distinct(probabilities: np.ndarray, labels: np.ndarray) -> list[_Distinct]:
    classes = [1] if probabilities.shape[1] == 2 else range(probabilities.shape[1])
    out = []
    for k in classes:
        x, inverse = np.unique(probabilities[:, k], return_inverse=True)
        out.append(_Distinct(x, inverse, (labels == k).astype(np.float64)))
    return out


def _fit(columns: list[_Distinct], weights: np.ndarray) -> Calibrator:
    knots = []
    for c in columns:
        size = len(c.x)
        total = np.bincount(c.inverse, weights=weights, minlength=size)
        positives = np.bincount(c.inverse, weights=weights * c.member, minlength=size)
        knots.append(_knots(c.x, positives, total))
    return Calibrator(tuple(knots))


@dataclass(frozen=True)
class Calibrator:
    """Isotonic calibration, one class against the rest: the knots of each class's step
    function (for two classes only the positive class's; the negative is its complement)."""

    knots: tuple[tuple[np.ndarray, np.ndarray], ...]

    @classmethod
    def fit(
        cls, probabilities: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None
    ) -> Calibrator:
        """Fit on (rows, classes) probabilities and class-index labels, rows optionally
        weighted (the weights need not sum to anything in particular)."""
        if weights is None:
            weights = np.ones(len(labels))
        return _fit(_distinct(probabilities, labels), np.asarray(weights, dtype=np.float64))

    def apply(self, probabilities: np.ndarray) -> np.ndarray:
        """(rows, classes) calibrated probabilities, rows summing to one."""
        return apply_many([self], probabilities)[:, 0, :].T


def calibrated_columns(n_classes: int) -> list[int]:
    """The columns a calibrator calibrates: the positive one for two classes, else all."""
    return [1] if n_classes == 2 else list(range(n_classes))


def apply_many(
    calibrators: Sequence[Calibrator],
    probabilities: np.ndarray,
    orders: Sequence[np.ndarray] | None = None,
) -> np.ndarray:
    """(classes, calibrators, rows) calibrated probabilities of one window, class-major.

    Each class's scores are sorted once for all calibrators (``orders``, the stable argsort
    of each of :func:`calibrated_columns`, when the caller has it): ``np.interp`` on sorted
    points is several times faster than on unsorted ones.
    """
    n, n_classes = probabilities.shape
    columns = calibrated_columns(n_classes)
    calibrated = np.empty((len(columns), len(calibrators), n))
    for j, k in enumerate(columns):
        order = np.argsort(probabilities[:, k], kind="stable") if orders is None else orders[j]
        ordered = probabilities[order, k]
        calibrated[j][:, order] = [np.interp(ordered, *c.knots[j]) for c in calibrators]
    np.clip(calibrated, 0.0, 1.0, out=calibrated)
    if n_classes == 2:
        return np.concatenate([1.0 - calibrated, calibrated])
    total = calibrated.sum(axis=0)
    # one-vs-rest calibrators do not sum to 1; a row every calibrator clipped to 0 (scores
    # outside anything the reference showed) keeps the model's own probabilities instead
    raw = probabilities.T / np.maximum(probabilities.sum(axis=1), 1e-300)
    empty = total <= 1e-12
    calibrated /= np.where(empty, 1.0, total)
    if empty.any():
        calibrated = np.where(empty[None], raw[:, None, :], calibrated)
    return calibrated


def bootstrap_calibrators(
    probabilities: np.ndarray,
    labels: np.ndarray,
    n_bootstrap: int,
    seed: int,
    weights: np.ndarray | None = None,
) -> list[Calibrator]:
    """Calibrators fitted on ``n_bootstrap`` resamples of the rows (with replacement): their
    spread over a window is the calibration's own estimation error there.

    A resample is the rows weighted by how often it drew them, so the scores are sorted once.
    """
    n = len(labels)
    base = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    columns = _distinct(probabilities, labels)
    rng = np.random.default_rng(seed)
    return [
        _fit(columns, base * np.bincount(rng.integers(0, n, size=n), minlength=n))
        for _ in range(n_bootstrap)
    ]


def cross_fitted(
    probabilities: np.ndarray, labels: np.ndarray, *, n_bins: int, seed: int
) -> tuple[float, float, np.ndarray | None]:
    """Expected calibration error before and after calibration, on held-out folds, and the
    out-of-fold calibrated probabilities (None with fewer than 2 rows).

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
    # one sort of the scores for every fold: a fold's calibrator weighs its rows 1, others 0
    columns = _distinct(probabilities, labels)
    folds = KFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for train, test in folds.split(probabilities):
        weights = np.zeros(len(labels))
        weights[train] = 1.0
        held_out = _fit(columns, weights).apply(probabilities[test])
        out_of_fold[test] = held_out
        raw.append(expected_calibration_error(probabilities[test], labels[test], n_bins=n_bins))
        calibrated.append(expected_calibration_error(held_out, labels[test], n_bins=n_bins))
    return float(np.mean(raw)), float(np.mean(calibrated)), out_of_fold
