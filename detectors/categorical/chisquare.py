"""Chi-squared test of homogeneity for categorical features, batched in PyTorch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import numpy as np
import torch
from scipy import special

from detectors.categorical.counts import column_counts, count_tables
from detectors.correction import adjust
from detectors.device import resolve_device
from detectors.params import Params
from detectors.result import DriftResult


def chi_square_homogeneity(
    ref_counts: torch.Tensor, cur_counts: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Chi-squared statistic and degrees of freedom of each 2 x K table (one per row).

    Categories absent from both samples (padding) are left out, as ``chi2_contingency`` would
    never see them. No continuity correction is applied.
    """
    column_total = ref_counts + cur_counts
    present = column_total > 0
    n_ref = ref_counts.sum(dim=1, keepdim=True)
    n_cur = cur_counts.sum(dim=1, keepdim=True)
    total = (n_ref + n_cur).clamp(min=1)
    expected_ref = column_total * n_ref / total
    expected_cur = column_total * n_cur / total
    safe = lambda e: torch.where(present, e, torch.ones_like(e))  # noqa: E731
    terms = (ref_counts - expected_ref) ** 2 / safe(expected_ref) + (
        cur_counts - expected_cur
    ) ** 2 / safe(expected_cur)
    statistic = torch.where(present, terms, torch.zeros_like(terms)).sum(dim=1)
    dof = (present.sum(dim=1) - 1).clamp(min=0)
    return statistic, dof


class ChiSquareTest(Params):
    """Chi-squared drift test for categorical features (reference vs current counts).

    Values may be strings or integers; missing values (None, NaN) are left out. Categories
    never seen in the reference are counted as categories of their own, so a new category is
    drift, not a crash. Matches ``scipy.stats.chi2_contingency(table, correction=False)``.

    >>> import numpy as np
    >>> ref = np.array([["a"], ["b"]] * 100, dtype=object)
    >>> cur = np.array([["a"]] * 150 + [["c"]] * 50, dtype=object)
    >>> bool(ChiSquareTest(device="cpu").fit(ref).score(cur).drift[0])
    True
    """

    method = "chi2"

    def __init__(
        self, *, device: str = "auto", alpha: float = 0.05, correction: str = "bh"
    ) -> None:
        self.device = device
        self.alpha = alpha
        self.correction = correction
        self._device = resolve_device(device)
        self._ref_counts: list[dict[str, int]] | None = None
        self.features_: tuple[str, ...] = ()

    def fit(self, reference: np.ndarray, features: Sequence[str] | None = None) -> Self:
        reference = np.asarray(reference, dtype=object)
        if reference.ndim != 2:
            raise ValueError(
                f"reference must be 2-D (rows x features), got shape {reference.shape}"
            )
        self.features_ = (
            tuple(features)
            if features is not None
            else tuple(str(i) for i in range(reference.shape[1]))
        )
        if len(self.features_) != reference.shape[1]:
            raise ValueError("number of feature names does not match the reference columns")
        self._ref_counts = [column_counts(reference[:, j]) for j in range(reference.shape[1])]
        return self

    def score(self, current: np.ndarray) -> DriftResult:
        if self._ref_counts is None:
            raise RuntimeError("call fit(reference) before score(current)")
        current = np.asarray(current, dtype=object)
        if current.ndim != 2 or current.shape[1] != len(self.features_):
            raise ValueError(
                f"current must have shape (rows, {len(self.features_)}), got {current.shape}"
            )
        cur_counts = [column_counts(current[:, j]) for j in range(current.shape[1])]
        ref_table, cur_table, _ = count_tables(self._ref_counts, cur_counts)
        stat_t, dof_t = chi_square_homogeneity(
            torch.as_tensor(ref_table, device=self._device),
            torch.as_tensor(cur_table, device=self._device),
        )
        statistic = stat_t.cpu().numpy()
        dof = dof_t.cpu().numpy()
        n_ref = ref_table.sum(axis=1).astype(np.int64)
        n_cur = cur_table.sum(axis=1).astype(np.int64)
        testable = (n_ref > 0) & (n_cur > 0)
        p_value = np.where(dof > 0, special.chdtrc(np.maximum(dof, 1), statistic), 1.0)
        p_value = np.where(testable, p_value, np.nan)
        statistic = np.where(testable, statistic, np.nan)
        p_adjusted = adjust(p_value, self.correction)
        return DriftResult(
            method=self.method,
            features=self.features_,
            statistic=statistic,
            p_value=p_value,
            p_adjusted=p_adjusted,
            drift=np.nan_to_num(p_adjusted, nan=1.0) < self.alpha,
            threshold=self.alpha,
            correction=self.correction,
            n_reference=n_ref,
            n_current=n_cur,
            extra={"dof": dof},
        )
