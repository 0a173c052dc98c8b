"""The exact null distribution of the variance-weighted two-sample KS statistic.

The statistic (:mod:`detectors.univariate.weighted_ks`) is the largest
``|F_ref(x) - F_cur(x)| / sqrt(H(x) (1 - H(x)))`` over the pooled values, ``H`` the pooled
empirical CDF: the weight of ``KS2sample(weight = 0.5)`` in the R package KSgeneral (Dimitrova,
Kaishev and Tan). When the two samples are exchangeable every arrangement of the ``n``
reference and ``m`` current values in the pooled order is equally likely, so the statistic is
a function of a uniformly random lattice path from ``(0, 0)`` to ``(n, m)``: after ``k``
pooled values, ``i`` reference and ``k - i`` current ones. Its tail ``P(D >= d)`` is the
probability that the path leaves the band ``|i / n - (k - i) / m| < d sqrt(h (1 - h))``,
``h = k / N``, somewhere: :func:`tail_probabilities` carries the probability of every point
of the band from one diagonal ``k`` to the next (a step to the reference with probability
``(n - i) / (N - k)``) and adds up what leaves it, so a tail of 1e-12 is as accurate as one
of 0.5 (no ``1 - P(inside)`` cancellation). Only points of the band are kept, about
``z sqrt(n m / N)`` per diagonal for a standardized statistic ``z = d sqrt(n m / N)`` instead
of ``min(n, m)``.

The distribution depends only on ``(n, m)`` (the continuous case): with ties the statistic is
taken only where a run of equal values ends, never larger than over every position, so the
p-value is conservative, as KS's (``ks_2samp``) is. :func:`p_values` computes the tail at the
observed statistics directly unless both samples have ``TABLE_FROM`` values. The cost is about
``N z sqrt(n m / N)`` per feature (0.04 s for 64 features of an unchanged window of 900
against 200 values, 0.18 s for 50 of 2,000 against 2,000, on one core), so with both samples
that large the tail is computed once per ``(n, m)`` on a grid of standardized statistics,
cached, and read at the grid point at or below each statistic. The tail is a step function
(a few extreme arrangements, the smallest values all from one sample, carry much of it), so
interpolating would be off by up to 25% (measured, 5,000 against 1,000 values) in either
direction; reading down is never below the exact p-value, and for p-values above 1e-8 was at
most 1.5x above it where both samples have 1,000 values or more (measured; with fewer on one
side the steps are larger, see ``TABLE_FROM``).
"""

from __future__ import annotations

import functools

import numpy as np

# the table's grid of standardized statistics z = d sqrt(n m / N): coarse where p-values are
# above 0.5 anyway, 1/32 apart up to FINE_UP_TO, then 2% apart until the tail is below
# TAIL_FLOOR. A window much smaller than its reference has a heavy tail (one current value
# above every reference value, probability m / N, alone gives z near sqrt(n / m)), so the grid
# goes on as far as the tail needs; balanced sizes stop at FINE_UP_TO (2,000 against 2,000:
# 1.4e-13 there)
GRID_STEP = 1.0 / 32.0
FINE_UP_TO = 8.0
Z_FINE = np.r_[np.arange(0.0, 2.0, 0.25), np.arange(2.0, FINE_UP_TO + 1e-9, GRID_STEP)]
GROWTH = 1.02
TAIL_FLOOR = 1e-12
# p-values come from the per-(n, m) table when both samples have at least TABLE_FROM values;
# with fewer on one side the tail has large steps (the extreme arrangements of the smaller
# sample are atoms), and reading the grid point below a statistic overstated p-values of 1e-4
# to 1e-6 by 2.6x (6,000 against 500 values), 7.7x (4,000 against 250) and up to 90x (2,500
# against 10); at 3,000 against 1,000 by at most 1.28x for p-values above 1e-8 (measured)
TABLE_FROM = 1000
# relative slack: a path reaching the observed statistic (float rounding aside) counts as beyond
_SLACK = 1e-12


def _scale(n: int, m: int) -> float:
    """``sqrt(n m / N)``: the standardized statistic is ``d`` times this."""
    return float(np.sqrt(n * m / (n + m)))


def _place(target: np.ndarray, target_lo: int, values: np.ndarray, values_lo: int) -> None:
    """Add ``values`` (columns from index ``values_lo``) into ``target`` (columns from index
    ``target_lo``) where their indices overlap."""
    a = max(target_lo, values_lo)
    b = min(target_lo + target.shape[1], values_lo + values.shape[1])
    if a < b:
        target[:, a - target_lo : b - target_lo] += values[:, a - values_lo : b - values_lo]


def band_bound(z: float) -> float:
    """The standardized statistic whose band a statistic ``z`` is computed in: the next power of
    two, at least 4 (most features of an unchanged window are below 4, so they share one pass
    over the ``N`` diagonals). The band's width, the cost's factor beside ``N``, grows with it;
    grouping by power of two keeps a feature's p-value a function of its own statistic alone."""
    return float(2.0 ** max(2, int(np.ceil(np.log2(max(z, 1.0))))))


