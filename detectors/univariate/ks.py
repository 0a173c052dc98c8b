"""Two-sample Kolmogorov-Smirnov test, batched over all features in PyTorch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import numpy as np
import torch
from scipy import stats

from detectors.correction import adjust
from detectors.device import resolve_device
from detectors.result import DriftResult

# Cap on the number of pooled values held at once (features x rows), so wide data is chunked
# instead of allocating gigabytes.
_MAX_POOLED_VALUES = 1 << 25


def _sorted_columns(data: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Columns sorted ascending as rows of a [features, rows] tensor, and the valid count.

    Non-finite values (missing data) are replaced by +inf so they sort last; ``searchsorted``
    on a finite value then counts only the valid entries below it.
    """
    # a contiguous copy: torch refuses numpy views with negative strides (e.g. data[::-1])
    t = torch.as_tensor(np.ascontiguousarray(data, dtype=np.float64), device=device).T
    finite = torch.isfinite(t)
    t = torch.where(finite, t, torch.full_like(t, float("inf")))
    return torch.sort(t, dim=1).values.contiguous(), finite.sum(dim=1)


def ks_statistic(
    ref_sorted: torch.Tensor, n_ref: torch.Tensor, cur_sorted: torch.Tensor, n_cur: torch.Tensor
) -> torch.Tensor:
    """Largest gap between the two empirical CDFs, one value per row (feature).

    Both CDFs are evaluated right-continuously at every pooled value, as ``scipy.stats.ks_2samp``
    does, which makes the statistic exact in the presence of ties.
    """
    pooled = torch.cat([ref_sorted, cur_sorted], dim=1)
    valid = torch.isfinite(pooled)
    # float64 division: integer tensors divide to float32 by default, which costs 1e-8 accuracy
    n_ref64 = n_ref.clamp(min=1).to(torch.float64)[:, None]
    n_cur64 = n_cur.clamp(min=1).to(torch.float64)[:, None]
    cdf_ref = torch.searchsorted(ref_sorted, pooled, right=True).to(torch.float64) / n_ref64
    cdf_cur = torch.searchsorted(cur_sorted, pooled, right=True).to(torch.float64) / n_cur64
    gap = torch.where(valid, (cdf_ref - cdf_cur).abs(), torch.zeros_like(cdf_ref))
    return gap.max(dim=1).values


def ks_asymptotic_p_value(
    statistic: np.ndarray, n_ref: np.ndarray, n_cur: np.ndarray
) -> np.ndarray:
    """Two-sided p-value from Smirnov's distribution, as ``ks_2samp(method="asymp")``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        en = n_ref * n_cur / (n_ref + n_cur)
    p = stats.kstwo.sf(statistic, np.round(en))
    return np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)


class KSTest:
    """Kolmogorov-Smirnov drift test for numeric features.

    ``fit`` sorts the reference columns once; ``score`` sorts the current window and compares
    all features in one batched computation. Missing values (NaN) are left out per feature.
    The p-value is the asymptotic one (``scipy.stats.ks_2samp(method="asymp")``).

    >>> import numpy as np
    >>> ref = np.column_stack([np.linspace(0, 1, 500), np.linspace(0, 1, 500)])
    >>> cur = np.column_stack([np.linspace(0, 1, 400), np.linspace(0.5, 1.5, 400)])
    >>> KSTest(device="cpu").fit(ref).score(cur).drift.tolist()
    [False, True]
    """

    method = "ks"

    def __init__(
        self, *, device: str = "auto", alpha: float = 0.05, correction: str = "bh"
    ) -> None:
        self.device = device
        self.alpha = alpha
        self.correction = correction
        self._device = resolve_device(device)
        self._ref_sorted: torch.Tensor | None = None
        self._n_ref: torch.Tensor | None = None
        self.features: tuple[str, ...] = ()

    def fit(self, reference: np.ndarray, features: Sequence[str] | None = None) -> Self:
        reference = np.asarray(reference, dtype=np.float64)
        if reference.ndim != 2:
            raise ValueError(
                f"reference must be 2-D (rows x features), got shape {reference.shape}"
            )
        self.features = (
            tuple(features)
            if features is not None
            else tuple(str(i) for i in range(reference.shape[1]))
        )
        if len(self.features) != reference.shape[1]:
            raise ValueError("number of feature names does not match the reference columns")
        self._ref_sorted, self._n_ref = _sorted_columns(reference, self._device)
        return self

    def score(self, current: np.ndarray) -> DriftResult:
        if self._ref_sorted is None or self._n_ref is None:
            raise RuntimeError("call fit(reference) before score(current)")
        current = np.asarray(current, dtype=np.float64)
        if current.ndim != 2 or current.shape[1] != len(self.features):
            raise ValueError(
                f"current must have shape (rows, {len(self.features)}), got {current.shape}"
            )
        cur_sorted, n_cur = _sorted_columns(current, self._device)
        n_features = len(self.features)
        width = self._ref_sorted.shape[1] + cur_sorted.shape[1]
        step = max(1, _MAX_POOLED_VALUES // max(width, 1))
        parts = [
            ks_statistic(
                self._ref_sorted[i : i + step],
                self._n_ref[i : i + step],
                cur_sorted[i : i + step],
                n_cur[i : i + step],
            )
            for i in range(0, n_features, step)
        ]
        statistic = torch.cat(parts).cpu().numpy() if parts else np.zeros(0)
        n_ref = self._n_ref.cpu().numpy().astype(np.int64)
        n_cur_np = n_cur.cpu().numpy().astype(np.int64)
        testable = (n_ref > 0) & (n_cur_np > 0)
        statistic = np.where(testable, statistic, np.nan)
        p_value = np.full(n_features, np.nan)
        if testable.any():
            p_value[testable] = ks_asymptotic_p_value(
                statistic[testable], n_ref[testable], n_cur_np[testable]
            )
        p_adjusted = adjust(p_value, self.correction)
        return DriftResult(
            method=self.method,
            features=self.features,
            statistic=statistic,
            p_value=p_value,
            p_adjusted=p_adjusted,
            drift=np.nan_to_num(p_adjusted, nan=1.0) < self.alpha,
            threshold=self.alpha,
            correction=self.correction,
            n_reference=n_ref,
            n_current=n_cur_np,
        )
