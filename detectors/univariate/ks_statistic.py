"""The two-sample Kolmogorov-Smirnov statistic of every feature, exact with ties and missing values.

Everything is counted in integers: with ``n`` reference and ``m`` current values, the gap
between the two empirical CDFs at any point is ``|a * m - b * n| / (n * m)`` for the counts
``a`` (reference) and ``b`` (current) at or below it, and the statistic is the largest such
numerator over one division. Every path gives the same numerator, so the same float.

On the CPU, with no missing value, most of the window is never placed in the reference at all
(:func:`grid_numerators`). Placing every value costs more than the sort of the window, the
floor of any exact ECDF test: on 200 features x 20,000 rows a binary search per value took
about 2.3x that sort, a stable argsort of the pooled rows (the earlier merge) about 5x.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from detectors.univariate.columns import SortedColumns

# every GRID_STEP-th value of the sorted window is placed in the reference exactly, then every
# GRID_STEP // 4-th where the gap could be largest (see grid_numerators)
GRID_STEP = 64


def ref_counts_at_or_below(ref: SortedColumns, cur: SortedColumns) -> torch.Tensor:
    """``#ref <= y`` for every current value ``y``, per feature (int64, cur's shape).

    ``searchsorted(right=True)``: on the CPU numpy's, row by row (it narrows each search with
    the previous result, the window being sorted), about twice as fast as a stable argsort of
    the pooled rows; elsewhere torch's, batched.
    """
    if ref.values.device.type != "cpu":
        return torch.searchsorted(ref.values, cur.values, right=True)
    x, y = ref.values.numpy(), cur.values.numpy()
    out = np.empty(y.shape, dtype=np.int64)
    for j in range(len(x)):
        out[j] = np.searchsorted(x[j], y[j], side="right")
    return torch.from_numpy(out)


def ks_statistic(ref: SortedColumns, cur: SortedColumns) -> torch.Tensor:
    """Largest gap between the two empirical CDFs, one float64 per feature (cur's device)."""
    n, m = ref.counts, cur.counts
    full = bool((n == ref.values.shape[1]).all() and (m == cur.values.shape[1]).all())
    if ref.values.shape[1] == 0 or cur.values.shape[1] == 0:  # untestable: no p-value either
        numerators = torch.zeros(len(n), dtype=torch.int64, device=n.device)
    elif ref.values.device.type == "cpu" and full:
        numerators = torch.from_numpy(grid_numerators(ref.values.numpy(), cur.values.numpy()))
    else:
        numerators = general_numerators(ref, cur)
    scale = n.clamp(min=1).to(torch.float64) * m.clamp(min=1).to(torch.float64)
    return numerators.to(torch.float64) / scale


def general_numerators(ref: SortedColumns, cur: SortedColumns) -> torch.Tensor:
    """``D * n * m`` per feature (int64): every current value placed in the reference.

    The supremum is taken at each distinct current value ``y`` (``#cur <= y`` against
    ``#ref <= y``) and just below it (``#cur < y`` against ``#ref < y``); between two
    consecutive distinct current values both CDFs are monotone, so these are all the extremes,
    the ones before the first and after the last value included. Missing values are +inf at
    the end of each row and are neither counted nor placed.
    """
    x, y = ref.values, cur.values
    width = y.shape[1]
    le = ref_counts_at_or_below(ref, cur)
    # a current value shared with the reference equals the reference value just below its
    # count (missing values, +inf on both sides, included)
    shared = (le > 0) & (x.gather(1, (le - 1).clamp(min=0)) == y)
    lt = torch.where(shared, torch.searchsorted(x, y, right=False), le) if shared.any() else le
    n, m = ref.counts[:, None], cur.counts[:, None]
    k = torch.arange(width, device=y.device)[None, :]
    following = torch.cat([y[:, 1:], torch.full_like(y[:, :1], float("inf"))], dim=1)
    last_of_ties = (k < m) & (y != following)  # #cur <= y is k + 1 here
    cur_le = (k + 1) * n
    zero = torch.zeros((), dtype=torch.int64, device=y.device)
    at_values = torch.where(last_of_ties, (le * m - cur_le).abs(), zero).amax(dim=1)
    # #ref < the next distinct current value (all of the reference after the last one)
    lt_next = torch.cat([lt[:, 1:], n], dim=1)
    between = torch.where(last_of_ties, lt_next * m - cur_le, zero).amax(dim=1)
    before_first = lt[:, 0] * m[:, 0]
    return torch.maximum(torch.maximum(at_values, between), before_first)


def grid_numerators(x: np.ndarray, y: np.ndarray, step: int = GRID_STEP) -> np.ndarray:
    """``D * n * m`` per feature (int64) for sorted rows without missing values, exactly.

    Every ``step``-th window value is placed in the reference (a binary search each), and the
    gap is computed exactly there and just below it. Between two neighbouring grid values
    ``u < v`` both CDFs are monotone, so the gap there is at most the larger of
    ``#cur < v`` against ``#ref <= u`` and ``#ref < v`` against ``#cur <= u``. Where that
    bound beats the largest exact gap found, every ``step // 4``-th value in between is placed
    and bounded the same way; only in the intervals still open are all values placed. On
    20,000 Gaussian rows (drifted or not) that is about 800 of the 20,000 values per feature.
    The result is :func:`general_numerators`' (tests compare them on ties, shared values and
    drift).
    """
    features, m = y.shape
    n = x.shape[1]
    grid = np.unique(np.r_[np.arange(0, m, step), m - 1])
    values = y[:, grid]
    le = np.empty(values.shape, dtype=np.int64)
    for j in range(features):
        le[j] = np.searchsorted(x[j], values[j], side="right")
    ties = _ties(x, y, grid, values, le)
    if ties is None:
        # #ref < v = #ref <= v, #cur < v = g, #cur <= v = g + 1 (g: the grid index), so the
        # gaps are |g n - le m| and |(g + 1) n - le m|: with e = le m - g n, e and n - e
        excess = le * m
        excess -= grid * n
        best = np.maximum(excess.max(axis=1), n - excess.min(axis=1))
        # bound: max(g' n - le m, le' m - (g + 1) n) = dg n + max(-e, e' - n)
        bound = np.maximum(-excess[:, :-1], excess[:, 1:] - n)
        bound += np.diff(grid) * n
        at_grid = _Counts(
            le, le, np.broadcast_to(grid, le.shape), np.broadcast_to(grid + 1, le.shape)
        )
    else:
        at_grid = _Counts(le, *ties)
        best = at_grid.gaps(n, m).max(axis=1)
        bound = at_grid.bound(n, m)
    rows, blocks = np.nonzero(bound > best[:, None])
    starts, stops = grid[blocks], grid[blocks + 1]  # open intervals (start, stop)
    sub = step // 4
    if sub > 1 and len(rows):
        # points start, start + sub, ..., stop per open interval (stop repeated if it is short)
        points = np.minimum(starts[:, None] + np.arange(0, step + 1, sub), stops[:, None])
        points[:, -1] = stops
        inner = points[:, 1:-1]
        counts = _exact_counts(x, y, np.repeat(rows, inner.shape[1]), inner.ravel())
        inner_counts = counts.reshape(inner.shape)
        np.maximum.at(best, rows, inner_counts.gaps(n, m).max(axis=1))
        ends = (rows, blocks), (rows, blocks + 1)
        chain = _Counts.stack([at_grid.take(*ends[0]), inner_counts, at_grid.take(*ends[1])])
        pick, piece = np.nonzero(chain.bound(n, m) > best[rows][:, None])
        rows, starts, stops = rows[pick], points[pick, piece], points[pick, piece + 1]
    lengths = np.maximum(stops - starts - 1, 0)
    total = int(lengths.sum())
    if total == 0:
        return best
    within = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    rows = np.repeat(rows, lengths)
    found = _exact_counts(x, y, rows, np.repeat(starts + 1, lengths) + within).gaps(n, m)
    heads = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])  # rows ascend
    np.maximum.at(best, rows[heads], np.maximum.reduceat(found, heads))
    return best