def tail_probabilities(
    statistics: np.ndarray, n: int, m: int, up_to: float | None = None
) -> np.ndarray:
    """``P(D >= d)`` for each ``d`` in ``statistics`` (weighted gaps, not standardized) when ``n``
    reference and ``m`` current values are exchangeable (no ties), exactly (float64).

    Only the band of the standardized statistic ``up_to`` (default: the largest given) is
    carried; every statistic must be within it.

    >>> tail_probabilities(np.array([0.0, 10.0]), 4, 3).tolist()
    [1.0, 0.0]
    """
    if n < 1 or m < 1:
        raise ValueError("both samples need at least one value")
    d = np.asarray(statistics, dtype=np.float64)
    scale = _scale(n, m)
    bound = float(d.max(initial=0.0)) * scale if up_to is None else up_to
    if float(d.max(initial=0.0)) * scale > bound * (1.0 + 1e-9):
        raise ValueError(f"a statistic is beyond the band of {bound}")
    big_n = n + m
    limit = d[:, None] * (1.0 - _SLACK)
    # the band's half-width in reference counts, |i - k n / N| < d w n m / N with w <= 1/2
    reach = int(np.ceil(bound * 0.5 * scale)) + 2
    mass = np.ones((len(d), 1))
    lo = hi = 0
    escaped = np.zeros(len(d))
    for k in range(big_n):
        centre = (k + 1) * n / big_n
        new_lo = max(0, k + 1 - m, int(np.floor(centre)) - reach)
        new_hi = min(k + 1, n, int(np.ceil(centre)) + reach)
        i = np.arange(lo, hi + 1)
        new = np.zeros((len(d), new_hi - new_lo + 1))
        _place(new, new_lo, mass * ((m - k + i) / (big_n - k)), lo)  # a current value: i stays
        _place(new, new_lo, mass * ((n - i) / (big_n - k)), lo + 1)  # a reference value: i + 1
        # nothing falls outside the window: the band is at least 2 points inside it and a step
        # moves a point by at most one, the centre by n / N < 1
        if k + 1 < big_n:
            h = (k + 1) / big_n
            at = np.arange(new_lo, new_hi + 1)
            gap = np.abs(at / n - (k + 1 - at) / m) / np.sqrt(h * (1.0 - h))
            out = gap[None, :] >= limit
            escaped += np.where(out, new, 0.0).sum(axis=1)
            new[out] = 0.0
        mass, lo, hi = new, new_lo, new_hi
    return np.clip(escaped, 0.0, 1.0)


def _by_band(statistics: np.ndarray, n: int, m: int) -> np.ndarray:
    """:func:`tail_probabilities` with the statistics grouped by :func:`band_bound`."""
    z = statistics * _scale(n, m)
    bounds = np.array([band_bound(float(v)) for v in z])
    out = np.empty(len(z))
    for bound in np.unique(bounds):
        group = bounds == bound
        out[group] = tail_probabilities(statistics[group], n, m, up_to=float(bound))
    return out


# a few kilobytes each; a scheduler with many models needs one per model version and window size
@functools.lru_cache(maxsize=1024)
def _table(n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """The grid of standardized statistics for ``n`` against ``m`` values and the tail at each
    point: ``Z_FINE`` in two passes (the low statistics need a narrower band), then points
    ``GROWTH`` apart, 32 a pass, until the tail is below ``TAIL_FLOOR``."""
    scale = _scale(n, m)
    low = Z_FINE <= 4.0
    grid = [Z_FINE[low], Z_FINE[~low]]
    tails = [
        tail_probabilities(Z_FINE[low] / scale, n, m, up_to=4.0),
        tail_probabilities(Z_FINE[~low] / scale, n, m, up_to=FINE_UP_TO),
    ]
    while tails[-1][-1] >= TAIL_FLOOR:
        points = grid[-1][-1] * GROWTH ** np.arange(1, 33)
        grid.append(points)
        tails.append(tail_probabilities(points / scale, n, m, up_to=float(points[-1])))
    return np.concatenate(grid), np.concatenate(tails)


def p_values(statistics: np.ndarray, n: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Two-sample p-values of weighted gaps ``statistics`` with per-feature sizes ``n``, ``m``
    (each at least 1): exact unless both have ``TABLE_FROM`` values, else the cached table's
    tail at the grid point at or below each standardized statistic (conservative)."""
    statistics = np.asarray(statistics, dtype=np.float64)
    out = np.ones(statistics.shape)
    pairs = np.stack([n, m], axis=1).astype(np.int64)
    for size_n, size_m in {(int(a), int(b)) for a, b in pairs}:
        same = (pairs[:, 0] == size_n) & (pairs[:, 1] == size_m)
        if min(size_n, size_m) < TABLE_FROM:
            out[same] = _by_band(statistics[same], size_n, size_m)
        else:
            grid, tails = _table(size_n, size_m)
            z = statistics[same] * _scale(size_n, size_m) * (1.0 + _SLACK)
            out[same] = tails[np.searchsorted(grid, z, side="right") - 1]
    return np.clip(out, 0.0, 1.0)
