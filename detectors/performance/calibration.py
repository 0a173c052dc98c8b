"""Calibration of a classifier's probabilities on a labelled reference (shared by the
label-free estimators): input checks, class indices, expected calibration error, and isotonic
calibrators, one class against the rest, optionally weighted.

A fitted calibrator is kept as the isotonic step function's knots and applied with
``np.interp``, what scikit-learn's ``IsotonicRegression`` computes. The fit runs scipy's pool
adjacent violators on scores sorted once per reference (cross-validation folds reweight the
same sorted rows; scikit-learn's ``fit`` spends most of its time validating and sorting). Each
block the fit pools is a weighted mean of labels, which gives the calibration's own variance
without refitting (:meth:`Calibrated.variance`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import isotonic_regression
from sklearn.model_selection import KFold

# reference rows the calibration variance's cross-class term is summed over, at most
CROSS_ROWS = 10_000


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


@dataclass(frozen=True)
class Step:
    """One class's isotonic step function: its knots (``np.interp`` between them) and its
    blocks (the flat stretches pool adjacent violators made), each block's mean being a
    weighted mean of the reference rows it pooled."""

    x: np.ndarray  # knots, ascending scores
    y: np.ndarray  # calibrated probability at each knot
    block: np.ndarray  # the block each knot belongs to
    mean: np.ndarray  # per block: its weighted mean of the class's 0/1 labels
    total: np.ndarray  # per block: the sum of its rows' weights
    squares: np.ndarray  # per block: the sum of its rows' squared weights
    row_block: np.ndarray  # per reference row: its block (0 for rows of weight 0)


def _step(
    x: np.ndarray,
    inverse: np.ndarray,
    positives: np.ndarray,
    weights: np.ndarray,
    squares: np.ndarray,
) -> Step:
    """Isotonic regression on distinct sorted scores ``x`` (``inverse``: each reference row's
    position in ``x``) carrying ``weights`` rows (squared weights ``squares``) of which
    ``positives`` (weighted) belong to the class, as scikit-learn's
    ``IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip")`` fits it (pool adjacent
    violators on the weighted means)."""
    keep = weights > 0
    kept = np.flatnonzero(keep)
    x, positives, weights, squares = x[keep], positives[keep], weights[keep], squares[keep]
    y = np.clip(isotonic_regression(positives / weights, weights=weights).x, 0.0, 1.0)
    new = np.ones(len(y), dtype=bool)
    new[1:] = y[1:] != y[:-1]
    block = np.cumsum(new) - 1
    total = np.bincount(block, weights=weights)
    distinct_block = np.zeros(len(keep), dtype=np.int64)
    distinct_block[kept] = block
    # inside a flat stretch only its two ends matter to the interpolation (fewer knots make
    # every np.interp faster); scikit-learn drops the same points
    inner = np.zeros(len(y), dtype=bool)
    inner[1:-1] = ~new[1:-1] & ~new[2:]
    return Step(
        x=x[~inner],
        y=y[~inner],
        block=block[~inner],
        mean=np.bincount(block, weights=positives) / total,
        total=total,
        squares=np.bincount(block, weights=squares),
        row_block=distinct_block[inverse],
    )


@dataclass(frozen=True)
class _Distinct:
    """One class's reference scores made distinct and sorted, once for every fit."""

    x: np.ndarray  # distinct scores, ascending
    inverse: np.ndarray  # row -> its score's position in ``x``
    member: np.ndarray  # row -> 1.0 when its label is the class


def _distinct(probabilities: np.ndarray, labels: np.ndarray) -> list[_Distinct]:
    out = []
    for k in calibrated_columns(probabilities.shape[1]):
        x, inverse = np.unique(probabilities[:, k], return_inverse=True)
        out.append(_Distinct(x, inverse, (labels == k).astype(np.float64)))
    return out


def _fit(columns: list[_Distinct], weights: np.ndarray) -> Calibrator:
    steps = []
    for c in columns:
        size = len(c.x)
        steps.append(
            _step(
                c.x,
                c.inverse,
                np.bincount(c.inverse, weights=weights * c.member, minlength=size),
                np.bincount(c.inverse, weights=weights, minlength=size),
                np.bincount(c.inverse, weights=weights**2, minlength=size),
            )
        )
    return Calibrator(tuple(steps), weights)