@dataclass(frozen=True)
class _Counts:
    """At some window values v: #ref <= v, #ref < v, #cur < v, #cur <= v (arrays alike)."""

    le: np.ndarray
    lt: np.ndarray
    first: np.ndarray
    last1: np.ndarray

    def gaps(self, n: int, m: int) -> np.ndarray:
        """The gap numerator at v and just below it, the larger."""
        at = np.abs(self.last1 * n - self.le * m)
        return np.maximum(at, np.abs(self.first * n - self.lt * m))

    def bound(self, n: int, m: int) -> np.ndarray:
        """The most the gap can reach strictly between neighbours along the last axis."""
        cur_up = self.first[..., 1:] * n - self.le[..., :-1] * m
        return np.maximum(cur_up, self.lt[..., 1:] * m - self.last1[..., :-1] * n)

    def take(self, *where: np.ndarray) -> _Counts:
        return _Counts(*(a[where][:, None] for a in (self.le, self.lt, self.first, self.last1)))

    def reshape(self, shape: tuple[int, ...]) -> _Counts:
        return _Counts(*(a.reshape(shape) for a in (self.le, self.lt, self.first, self.last1)))

    @staticmethod
    def stack(parts: list[_Counts]) -> _Counts:
        fields = ("le", "lt", "first", "last1")
        return _Counts(*(np.concatenate([getattr(p, f) for p in parts], axis=1) for f in fields))


