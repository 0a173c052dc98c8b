"""Calibration of a classifier's probabilities on a labelled reference (shared by the
label-free estimators): input checks, class indices, and isotonic calibrators, one class
against the rest, optionally weighted (cross-validated: :mod:`detectors.performance.crossfit`).

A fitted calibrator is kept as the isotonic step function's knots and applied as ``np.interp``
does (its arithmetic, on all columns at once), what scikit-learn's ``IsotonicRegression``
computes. The fit runs scipy's pool adjacent violators on scores sorted once per reference
(cross-validation folds reuse the same sorted rows; scikit-learn's ``fit`` spends most of its
time validating and sorting). Each block the fit pools is a weighted mean of labels, which
gives the calibration's own variance without refitting (:meth:`Calibrated.variance`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import isotonic_regression

# reference rows the calibration variance's cross-class term is summed over, at most
CROSS_ROWS = 10_000
# the cross term is a (blocks, blocks) quadratic form when all classes' blocks are at most
CROSS_MATRIX_BLOCKS = 1_000


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


def isotonic(
    positives: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pool adjacent violators on the weighted means of distinct sorted scores: which scores
    carry weight (``kept``, their positions), and over those the fitted values in [0, 1],
    where each flat stretch starts, and which are knots (inside a flat stretch only its two
    ends matter to the interpolation; fewer knots make every search faster, and scikit-learn
    drops the same). Positions, not a boolean mask: numpy gathers by index faster."""
    kept = np.flatnonzero(weights > 0)
    carried = weights[kept].astype(np.float64)
    y = np.clip(isotonic_regression(positives[kept] / carried, weights=carried).x, 0.0, 1.0)
    new = np.ones(len(y), dtype=bool)
    new[1:] = y[1:] != y[:-1]
    inner = np.zeros(len(y), dtype=bool)
    inner[1:-1] = ~new[1:-1] & ~new[2:]
    return kept, y, new, ~inner


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
    kept, y, new, knot = isotonic(positives, weights)
    distinct_block = np.zeros(len(x), dtype=np.int64)
    x, positives, weights, squares = x[kept], positives[kept], weights[kept], squares[kept]
    block = np.cumsum(new) - 1
    total = np.bincount(block, weights=weights)
    distinct_block[kept] = block
    return Step(
        x=x[knot],
        y=y[knot],
        block=block[knot],
        mean=np.bincount(block, weights=positives) / total,
        total=total,
        squares=np.bincount(block, weights=squares),
        row_block=distinct_block[inverse],
    )


@dataclass(frozen=True)
class SortedScores:
    """One class's reference scores made distinct and sorted, once for every fit."""

    x: np.ndarray  # distinct scores, ascending
    inverse: np.ndarray  # row -> its score's position in ``x``
    member: np.ndarray  # row -> 1.0 when its label is the class
    order: np.ndarray  # the rows by ascending score (the argsort the ROC curves rank by)


def distinct(probabilities: np.ndarray, labels: np.ndarray) -> list[SortedScores]:
    """Each calibrated column's reference scores, sorted once for every fit (what
    ``np.unique(return_inverse=True)`` computes, its argsort kept)."""
    out = []
    for k in calibrated_columns(probabilities.shape[1]):
        column = np.ascontiguousarray(probabilities[:, k])
        order = column.argsort()
        ordered = column[order]
        new = np.empty(len(ordered), dtype=bool)
        new[:1] = True
        new[1:] = ordered[1:] != ordered[:-1]
        inverse = np.empty(len(ordered), dtype=np.intp)
        inverse[order] = np.cumsum(new) - 1
        out.append(SortedScores(ordered[new], inverse, (labels == k).astype(np.float64), order))
    return out


def fit_distinct(columns: list[SortedScores], weights: np.ndarray) -> Calibrator:
    """A calibrator from the reference's sorted columns (:func:`distinct`), rows weighted."""
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


