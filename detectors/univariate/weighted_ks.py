"""The variance-weighted two-sample KS test, alone and Cauchy-combined with KS.

KS's largest gap between the two empirical CDFs is blind where the CDFs are near 0 or 1: a
handful of values beyond the reference's range moves them by a handful over the window's size.
Dividing each gap by its standard deviation under exchangeability, ``sqrt(H (1 - H))`` with
``H`` the pooled CDF, makes a gap in the tails count as much as one in the middle: the weight
``(t (1 - t))^(-1/2)`` of ``KS2sample(weight = 0.5)`` in the R package KSgeneral (Dimitrova,
Kaishev and Tan), the two-sample form of the "normalized" KS statistics of Eicker and
Jaeschke (1979). Its p-value is exact (:mod:`detectors.univariate.weighted_ks_null`).

On ``benchmarks/quality.py`` (200 windows a cell, per feature + BH) the weighted test alone
flagged 0.99 of the windows where 5% of image patches have two black pixels (Anderson-Darling
0.12, KS 0.04), 1.00 of gaussian noise sd 0.05 (0.06, 0.04) and 0.96 of a scale change x1.5
(0.67, 0.17); on a mild brightness/contrast change, a shift of the bulk, 0.66 where KS flags
0.69. The registry's ``ks_weighted_ks`` Cauchy-combines its p-value with KS's (as
``anderson_ks`` does with Anderson-Darling's): 0.68 there, 0.96 of the 5% occlusion, 0.94 of
the scale change; inside the default monitor, whose numeric test it is, at or above the better
of KS and one MMD in every cell (README, Measured: detection quality). The weighted statistic
sees at most ``MAX_VALUES`` rows a side, a seeded random subset (:func:`at_most`): its exact
p-value costs about ``N^1.5`` (module ``weighted_ks_null``). The weighted test alone is not in
the registry (docs/calibration.md).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from detectors.univariate.anderson_ks import cauchy_combination
from detectors.univariate.columns import SortedColumns, feature_chunks, sort_columns
from detectors.univariate.ks import ks_p_values_by_size
from detectors.univariate.ks_statistic import ks_statistic, ref_counts_at_or_below
from detectors.univariate.sorted_test import Outcome, SortedColumnsTest
from detectors.univariate.weighted_ks_null import p_values

# the weighted statistic looks at no more than this many rows a side (the same random subset
# for every window of that size): its exact p-value costs about N^1.5 (a table per pair of sizes
# took 0.8 s at 2,000 against 2,000 values and 26 s at 20,000 against 20,000), and a window
# whose size changes every run (by time) pays it every run. KS, beside it, sees every row
MAX_VALUES = 2000


@functools.lru_cache(maxsize=256)
def kept_rows(count: int, keep: int) -> np.ndarray:
    """``keep`` of the rows ``0 .. count - 1``, uniformly at random and in order, seeded by
    ``(count, keep)``: the same window always keeps the same rows.

    Rows, not positions in a sorted column: under exchangeability a fixed set of rows is an
    exchangeable sample again, where a fixed set of ranks is not (the same positions of every
    sorted column are no sample of it: measured, they flagged 0.34 of exchangeable columns at
    alpha 0.2).

    >>> kept_rows(5, 3).tolist()
    [1, 2, 3]
    """
    rng = np.random.default_rng([count, keep])
    rows = np.sort(rng.choice(count, size=keep, replace=False))
    rows.flags.writeable = False  # cached and shared
    return rows


def at_most(rows: np.ndarray, keep: int | None) -> np.ndarray:
    """``rows`` (a matrix) itself, or ``keep`` of them (:func:`kept_rows`) when it has more."""
    if keep is None or len(rows) <= keep:
        return rows
    return rows[kept_rows(len(rows), keep)]


def _last_of_ties(values: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Finite positions whose value differs from the next one (the end of each run)."""
    following = torch.cat([values[:, 1:], torch.full_like(values[:, :1], float("inf"))], 1)
    position = torch.arange(values.shape[1], device=values.device)[None, :]
    return (position < counts[:, None]) & (values != following)


