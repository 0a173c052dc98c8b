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
the scale change; inside the default monitor it is at or above the better of KS and one MMD in
every cell (README, Measured: detection quality). It is not the default for its cost: the exact
p-value of every feature is a recursion over ``N`` diagonals (module ``weighted_ks_null``).
The weighted test alone is not in the registry (docs/calibration.md).
"""

from __future__ import annotations

import numpy as np
import torch

from detectors.univariate.anderson_ks import cauchy_combination
from detectors.univariate.columns import SortedColumns
from detectors.univariate.ks import ks_p_values_by_size
from detectors.univariate.ks_statistic import ref_counts_at_or_below
from detectors.univariate.sorted_test import Outcome, SortedColumnsTest
from detectors.univariate.weighted_ks_null import p_values


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


class WeightedKSTest(SortedColumnsTest):
    """Variance-weighted two-sample KS per numeric feature (see the module's docstring).

    The statistic is the weighted gap; the p-value is exact for continuous data and
    conservative with ties (:func:`detectors.univariate.weighted_ks_null.p_values`; with 1,000
    values or more on both sides, read from a table per pair of sizes, never below the exact
    value). Missing values are left out per feature; a feature needs a value on each side.

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
        return weighted_ks_statistic(ref, cur)

    def _test(
        self,
        raw: np.ndarray,
        n_ref: np.ndarray,
        n_cur: np.ndarray,
        cur: SortedColumns,
        current: np.ndarray,
    ) -> Outcome:
        testable = (n_ref > 0) & (n_cur > 0)
        p = np.full(raw.shape, np.nan)
        p[testable] = p_values(raw[testable], n_ref[testable], n_cur[testable])
        return Outcome(raw, p, testable)


class KSWeightedKSTest(SortedColumnsTest):
    """KS and the variance-weighted KS per feature, their p-values Cauchy-combined
    (:func:`detectors.univariate.anderson_ks.cauchy_combination`): KS where a change shifts
    the bulk, the weighted gap where it reaches the tails. KS's p-value is asymptotic from
    1,000 values a side and exact below (:func:`detectors.univariate.ks.ks_p_values_by_size`).
    The statistic is the weighted gap; ``extra`` holds ``ks_statistic``, ``p_ks`` and
    ``p_weighted``.

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
        testable = (n_ref > 0) & (n_cur > 0)
        p_weighted, p_ks, p = (np.full(weighted.shape, np.nan) for _ in range(3))
        if testable.any():
            sizes = n_ref[testable], n_cur[testable]
            p_weighted[testable] = p_values(weighted[testable], *sizes)
            p_ks[testable] = ks_p_values_by_size(ks_d[testable], *sizes, self._device)
            p[testable] = cauchy_combination(p_weighted[testable], p_ks[testable])
        extra = {"ks_statistic": ks_d, "p_ks": p_ks, "p_weighted": p_weighted}
        return Outcome(weighted, p, testable, extra)
