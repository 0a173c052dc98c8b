"""Two-sample Cramér-von Mises test, batched over all features in PyTorch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import numpy as np
import torch
from scipy import special, stats

from detectors.base import check_matrix, drift_result, feature_names
from detectors.device import resolve_device
from detectors.result import DriftResult
from detectors.univariate.columns import SortedColumns, feature_chunks, sort_columns
from detectors.univariate.ranks import midranks, tie_bounds, valid_mask

# scipy's rule for method="auto": exact p-values while both samples have at most 20 values
MAX_EXACT_N = 20


def cvm_statistic(
    ref: SortedColumns,
    cur: SortedColumns,
    ref_ties: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """T of Anderson (1962), eq. 9 of scipy's reference, with midranks for ties."""
    rx, ry = midranks(ref, cur, ref_ties)
    n = ref.counts.to(torch.float64)
    m = cur.counts.to(torch.float64)
    i = torch.arange(1, rx.shape[1] + 1, device=rx.device, dtype=torch.float64)
    j = torch.arange(1, ry.shape[1] + 1, device=ry.device, dtype=torch.float64)
    zero = torch.zeros((), dtype=torch.float64, device=rx.device)
    sx = torch.where(valid_mask(ref), (rx - i) ** 2, zero).sum(dim=1)
    sy = torch.where(valid_mask(cur), (ry - j) ** 2, zero).sum(dim=1)
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


class CVMTest:
    """Cramér-von Mises two-sample drift test for numeric features.

    Statistic and p-value as ``scipy.stats.cramervonmises_2samp``: the asymptotic p-value
    computed batched; for tiny samples (both at most 20 values, scipy's ``method="auto"``) the
    exact p-value comes from scipy itself, per feature, which is cheap at that size. Features
    with fewer than two finite values on a side are not tested.

    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> ref = rng.normal(size=(500, 2))
    >>> CVMTest(device="cpu").fit(ref).score(rng.normal(size=(400, 2)) + [0, 0.5]).drift.tolist()
    [False, True]
    """

    method = "cvm"

    def __init__(
        self, *, device: str = "auto", alpha: float = 0.05, correction: str = "bh"
    ) -> None:
        self.device = device
        self.alpha = alpha
        self.correction = correction
        self._device = resolve_device(device)
        self._ref: SortedColumns | None = None
        self._reference: np.ndarray | None = None
        self._ref_ties: tuple[torch.Tensor, torch.Tensor] | None = None
        self.features: tuple[str, ...] = ()

    def fit(self, reference: np.ndarray, features: Sequence[str] | None = None) -> Self:
        reference = check_matrix(reference, name="reference")
        self.features = feature_names(features, reference.shape[1])
        self._ref = sort_columns(reference, self._device)
        self._ref_ties = tie_bounds(self._ref.values)
        # kept only when small: the exact p-value (scipy) needs the raw values
        self._reference = reference if reference.shape[0] <= MAX_EXACT_N else None
        return self

    def _ties(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        if self._ref_ties is None:
            return None
        return self._ref_ties[0][start:stop], self._ref_ties[1][start:stop]

    def score(self, current: np.ndarray) -> DriftResult:
        if self._ref is None:
            raise RuntimeError("call fit(reference) before score(current)")
        current = check_matrix(current, name="current", n_features=len(self.features))
        cur = sort_columns(current, self._device)
        width = self._ref.values.shape[1] + cur.values.shape[1]
        parts = [
            cvm_statistic(self._ref.rows(a, b), cur.rows(a, b), self._ties(a, b))
            for a, b in feature_chunks(len(self.features), width)
        ]
        statistic = torch.cat(parts).cpu().numpy() if parts else np.zeros(0)
        n_ref, n_cur = self._ref.counts_numpy(), cur.counts_numpy()
        testable = (n_ref >= 2) & (n_cur >= 2)
        p = np.full(statistic.shape, np.nan)
        exact = testable & (np.maximum(n_ref, n_cur) <= MAX_EXACT_N)
        asymp = testable & ~exact
        if asymp.any():
            p[asymp] = cvm_asymptotic_p_value(statistic[asymp], n_ref[asymp], n_cur[asymp])
        for j in np.flatnonzero(exact):
            assert self._reference is not None
            x, y = self._reference[:, j], current[:, j]
            p[j] = stats.cramervonmises_2samp(x[np.isfinite(x)], y[np.isfinite(y)]).pvalue
        return drift_result(
            method=self.method,
            features=self.features,
            statistic=np.where(testable, statistic, np.nan),
            p_value=p,
            alpha=self.alpha,
            correction=self.correction,
            n_reference=np.where(testable, n_ref, 0),
            n_current=np.where(testable, n_cur, 0),
        )