def _gaps(
    own: torch.Tensor, other: torch.Tensor, n: torch.Tensor, m: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """For counts at or below pooled values: KS's numerator ``|own m - other n|`` (int64, so
    its largest over ``n m`` is :func:`ks_statistic`'s float) and the weighted gap
    ``|own / n - other / m| / sqrt(h (1 - h))``."""
    numerator = (own * m[:, None] - other * n[:, None]).abs()
    total = (n + m)[:, None].to(torch.float64)
    h = (own + other).to(torch.float64) / total
    gap = (own.to(torch.float64) / n[:, None] - other.to(torch.float64) / m[:, None]).abs()
    inside = (h > 0) & (h < 1)
    weighted = torch.where(inside, gap / torch.sqrt(torch.where(inside, h * (1 - h), 1.0)), 0.0)
    return numerator, weighted


def both_statistics(ref: SortedColumns, cur: SortedColumns) -> tuple[torch.Tensor, torch.Tensor]:
    """The largest variance-weighted gap and KS's statistic per feature (float64, cur's device),
    from one placement of each sample in the other: both are taken at the end of every run of
    equal pooled values, where the two empirical CDFs are compared; 0 where a side has no
    finite value.

    >>> from detectors.univariate.columns import sort_columns
    >>> ref = sort_columns(np.array([[1.0], [2.0], [3.0]]), torch.device("cpu"))
    >>> cur = sort_columns(np.array([[4.0], [5.0]]), torch.device("cpu"))
    >>> weighted, ks = both_statistics(ref, cur)  # 3 ref of 5 pooled: 1 / sqrt(.24)
    >>> round(float(weighted[0]), 6), float(ks[0])
    (2.041241, 1.0)
    """
    n, m = ref.counts.to(cur.values.device), cur.counts
    zero = torch.zeros(len(m), dtype=torch.float64, device=cur.values.device)
    if ref.values.shape[1] == 0 or cur.values.shape[1] == 0:
        return zero, zero.clone()
    n_safe, m_safe = n.clamp(min=1), m.clamp(min=1)
    position = lambda v: torch.arange(1, v.shape[1] + 1, device=v.device)[None, :]  # noqa: E731
    # at every current value: #ref <= y against its own count
    ref_below = ref_counts_at_or_below(ref, cur).to(cur.values.device)
    cur_ends = _last_of_ties(cur.values, m)
    numerator_cur, at_cur = _gaps(
        ref_below, position(cur.values).expand_as(ref_below), n_safe, m_safe
    )
    # at every reference value: its own count against #cur <= x
    cur_below = ref_counts_at_or_below(cur, ref).to(cur.values.device)
    ref_ends = _last_of_ties(ref.values, n).to(cur_below.device)
    numerator_ref, at_ref = _gaps(
        position(ref.values).expand_as(cur_below), cur_below, n_safe, m_safe
    )
    weighted = torch.maximum(
        torch.where(cur_ends, at_cur, 0.0).amax(dim=1),
        torch.where(ref_ends, at_ref, 0.0).amax(dim=1),
    )
    numerator = torch.maximum(
        torch.where(cur_ends, numerator_cur, 0).amax(dim=1),
        torch.where(ref_ends, numerator_ref, 0).amax(dim=1),
    )
    ks = numerator.to(torch.float64) / (n_safe.to(torch.float64) * m_safe.to(torch.float64))
    testable = (n > 0) & (m > 0)
    return torch.where(testable, weighted, 0.0), torch.where(testable, ks, 0.0)


def weighted_ks_statistic(ref: SortedColumns, cur: SortedColumns) -> torch.Tensor:
    """The largest variance-weighted gap per feature (:func:`both_statistics`)."""
    return both_statistics(ref, cur)[0]


class _Thinned(SortedColumnsTest):
    """What both tests share: the weighted statistic on at most ``max_values`` rows a side
    (None: all; :func:`at_most`)."""

    def __init__(
        self,
        *,
        device: str = "auto",
        alpha: float = 0.05,
        correction: str = "bh",
        max_values: int | None = MAX_VALUES,
    ) -> None:
        if max_values is not None and (isinstance(max_values, bool) or max_values < 1):
            raise ValueError(f"max_values must be a positive integer or None, got {max_values!r}")
        super().__init__(device=device, alpha=alpha, correction=correction)
        self.max_values = max_values
        self._thinned_ref: SortedColumns | None = None

    def _after_fit(self, reference: np.ndarray) -> None:
        thinned = at_most(reference, self.max_values)
        self._thinned_ref = None if thinned is reference else sort_columns(thinned, self._device)

    def _thins(self, cur: SortedColumns) -> bool:
        """Whether the weighted statistic sees fewer rows than the test (``cur``'s width is the
        window's row count)."""
        wide = self.max_values is not None and cur.values.shape[1] > self.max_values
        return self._thinned_ref is not None or wide

    def _thinned_statistic(self, current: np.ndarray) -> tuple[np.ndarray, ...]:
        """The weighted statistic on the kept rows, and each side's values per feature there."""
        assert self._ref is not None
        ref = self._thinned_ref if self._thinned_ref is not None else self._ref
        cur = sort_columns(at_most(current, self.max_values), self._device)
        width = ref.values.shape[1] + cur.values.shape[1]
        parts = [
            weighted_ks_statistic(ref.rows(a, b), cur.rows(a, b)).cpu()
            for a, b in feature_chunks(ref.n_features, width, self.chunk_budget)
        ]
        statistic = torch.cat(parts).numpy() if parts else np.zeros(0)
        return statistic, ref.counts_numpy(), cur.counts_numpy()

    def _weighted(
        self,
        raw: np.ndarray,
        n_ref: np.ndarray,
        n_cur: np.ndarray,
        cur: SortedColumns,
        current: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The weighted statistic (``raw`` unless thinned) and its p-value per feature (NaN where
        a side has no value)."""
        statistic, n, m = (
            self._thinned_statistic(current) if self._thins(cur) else (raw, n_ref, n_cur)
        )
        p = np.full(statistic.shape, np.nan)
        testable = (n > 0) & (m > 0)
        p[testable] = p_values(statistic[testable], n[testable], m[testable])
        return statistic, p


class WeightedKSTest(_Thinned):
    """Variance-weighted two-sample KS per numeric feature (see the module's docstring).

    The statistic is the weighted gap, on at most ``max_values`` values a side (:func:`at_most`);
    the p-value is exact for continuous data and conservative with ties
    (:func:`detectors.univariate.weighted_ks_null.p_values`; with 1,000 values or more on both
    sides, read from a table per pair of sizes, never below the exact value). Missing values are
    left out per feature; a feature needs a value on each side.

    >>> import numpy as np
    >>> rng = np.random.default_rng(7)
    >>> test = WeightedKSTest(device="cpu").fit(rng.normal(size=(500, 2)))
    >>> window = rng.normal(size=(200, 2))
    >>> window[:8, 1] = -6.0  # 4% of one feature beyond the reference's range
    >>> test.score(window).drift.tolist()
    [False, True]
    """

    method = "weighted_ks"

    def _statistic(
        self, start: int, stop: int, ref: SortedColumns, cur: SortedColumns
    ) -> torch.Tensor:
        if self._thins(cur):  # computed on the kept rows in _test
            return torch.zeros(stop - start, dtype=torch.float64)
        return weighted_ks_statistic(ref, cur)

    def _test(
        self,
        raw: np.ndarray,
        n_ref: np.ndarray,
        n_cur: np.ndarray,
        cur: SortedColumns,
        current: np.ndarray,
    ) -> Outcome:
        statistic, p = self._weighted(raw, n_ref, n_cur, cur, current)
        return Outcome(statistic, p, np.isfinite(p))


class KSWeightedKSTest(_Thinned):
    """KS and the variance-weighted KS per feature, their p-values Cauchy-combined
    (:func:`detectors.univariate.anderson_ks.cauchy_combination`): KS where a change shifts
    the bulk, the weighted gap where it reaches the tails. KS sees every row, its p-value
    asymptotic from 1,000 values a side and exact below
    (:func:`detectors.univariate.ks.ks_p_values_by_size`); the weighted gap sees at most
    ``max_values`` rows a side (:func:`at_most`). The statistic is the weighted gap; ``extra``
    holds ``ks_statistic``, ``p_ks`` and ``p_weighted`` (NaN where the kept rows hold no value
    of a feature: KS's p-value decides it alone).

    >>> import numpy as np
    >>> rng = np.random.default_rng(7)
    >>> test = KSWeightedKSTest(device="cpu").fit(rng.normal(size=(500, 2)))
    >>> test.score(rng.normal(size=(400, 2)) + [0, 0.4]).drift.tolist()
    [False, True]
    """

    method = "ks_weighted_ks"

    def _statistic(
        self, start: int, stop: int, ref: SortedColumns, cur: SortedColumns
    ) -> torch.Tensor:
        if self._thins(cur):  # the weighted gap is computed on the kept rows in _test
            ks = ks_statistic(ref, cur)
            return torch.stack([torch.zeros_like(ks), ks], dim=1)
        return torch.stack(both_statistics(ref, cur), dim=1)

    def _test(
        self,
        raw: np.ndarray,
        n_ref: np.ndarray,
        n_cur: np.ndarray,
        cur: SortedColumns,
        current: np.ndarray,
    ) -> Outcome:
        weighted, ks_d = raw.reshape(-1, 2).T.copy()
        weighted, p_weighted = self._weighted(weighted, n_ref, n_cur, cur, current)
        testable = (n_ref > 0) & (n_cur > 0)
        p_ks, p = np.full(weighted.shape, np.nan), np.full(weighted.shape, np.nan)
        if testable.any():
            sizes = n_ref[testable], n_cur[testable]
            p_ks[testable] = ks_p_values_by_size(ks_d[testable], *sizes, self._device)
            both = testable & np.isfinite(p_weighted)
            p[testable] = p_ks[testable]
            p[both] = cauchy_combination(p_weighted[both], p_ks[both])
        extra = {"ks_statistic": ks_d, "p_ks": p_ks, "p_weighted": p_weighted}
        return Outcome(weighted, p, testable, extra)
