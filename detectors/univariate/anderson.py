"""k-sample Anderson-Darling test (Scholz and Stephens 1987) on reference vs current, batched."""

from __future__ import annotations

import math

import numpy as np
import torch

from detectors.permutations import check_family_size, window_seed
from detectors.univariate import anderson_ties
from detectors.univariate.columns import SortedColumns, feature_chunks, pooled
from detectors.univariate.ranks import searchsorted_both
from detectors.univariate.sorted_test import Outcome, SortedColumnsTest

# Table 2 of Scholz and Stephens (1987), for k - 1 = 1 (two samples), as scipy uses it
_SIGNIFICANCE = np.array([0.25, 0.1, 0.05, 0.025, 0.01, 0.005, 0.001])
_CRITICAL = (
    np.array([0.675, 1.281, 1.645, 1.96, 2.326, 2.573, 3.085])
    + np.array([-0.245, 0.25, 0.678, 1.149, 1.822, 2.364, 3.615])
    + np.array([-0.105, -0.305, -0.362, -0.391, -0.396, -0.345, -0.154])
)
_P_FIT = np.polyfit(_CRITICAL, np.log(_SIGNIFICANCE), 2)


def a2akn(ref: SortedColumns, cur: SortedColumns) -> torch.Tensor:
    """A2akN, eq. 7 of Scholz and Stephens (midranks for ties), one value per feature.

    The sum runs over the distinct pooled values; each distinct value is visited at its first
    position in the sorted pooled sample.
    """
    z = pooled(ref, cur)
    total = (ref.counts + cur.counts).to(torch.float64)[:, None]
    left, right = searchsorted_both(z, z)
    ties = right - left
    first = (left == torch.arange(z.shape[1], device=z.device)[None, :]) & torch.isfinite(z)
    b = left + ties / 2
    acc = torch.zeros(z.shape[0], dtype=torch.float64, device=z.device)
    for sample in (ref, cur):
        below, at_or_below = searchsorted_both(sample.values, z)
        m = at_or_below - (at_or_below - below) / 2
        n_i = sample.counts.to(torch.float64)[:, None]
        denominator = b * (total - b) - total * ties / 4
        safe = torch.where(first & (denominator > 0), denominator, torch.ones_like(denominator))
        inner = ties / total * (total * m - b * n_i) ** 2 / safe
        inner = torch.where(first & (denominator > 0), inner, torch.zeros_like(inner))
        acc += inner.sum(dim=1) / n_i[:, 0].clamp(min=1)
    return acc * (total[:, 0] - 1) / total[:, 0].clamp(min=1)


def _sigma_squared(n: int, m: int) -> float:
    """Variance of A2akN under the null for two samples of sizes n and m (scipy's formula)."""
    big_n, k = n + m, 2
    h_small = 1.0 / n + 1.0 / m
    hs_cs = (1.0 / np.arange(big_n - 1, 1, -1)).cumsum()
    h = hs_cs[-1] + 1
    g = (hs_cs / np.arange(2, big_n)).sum()
    a = (4 * g - 6) * (k - 1) + (10 - 6 * g) * h_small
    b = (2 * g - 4) * k**2 + 8 * h * k + (2 * g - 14 * h - 4) * h_small - 8 * h + 4 * g - 6
    c = (6 * h + 2 * g - 2) * k**2 + (4 * h - 4 * g + 6) * k + (2 * h - 6) * h_small + 4 * h
    d = (2 * h + 6) * k**2 - 4 * h * k
    return float(
        (a * big_n**3 + b * big_n**2 + c * big_n + d)
        / ((big_n - 1.0) * (big_n - 2.0) * (big_n - 3.0))
    )


def anderson_p_value(statistic: np.ndarray) -> np.ndarray:
    """Interpolated p-value of the standardised statistic, capped to [0.001, 0.25] as scipy's
    ``anderson_ksamp`` does (the table covers only that range)."""
    # the table's range only: outside it the fit would overflow and the answer is the cap
    inside = np.clip(statistic, _CRITICAL.min(), _CRITICAL.max())
    p = np.exp(np.polyval(_P_FIT, inside))
    p = np.where(statistic < _CRITICAL.min(), _SIGNIFICANCE.max(), p)
    return np.where(statistic > _CRITICAL.max(), _SIGNIFICANCE.min(), p)


def _has_two_values(ref: SortedColumns, cur: SortedColumns) -> np.ndarray:
    """Whether each feature's pooled finite values hold more than one distinct value."""

    def bounds(c: SortedColumns) -> tuple[torch.Tensor, torch.Tensor]:
        last = (c.counts - 1).clamp(min=0)[:, None]
        return c.values[:, 0], c.values.gather(1, last)[:, 0]

    (ref_lo, ref_hi), (cur_lo, cur_hi) = bounds(ref), bounds(cur)
    lo = torch.minimum(ref_lo, cur_lo)
    hi = torch.maximum(
        torch.where(ref.counts > 0, ref_hi, lo), torch.where(cur.counts > 0, cur_hi, lo)
    )
    return (hi > lo).cpu().numpy()