def calibrated_columns(n_classes: int) -> list[int]:
    """The columns a calibrator calibrates: the positive one for two classes, else all."""
    return [1] if n_classes == 2 else list(range(n_classes))


@dataclass(frozen=True)
class Calibrated:
    """A window's calibrated probabilities, and how they depend on the calibration's blocks.

    ``q`` is (classes, rows), class-major. Row ``i`` of calibrated column ``j`` lies between
    knots ``left[j][i]`` and ``left[j][i] + 1`` at fraction ``t[j][i]``; ``jacobian`` turns a
    metric's gradient in ``q`` into one in the calibrated columns (the complement for two
    classes, the renormalisation for more).
    """

    q: np.ndarray
    calibrator: Calibrator
    left: tuple[np.ndarray, ...]
    t: tuple[np.ndarray, ...]
    raw_total: np.ndarray | None  # per row, the calibrated columns' sum before renormalising

    def variance(self, grads: Sequence[np.ndarray]) -> np.ndarray:
        """(metrics,) variance of the expected metric from the calibration's own error.

        First order in the block means, the blocks taken as fixed: each is a weighted mean of
        independent labels, so the metric's error is a weighted sum over reference rows of
        ``u_rj (y_rj - p_rj)``, ``u_rj`` the metric's sensitivity to block ``j``'s mean over
        that block's weight. For three or more classes one reference row's labels of the
        different classes are one categorical draw (``p_r``: its blocks' means, renormalised),
        which correlates the classes' blocks; that part is summed over at most
        ``CROSS_ROWS`` reference rows drawn once (a sum over a fixed sample, scaled: its
        relative error is about 1/sqrt(CROSS_ROWS) of a term smaller than the variance).
        """
        steps = self.calibrator.steps
        out = []
        for g in grads:
            columns = self._column_gradients(g)
            per_block = [self._per_block(h, j) for j, h in enumerate(columns)]
            if self.raw_total is None:  # two classes: one column, blocks independent
                step = steps[0]
                variance = step.mean * (1.0 - step.mean) * step.squares / step.total**2
                out.append(float((per_block[0] ** 2 * variance).sum()))
                continue
            # sum_r w_r**2 (sum_j u_rj**2 p_rj - (sum_j u_rj p_rj)**2): the first part per
            # block (precomputed sums of w**2 p), the second needs each row's sum over classes
            sensitivity = [b / s.total for b, s in zip(per_block, steps, strict=True)]
            own = self.calibrator.own
            first = sum(float((v**2 * o).sum()) for v, o in zip(sensitivity, own, strict=True))
            cross = self.calibrator.cross
            mixed = sum(
                v[blocks] * p
                for v, blocks, p in zip(sensitivity, cross.blocks, cross.p, strict=True)
            )
            out.append(first - cross.scale * float((cross.squares * mixed * mixed).sum()))
        return np.maximum(np.array(out), 0.0)

    def _per_block(self, h: np.ndarray, j: int) -> np.ndarray:
        """The metric's sensitivity to each block mean of calibrated column ``j``, from its
        gradient ``h`` in that column."""
        step = self.calibrator.steps[j]
        a, t = self.left[j], self.t[j]
        b = np.minimum(a + 1, len(step.x) - 1)
        size = len(step.total)
        return np.bincount(step.block[a], weights=h * (1.0 - t), minlength=size) + np.bincount(
            step.block[b], weights=h * t, minlength=size
        )

    def _column_gradients(self, g: np.ndarray) -> np.ndarray:
        """A metric's gradient in ``q`` turned into one per calibrated column."""
        if self.raw_total is None:  # two classes: q0 = 1 - c, q1 = c
            return (g[1] - g[0])[None]
        # q_k = c_k / S: dq_k / dc_j = (delta_kj - q_k) / S; rows that fell back to the raw
        # probabilities (S = 0) do not move with the calibration
        total = self.raw_total
        moved = (g - (g * self.q).sum(axis=0)) / np.where(total > 0, total, 1.0)
        return np.where(total > 0, moved, 0.0)


