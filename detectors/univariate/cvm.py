"""Two-sample Cramér-von Mises test, batched over all features in PyTorch."""

from __future__ import annotations

import numpy as np
import torch
from scipy import special, stats

from detectors.permutations import check_family_size, window_seed
from detectors.univariate import anderson_ties, cvm_ties
from detectors.univariate.anderson_ties import HEAVY_TIES
from detectors.univariate.columns import SortedColumns, feature_chunks, pooled
from detectors.univariate.ranks import (
    OwnTies,
    midranks,
    own_ties,
    rank_gaps,
    tie_bounds,
    valid_mask,
)
from detectors.univariate.sorted_test import Outcome, SortedColumnsTest

# scipy's rule for method="auto": exact p-values while both samples have at most 20 values
MAX_EXACT_N = 20


def cvm_statistic(
    ref: SortedColumns,
    cur: SortedColumns,
    ref_ties: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """T of Anderson (1962), eq. 9 of scipy's reference, with midranks for ties (torch)."""
    rx, ry = midranks(ref, cur, ref_ties)
    i = torch.arange(1, rx.shape[1] + 1, device=rx.device, dtype=torch.float64)
    j = torch.arange(1, ry.shape[1] + 1, device=ry.device, dtype=torch.float64)
    zero = torch.zeros((), dtype=torch.float64, device=rx.device)
    sx = torch.where(valid_mask(ref), (rx - i) ** 2, zero).sum(dim=1)
    sy = torch.where(valid_mask(cur), (ry - j) ** 2, zero).sum(dim=1)
    return _t_from_sums(sx, sy, ref.counts, cur.counts)


def _t_from_sums(
    sx: torch.Tensor, sy: torch.Tensor, n_ref: torch.Tensor, n_cur: torch.Tensor
) -> torch.Tensor:
    """T from the sums of squared rank gaps, ``sum_i (rx_i - i)^2`` and ``sum_j (ry_j - j)^2``."""
    n, m = n_ref.to(torch.float64), n_cur.to(torch.float64)
    u = n * sx + m * sy
    k, total = n * m, n + m
    return u / (k * total).clamp(min=1) - (4 * k - 1) / (6 * total.clamp(min=1))


def cdf_cvm_inf(x: np.ndarray) -> np.ndarray:
    """CDF of the limiting Cramér-von Mises distribution (Csörgő and Faraway 1996, eq. 1.2);
    the series of ``scipy.stats._hypotests._cdf_cvm_inf``, summed until terms are below 1e-7."""
    x = np.asarray(x, dtype=np.float64)
    total = np.zeros_like(x)
    active = np.ones_like(x, dtype=bool)
    k = 0
    while active.any():
        xs = x[active]
        u = np.exp(special.gammaln(k + 0.5) - special.gammaln(k + 1)) / (np.pi**1.5 * np.sqrt(xs))
        y = 4 * k + 1
        q = y**2 / (16 * xs)
        term = u * np.sqrt(y) * np.exp(-q) * special.kv(0.25, q)
        total[active] += term
        active[active] = np.abs(term) >= 1e-7
        k += 1
    return total


def cvm_asymptotic_p_value(t: np.ndarray, n: np.ndarray, m: np.ndarray) -> np.ndarray:
    """As ``cramervonmises_2samp(method="asymptotic")``: T normalised by its exact mean and
    variance (eqs. 11, 14, 15 of scipy's reference), then the limiting distribution."""
    n, m = n.astype(np.float64), m.astype(np.float64)
    k, total = n * m, n + m
    et = (1 + 1 / total) / 6
    vt = (total + 1) * (4 * k * total - 3 * (n**2 + m**2) - 2 * k) / (45 * total**2 * 4 * k)
    tn = 1 / 6 + (t - et) / np.sqrt(45 * vt)
    p = np.ones_like(tn)
    tail = tn >= 0.003  # below, 1 - cdf is 1 to within 1e-18 (scipy's shortcut)
    p[tail] = np.maximum(0.0, 1.0 - cdf_cvm_inf(tn[tail]))
    return p


class CVMTest(SortedColumnsTest):
    """Cramér-von Mises two-sample drift test for numeric features.

    Statistic and p-value as ``scipy.stats.cramervonmises_2samp``: the asymptotic p-value
    computed batched; for tiny samples (both at most 20 values, scipy's ``method="auto"``) the
    exact p-value comes from scipy itself, per feature, which is cheap at that size. Features
    with fewer than two finite values on a side are not tested.

    Not on tie-heavy features (distinct pooled values at most half the pooled sample, integer
    counts for example): there scipy's rank formula is inflated by the ties and its p-value
    flagged every exchangeable Poisson(2) window. Such a feature's statistic is the integral
    form (equal to scipy's when nothing is tied) and its p-value a permutation p-value
    (:mod:`detectors.univariate.cvm_ties`), with enough permutations for the correction over
    ``family_size`` tests (at least 999; the monitor sets it, ``None`` takes this test's own
    tested features), drawn from the window's values.

    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> ref = rng.normal(size=(500, 2))
    >>> CVMTest(device="cpu").fit(ref).score(rng.normal(size=(400, 2)) + [0, 0.5]).drift.tolist()
    [False, True]
    """

    method = "cvm"

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
        """How many permutations ``score`` draws for a tie-heavy feature."""
        return anderson_ties.n_permutations(self.family_size or len(self.features_), self.alpha)

    def _after_fit(self, reference: np.ndarray) -> None:
        assert self._ref is not None
        values, counts = self._ref.values, self._ref.counts
        if values.device.type == "cpu":
            self._ref_own: OwnTies | None = own_ties(values.numpy(), counts.numpy())
        else:
            self._ref_own = None
            self._ref_ties = tie_bounds(values)
        # kept only when small: the exact p-value (scipy) needs the raw values
        self._reference = reference if reference.shape[0] <= MAX_EXACT_N else None

    def _statistic(
        self, start: int, stop: int, ref: SortedColumns, cur: SortedColumns
    ) -> torch.Tensor:
        """Two columns per feature: T (scipy's rank formula), and the distinct finite values of
        the pooled sample (which decide whether the feature is tie-heavy)."""
        if self._ref_own is not None:
            gaps = rank_gaps(ref, cur, self._ref_own.rows(start, stop))
            # rank_gaps squares twice the gaps: a quarter of each sum
            sums = torch.from_numpy(np.stack([gaps.ref, gaps.cur]) / 4)
            statistic = _t_from_sums(sums[0], sums[1], ref.counts, cur.counts)
            distinct = torch.from_numpy(gaps.distinct)
        else:
            ties = self._ref_ties[0][start:stop], self._ref_ties[1][start:stop]
            statistic = cvm_statistic(ref, cur, ties)
            distinct = anderson_ties.distinct_counts(pooled(ref, cur))
        return torch.stack([statistic, distinct.to(statistic)], dim=1)

    def _test(
        self,
        raw: np.ndarray,
        n_ref: np.ndarray,
        n_cur: np.ndarray,
        cur: SortedColumns,
        current: np.ndarray,
    ) -> Outcome:
        raw, distinct = raw.reshape(-1, 2).T
        testable = (n_ref >= 2) & (n_cur >= 2)
        p = np.full(raw.shape, np.nan)
        exact = testable & (np.maximum(n_ref, n_cur) <= MAX_EXACT_N)
        asymp = testable & ~exact
        if asymp.any():
            p[asymp] = cvm_asymptotic_p_value(raw[asymp], n_ref[asymp], n_cur[asymp])
        for j in np.flatnonzero(exact):
            assert self._reference is not None
            x, y = self._reference[:, j], current[:, j]
            p[j] = stats.cramervonmises_2samp(x[np.isfinite(x)], y[np.isfinite(y)]).pvalue
        statistic = np.where(testable, raw, np.nan)
        tied = testable & (distinct <= HEAVY_TIES * (n_ref + n_cur))
        drawn = self._permute_tied(statistic, p, tied, int(testable.sum()), cur, current)
        return Outcome(statistic, p, testable, {"n_permutations": drawn})

    def _permute_tied(
        self,
        statistic: np.ndarray,
        p: np.ndarray,
        tied: np.ndarray,
        n_tested: int,
        cur: SortedColumns,
        current: np.ndarray,
    ) -> np.ndarray:
        """Integral-form statistics and permutation p-values of the tie-heavy features
        (``tied``, among ``n_tested`` tested ones); returns the permutations drawn for each
        feature (0 where none)."""
        assert self._ref is not None
        ref = self._ref
        drawn = np.zeros(len(p), dtype=np.int64)
        if not tied.any():
            return drawn
        # the window's hash costs 40 ms on 200 x 20,000 values: only when permutations need it
        seed = window_seed(0, current)
        permutations = anderson_ties.n_permutations(self.family_size or n_tested, self.alpha)
        n_ref, n_cur = ref.counts_numpy(), cur.counts_numpy()
        budget = ref.values.shape[1] + cur.values.shape[1]
        for nr, nc in {(int(n_ref[j]), int(n_cur[j])) for j in np.flatnonzero(tied)}:
            members = np.flatnonzero(tied & (n_ref == nr) & (n_cur == nc))
            for a, b in feature_chunks(len(members), budget, self.chunk_budget):
                index = torch.as_tensor(members[a:b], device=ref.values.device)
                group_cur = SortedColumns(cur.values[index], cur.counts[index])
                z = pooled(SortedColumns(ref.values[index], ref.counts[index]), group_cur)
                z = z[:, : nr + nc].contiguous()
                observed = cvm_ties.observed_statistics(z, group_cur.values, nr, nc)
                statistic[members[a:b]] = observed.cpu().numpy()
                p[members[a:b]] = cvm_ties.permutation_p_values(
                    z, nr, nc, observed.cpu().numpy(), permutations, seed
                )
        drawn[tied] = permutations
        return drawn