def _ties(
    x: np.ndarray, y: np.ndarray, grid: np.ndarray, values: np.ndarray, le: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``#ref < v``, ``#cur < v`` and ``#cur <= v`` at the grid values ``v = y[:, grid]``.

    None when no grid value is tied (within the window, or with the reference): they are then
    ``#ref <= v``, the grid index and the one after. Otherwise a search each, for the values
    that have ties.
    """
    m = y.shape[1]
    flat_x = x.ravel()
    offsets = np.arange(0, flat_x.size, x.shape[1])[:, None]
    shared = flat_x[np.maximum(le - 1, 0) + offsets] == values
    shared &= le > 0
    before = y[:, np.maximum(grid - 1, 0)] == values
    before[:, grid == 0] = False
    after = y[:, np.minimum(grid + 1, m - 1)] == values
    after[:, grid == m - 1] = False
    if not (shared.any() or before.any() or after.any()):
        return None
    lt, first, last1 = le.copy(), np.repeat(grid[None, :], len(y), axis=0), None
    last1 = first + 1
    for tied, out, rows_of, side in (
        (shared, lt, x, "left"),
        (before, first, y, "left"),
        (after, last1, y, "right"),
    ):
        rows, cols = np.nonzero(tied)
        if len(rows):
            out[rows, cols] = search_rows(rows_of, rows, values[rows, cols], side)
    return lt, first, last1


def _exact_counts(x: np.ndarray, y: np.ndarray, rows: np.ndarray, idx: np.ndarray) -> _Counts:
    """The counts at the window values ``y[rows, idx]`` (``rows`` ascend).

    ``#ref < v``, ``#cur < v`` and ``#cur <= v`` are searched for only where ties (within the
    window, or shared with the reference) make them differ from ``#ref <= v``, ``idx`` and
    ``idx + 1``.
    """
    n, m = x.shape[1], y.shape[1]
    flat_x, flat_y = x.ravel(), y.ravel()
    at = rows * m + idx
    values = flat_y[at]
    le = search_rows(x, rows, values, "right")
    lt = le
    shared = (le > 0) & (flat_x[rows * n + np.maximum(le - 1, 0)] == values)
    if shared.any():
        lt = le.copy()
        lt[shared] = search_rows(x, rows[shared], values[shared], "left")
    first = idx
    tied = (idx > 0) & (flat_y[np.maximum(at - 1, 0)] == values)
    if tied.any():
        first = idx.copy()
        first[tied] = search_rows(y, rows[tied], values[tied], "left")
    last1 = idx + 1
    tied = (idx < m - 1) & (flat_y[np.minimum(at + 1, flat_y.size - 1)] == values)
    if tied.any():
        last1[tied] = search_rows(y, rows[tied], values[tied], "right")
    return _Counts(le, lt, first, last1)


def search_rows(
    sorted_rows: np.ndarray, rows: np.ndarray, keys: np.ndarray, side: str
) -> np.ndarray:
    """``searchsorted(sorted_rows[r], key, side)`` for each (r, key); ``rows`` ascend."""
    out = np.empty(len(keys), dtype=np.int64)
    bounds = np.searchsorted(rows, np.arange(len(sorted_rows) + 1))
    for j in np.flatnonzero(np.diff(bounds)):
        a, b = bounds[j], bounds[j + 1]
        out[a:b] = np.searchsorted(sorted_rows[j], keys[a:b], side=side)  # type: ignore[call-overload]
    return out