@dataclass(frozen=True)
class _Cross:
    blocks: list[np.ndarray]  # per class, each sampled row's block
    p: np.ndarray  # (classes, sampled rows) probabilities
    squares: np.ndarray  # squared weights of the sampled rows
    scale: float  # reference rows per sampled row


@dataclass(frozen=True)
class Calibrator:
    """Isotonic calibration, one class against the rest: each class's step function (for two
    classes only the positive class's; the negative is its complement)."""

    steps: tuple[Step, ...]
    weights: np.ndarray  # the reference rows' weights the steps were fitted with

    @functools.cached_property
    def squares(self) -> np.ndarray:
        return self.weights**2

    @functools.cached_property
    def row_probabilities(self) -> np.ndarray:
        """(classes, reference rows): each row's blocks' means, renormalised (3+ classes)."""
        p = np.stack([s.mean[s.row_block] for s in self.steps])
        total = p.sum(axis=0)
        return p / np.where(total > 0, total, 1.0)

    @functools.cached_property
    def cross(self) -> _Cross:
        """The reference rows the classes' cross term is summed over (at most CROSS_ROWS)."""
        n = len(self.weights)
        rows = np.arange(n)
        if n > CROSS_ROWS:
            rows = np.sort(np.random.default_rng(0).choice(n, size=CROSS_ROWS, replace=False))
        return _Cross(
            blocks=[s.row_block[rows] for s in self.steps],
            p=self.row_probabilities[:, rows],
            squares=self.squares[rows],
            scale=n / len(rows),
        )

    @functools.cached_property
    def own(self) -> list[np.ndarray]:
        """Per class, per block: the sum over its rows of w**2 times their probability of it."""
        squares = self.squares
        return [
            np.bincount(s.row_block, weights=squares * p, minlength=len(s.total))
            for s, p in zip(self.steps, self.row_probabilities, strict=True)
        ]

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
        return self.calibrate(probabilities).q.T

    def calibrate(
        self, probabilities: np.ndarray, orders: Sequence[np.ndarray] | None = None
    ) -> Calibrated:
        """A window calibrated. ``orders``: the argsort of each calibrated column, when
        the caller has it (``np.interp`` and the knot search are faster on sorted points)."""
        n, n_classes = probabilities.shape
        columns = calibrated_columns(n_classes)
        calibrated = np.empty((len(columns), n))
        lefts, fractions = [], []
        for j, (k, step) in enumerate(zip(columns, self.steps, strict=True)):
            order = np.argsort(probabilities[:, k]) if orders is None else orders[j]
            ordered = probabilities[order, k]
            calibrated[j, order] = np.interp(ordered, step.x, step.y)
            left = np.empty(n, dtype=np.int64)
            left[order] = np.clip(np.searchsorted(step.x, ordered, side="right") - 1, 0, None)
            right = np.minimum(left + 1, len(step.x) - 1)
            width = step.x[right] - step.x[left]
            inside = np.clip(probabilities[:, k] - step.x[left], 0.0, None)
            fraction = np.where(width > 0, np.minimum(inside / np.where(width > 0, width, 1), 1), 0)
            lefts.append(left)
            fractions.append(fraction)
        np.clip(calibrated, 0.0, 1.0, out=calibrated)
        if n_classes == 2:
            q = np.vstack([1.0 - calibrated, calibrated])
            return Calibrated(q, self, tuple(lefts), tuple(fractions), None)
        total = calibrated.sum(axis=0)
        # one-vs-rest calibrators do not sum to 1; a row every calibrator clipped to 0 (scores
        # outside anything the reference showed) keeps the model's own probabilities instead
        raw = probabilities.T / np.maximum(probabilities.sum(axis=1), 1e-300)
        empty = total <= 1e-12
        q = np.where(empty, raw, calibrated / np.where(empty, 1.0, total))
        return Calibrated(q, self, tuple(lefts), tuple(fractions), np.where(empty, 0.0, total))


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