class AndersonDarlingTest(SortedColumnsTest):
    """Anderson-Darling k-sample test (k = 2) for numeric features.

    Statistic (standardised A2akN) and p-value as ``scipy.stats.anderson_ksamp([ref, cur])``,
    including scipy's cap: p-values are interpolated in Scholz and Stephens' table and so lie in
    [0.001, 0.25]. That table is for continuous data: on a feature with heavy ties (distinct
    pooled values at most half the pooled sample, integer counts for example) the p-value is a
    permutation p-value of the same statistic instead, as
    ``anderson_ksamp(..., method=PermutationMethod())``, with enough permutations for the
    correction over ``family_size`` tests (``anderson_ties.n_permutations``: at least 999,
    ``ceil(2 m / alpha) - 1`` for a family of ``m``). The monitor sets ``family_size`` to the
    number of features it corrects together; ``None`` takes this test's own tested features.
    More sensitive than KS in
    the tails. Features with fewer than two finite values on a side, or a single distinct
    pooled value, are not tested.

    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> ref = rng.normal(size=(500, 2))
    >>> test = AndersonDarlingTest(device="cpu").fit(ref)
    >>> test.score(rng.normal(size=(400, 2)) * [1, 1.5]).drift.tolist()
    [False, True]
    """

    method = "anderson"
    # a2akn holds a few (features x pooled) tensors at once: a smaller budget per chunk
    chunk_budget = 1 << 23

    def __init__(
        self,
        *,
        device: str = "auto",
        alpha: float = 0.05,
        correction: str = "bh",
        family_size: int | None = None,
    ) -> None:
        check_family_size(family_size)
        super().__init__(device=device, alpha=alpha, correction=correction)
        self.family_size = family_size

    def permutations(self) -> int:
        """How many permutations ``score`` draws for a tie-heavy feature (continuous ones take
        the table)."""
        return anderson_ties.n_permutations(self.family_size or len(self.features_), self.alpha)

    def _statistic(
        self, start: int, stop: int, ref: SortedColumns, cur: SortedColumns
    ) -> torch.Tensor:
        return a2akn(ref, cur)

    def _test(
        self,
        raw: np.ndarray,
        n_ref: np.ndarray,
        n_cur: np.ndarray,
        cur: SortedColumns,
        current: np.ndarray,
    ) -> Outcome:
        assert self._ref is not None
        distinct = _has_two_values(self._ref, cur)
        testable = (n_ref >= 2) & (n_cur >= 2) & (n_ref + n_cur > 3) & distinct
        statistic = np.full(raw.shape, np.nan)
        for j in np.flatnonzero(testable):
            statistic[j] = (raw[j] - 1) / math.sqrt(_sigma_squared(int(n_ref[j]), int(n_cur[j])))
        p = np.where(testable, anderson_p_value(np.nan_to_num(statistic)), np.nan)
        drawn = self._permute_tied(p, raw, testable, cur, window_seed(0, current))
        return Outcome(statistic, p, testable, {"n_permutations": drawn})

    def _permute_tied(
        self, p: np.ndarray, raw: np.ndarray, testable: np.ndarray, cur: SortedColumns, seed: int
    ) -> np.ndarray:
        """Replace the table's p-values of tie-heavy features by permutation p-values; returns
        the permutations drawn for each feature (0 where none)."""
        assert self._ref is not None
        ref = self._ref
        budget = ref.values.shape[1] + cur.values.shape[1]
        tied = testable & anderson_ties.heavy_ties(ref, cur, self.chunk_budget)
        drawn = np.zeros(len(p), dtype=np.int64)
        if not tied.any():
            return drawn
        family = self.family_size or int(testable.sum())
        permutations = anderson_ties.n_permutations(family, self.alpha)
        n_ref, n_cur = ref.counts_numpy(), cur.counts_numpy()
        for nr, nc in {(int(n_ref[j]), int(n_cur[j])) for j in np.flatnonzero(tied)}:
            members = np.flatnonzero(tied & (n_ref == nr) & (n_cur == nc))
            for a, b in feature_chunks(len(members), budget, self.chunk_budget):
                index = torch.as_tensor(members[a:b], device=ref.values.device)
                group = SortedColumns(ref.values[index], ref.counts[index])
                z = pooled(group, SortedColumns(cur.values[index], cur.counts[index]))
                p[members[a:b]] = anderson_ties.permutation_p_values(
                    z[:, : nr + nc], nr, nc, raw[members[a:b]], permutations, seed
                )
        drawn[tied] = permutations
        return drawn