def sorted_columns(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(columns, rows) argsort of each calibrated column of (rows, classes) ``probabilities``,
    and the columns sorted (each copied contiguous first: sorting a strided column costs a
    quarter more)."""
    columns = np.ascontiguousarray(probabilities.T[calibrated_columns(probabilities.shape[1])])
    orders = np.argsort(columns, axis=1)
    return orders, columns.ravel()[orders + (columns.shape[1] * np.arange(len(columns)))[:, None]]


@dataclass(frozen=True)
class Calibrated:
    """A window's calibrated probabilities, and how they depend on the calibration's blocks.

    ``q`` is (classes, rows), class-major. The calibrated columns' values of the window are
    flattened column by column (``j * rows + i``) and the blocks numbered across the columns
    (:attr:`Calibrator.offsets`), so that one ``bincount`` spreads every metric's gradient over
    every block. A value lies between two knots; when they belong to two blocks (a rising
    step between flat stretches, few rows) it moves with both, by its interpolation weight.
    """

    q: np.ndarray
    calibrator: Calibrator
    blocks: np.ndarray  # (columns * rows,): the block of each value's left knot
    split: np.ndarray  # flat positions of the values between two blocks' knots
    split_to: np.ndarray  # their right knot's block
    split_share: np.ndarray  # their interpolation weight on the right knot
    raw_total: np.ndarray | None  # per row, the calibrated columns' sum before renormalising

    def variance(
        self, grads: Sequence[np.ndarray] | np.ndarray, means: np.ndarray | None = None
    ) -> np.ndarray:
        """(metrics,) variance of the expected metric from the calibration's own error.

        First order in the block means, the blocks taken as fixed: each is a weighted mean of
        independent labels, so the metric's error is a weighted sum over reference rows of
        ``u_rj (y_rj - p_rj)``, ``u_rj`` the metric's sensitivity to block ``j``'s mean over
        that block's weight. For three or more classes one reference row's labels of the
        different classes are one categorical draw (``p_r``: its blocks' means, renormalised),
        which correlates the classes' blocks; that part is summed over at most
        ``CROSS_ROWS`` reference rows drawn once (a sum over a fixed sample, scaled: its
        relative error is about 1/sqrt(CROSS_ROWS) of a term smaller than the variance),
        folded into a (blocks, blocks) matrix when the blocks are few. ``means``: per metric
        and row ``sum_k g_k q_k``, when the caller has it (:func:`expected.sampling_moments`).
        """
        calibrator = self.calibrator
        per_block = self._per_block(self._column_gradients(np.asarray(grads), means))
        if self.raw_total is None:  # two classes: one column, blocks independent
            return np.maximum((per_block**2 * calibrator.block_variance).sum(axis=1), 0.0)
        # sum_r w_r**2 (sum_j u_rj**2 p_rj - (sum_j u_rj p_rj)**2): the first part per
        # block (precomputed sums of w**2 p), the second needs each row's sum over classes
        sensitivity = per_block / calibrator.totals
        first = (sensitivity**2 * calibrator.own).sum(axis=1)
        cross = calibrator.cross
        if cross.matrix is not None:
            second = ((sensitivity @ cross.matrix) * sensitivity).sum(axis=1)
        else:
            mixed = (sensitivity[:, cross.blocks] * cross.p).sum(axis=1)
            second = (cross.squares * mixed * mixed).sum(axis=1)
        return np.maximum(first - cross.scale * second, 0.0)

    def _per_block(self, columns: np.ndarray) -> np.ndarray:
        """(metrics, blocks): each metric's sensitivity to each block mean, from its gradient
        in the calibrated columns ((metrics, columns, rows))."""
        size = self.calibrator.n_blocks
        out = np.empty((len(columns), size))
        # every value to its left knot's block; those between two blocks move their right
        # knot's share over
        index = np.concatenate([self.split_to, self.blocks[self.split]])
        for m, h in enumerate(columns.reshape(len(columns), -1)):
            out[m] = np.bincount(self.blocks, weights=h, minlength=size)
            moved = h[self.split] * self.split_share
            out[m] += np.bincount(index, weights=np.concatenate([moved, -moved]), minlength=size)
        return out

    def _column_gradients(self, g: np.ndarray, means: np.ndarray | None) -> np.ndarray:
        """Gradients in ``q`` ((metrics, classes, rows)) turned into ones per calibrated
        column."""
        if self.raw_total is None:  # two classes: q0 = 1 - c, q1 = c
            return (g[:, 1] - g[:, 0])[:, None]
        # q_k = c_k / S: dq_k / dc_j = (delta_kj - q_k) / S; rows that fell back to the raw
        # probabilities (S = 0) do not move with the calibration
        if means is None:
            means = (g * self.q).sum(axis=1)
        total = self.raw_total
        if total.min() > 0:
            return (g - means[:, None]) / total
        moved = (g - means[:, None]) / np.where(total > 0, total, 1.0)
        return np.where(total > 0, moved, 0.0)


@dataclass(frozen=True)
class _Knots:
    """Every step's knots in a row, with what the interpolation needs per knot (the next
    knot's values where there is one: the last knot of a step extends it flat)."""

    x: np.ndarray
    y: np.ndarray
    slope: np.ndarray  # to the next knot, as np.interp computes it (0 after the last)
    gap: np.ndarray  # to the next knot (0 after the last)
    block: np.ndarray  # the knot's block, numbered across the steps
    next_block: np.ndarray  # the next knot's block (its own after the last)
    rising: np.ndarray  # whether the next knot is in another block
    offsets: np.ndarray  # where each step's knots start
    first: np.ndarray  # per step, its first knot's score

    @classmethod
    def of(cls, steps: Sequence[Step], block_offsets: np.ndarray) -> _Knots:
        slopes, gaps, blocks, nexts = [], [], [], []
        for step, offset in zip(steps, block_offsets, strict=True):
            gap = np.append(np.diff(step.x), 0.0)
            slope = np.zeros(len(step.x))
            slope[:-1] = (step.y[1:] - step.y[:-1]) / gap[:-1]
            block = step.block + offset
            slopes.append(slope)
            gaps.append(gap)
            blocks.append(block)
            nexts.append(np.append(block[1:], block[-1]))
        block, next_block = np.concatenate(blocks), np.concatenate(nexts)
        return cls(
            x=np.concatenate([s.x for s in steps]),
            y=np.concatenate([s.y for s in steps]),
            slope=np.concatenate(slopes),
            gap=np.concatenate(gaps),
            block=block,
            next_block=next_block,
            rising=block != next_block,
            offsets=np.cumsum([0] + [len(s.x) for s in steps])[:-1],
            first=np.array([s.x[0] for s in steps]),
        )


@dataclass(frozen=True)
class _Cross:
    blocks: np.ndarray  # (classes, sampled rows): each sampled row's blocks, numbered across
    p: np.ndarray  # (classes, sampled rows) probabilities
    squares: np.ndarray  # squared weights of the sampled rows
    scale: float  # reference rows per sampled row
    # sum over the sampled rows of w**2 p_j p_k at (block of j, block of k), when not too big
    matrix: np.ndarray | None


@dataclass(frozen=True)
class Calibrator:
    """Isotonic calibration, one class against the rest: each class's step function (for two
    classes only the positive class's; the negative is its complement)."""

    steps: tuple[Step, ...]
    weights: np.ndarray  # the reference rows' weights the steps were fitted with

    @functools.cached_property
    def offsets(self) -> np.ndarray:
        """Where each step's blocks start when all steps' blocks are numbered in a row."""
        return np.cumsum([0] + [len(s.total) for s in self.steps])[:-1]

    @functools.cached_property
    def knots(self) -> _Knots:
        return _Knots.of(self.steps, self.offsets)

    @functools.cached_property
    def n_blocks(self) -> int:
        return int(sum(len(s.total) for s in self.steps))

    @functools.cached_property
    def totals(self) -> np.ndarray:
        """Every step's blocks' total weights, in a row."""
        return np.concatenate([s.total for s in self.steps])

    @functools.cached_property
    def block_variance(self) -> np.ndarray:
        """Per block, the variance of its mean (two classes: blocks independent)."""
        step = self.steps[0]
        return step.mean * (1.0 - step.mean) * step.squares / step.total**2

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
        blocks = np.stack([s.row_block[rows] for s in self.steps]) + self.offsets[:, None]
        p = self.row_probabilities[:, rows]
        squares = self.squares[rows]
        matrix = None
        size = self.n_blocks
        if size <= CROSS_MATRIX_BLOCKS:
            pairs = blocks[:, None, :] * size + blocks[None, :, :]
            products = squares * p[:, None, :] * p[None, :, :]
            matrix = np.bincount(pairs.ravel(), weights=products.ravel(), minlength=size * size)
            matrix = matrix.reshape(size, size)
        return _Cross(blocks, p, squares, n / len(rows), matrix)

    @functools.cached_property
    def own(self) -> np.ndarray:
        """Per block (all steps' in a row): the sum over its rows of w**2 times their
        probability of its class."""
        squares = self.squares
        return np.concatenate(
            [
                np.bincount(s.row_block, weights=squares * p, minlength=len(s.total))
                for s, p in zip(self.steps, self.row_probabilities, strict=True)
            ]
        )

    @classmethod
    def fit(
        cls, probabilities: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None
    ) -> Calibrator:
        """Fit on (rows, classes) probabilities and class-index labels, rows optionally
        weighted (the weights need not sum to anything in particular)."""
        if weights is None:
            weights = np.ones(len(labels))
        return fit_distinct(distinct(probabilities, labels), np.asarray(weights, dtype=np.float64))

    def apply(self, probabilities: np.ndarray) -> np.ndarray:
        """(rows, classes) calibrated probabilities, rows summing to one."""
        return self.calibrate(probabilities).q.T

    def calibrate(
        self,
        probabilities: np.ndarray,
        orders: np.ndarray | None = None,
        ordered: np.ndarray | None = None,
    ) -> Calibrated:
        """A window calibrated. ``orders``, ``ordered``: the argsort of each calibrated column
        and the sorted columns ((columns, rows), :func:`sorted_columns`), when the caller has
        them.

        The columns are calibrated together: each sorted (the knot search is a merge then),
        the interpolation ``np.interp``'s own arithmetic on a (columns, rows) array, the
        results scattered back to the rows once.
        """
        n, n_classes = probabilities.shape
        columns = calibrated_columns(n_classes)
        width = len(columns)
        knots = self.knots
        if orders is None or ordered is None:
            orders, ordered = sorted_columns(probabilities)
        # flat position of each column's values in ascending order
        flat = orders + (n * np.arange(width))[:, None]
        # each value's left knot: the knots at or below it, counted by merging the few knots
        # into the sorted values (knot k is at or below value i when fewer than i + 1 values
        # lie below it) rather than searching the knots for every value
        below = np.concatenate(
            [
                np.searchsorted(ordered[j], step.x, side="left") + j * (n + 1)
                for j, step in enumerate(self.steps)
            ]
        )
        passed = np.bincount(below, minlength=width * (n + 1)).reshape(width, n + 1)[:, :n]
        left = np.cumsum(passed, axis=1)
        left += knots.offsets[:, None] - 1
        # below a step's first knot: that knot, flat (np.interp's left value)
        np.maximum(left, knots.offsets[:, None], out=left)
        inside = np.maximum(ordered, knots.first[:, None]) - knots.x[left]
        # at or past a step's last knot its slope 0 gives the last value (np.interp's right)
        values = knots.slope[left] * inside + knots.y[left]
        calibrated = np.empty(width * n)
        calibrated[flat] = values
        calibrated = calibrated.reshape(width, n)
        np.clip(calibrated, 0.0, 1.0, out=calibrated)
        blocks = np.empty(width * n, dtype=np.int64)
        blocks[flat] = knots.block[left]
        # sorted positions between two blocks' knots (few: the rising steps are narrow)
        between = np.flatnonzero(knots.rising[left])
        knot = left.ravel()[between]
        to = knots.next_block[knot]
        share = np.minimum(inside.ravel()[between] / knots.gap[knot], 1.0)
        q, total = renormalised(probabilities, calibrated)
        return Calibrated(q, self, blocks, flat.ravel()[between], to, share, total)


def renormalised(
    probabilities: np.ndarray, calibrated: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    """(classes, rows) probabilities from the calibrated columns ((columns, rows), in [0, 1]),
    and per row the columns' sum before renormalising (None for two classes)."""
    if probabilities.shape[1] == 2:
        return np.vstack([1.0 - calibrated, calibrated]), None
    total = calibrated.sum(axis=0)
    # one-vs-rest calibrators do not sum to 1; a row every calibrator clipped to 0 (scores
    # outside anything the reference showed) keeps the model's own probabilities instead
    empty = total <= 1e-12
    if not empty.any():
        return calibrated / total, total
    raw = probabilities.T / np.maximum(probabilities.sum(axis=1), 1e-300)
    q = np.where(empty, raw, calibrated / np.where(empty, 1.0, total))
    return q, np.where(empty, 0.0, total)
