"""The fit/score shared by the tests that compare sorted columns (KS, CvM, Anderson-Darling).

``fit`` sorts the reference columns once; ``score`` sorts the window, computes the raw
statistic in feature chunks (so wide data stays within a memory budget) and leaves the
p-values to the test. Missing values (NaN, infinities) are left out per feature.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Self

import numpy as np
import torch

from detectors.base import check_matrix, drift_result, feature_names
from detectors.device import resolve_device
from detectors.params import Params
from detectors.result import DriftResult
from detectors.univariate.columns import SortedColumns, feature_chunks, sort_columns


@dataclass(frozen=True)
class Outcome:
    """What a test makes of its raw statistics: the reported statistic, the p-values, and which
    features could be tested at all."""

    statistic: np.ndarray
    p_value: np.ndarray
    testable: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)


class SortedColumnsTest(Params):
    method: ClassVar[str]
    # values (features x pooled rows) one statistic chunk may hold at once
    chunk_budget: ClassVar[int] = 1 << 25

    def __init__(
        self, *, device: str = "auto", alpha: float = 0.05, correction: str = "bh"
    ) -> None:
        self.device = device
        self.alpha = alpha
        self.correction = correction
        self._device = resolve_device(device)
        self._ref: SortedColumns | None = None
        self.features_: tuple[str, ...] = ()

    def fit(self, reference: np.ndarray, features: Sequence[str] | None = None) -> Self:
        reference = check_matrix(reference, name="reference")
        self.features_ = feature_names(features, reference.shape[1])
        self._ref = sort_columns(reference, self._device)
        self._after_fit(reference)
        return self

    def score(self, current: np.ndarray) -> DriftResult:
        if self._ref is None:
            raise RuntimeError("call fit(reference) before score(current)")
        current = check_matrix(current, name="current", n_features=len(self.features_))
        cur = sort_columns(current, self._device)
        width = self._ref.values.shape[1] + cur.values.shape[1]
        parts = [
            self._statistic(a, b, self._ref.rows(a, b), cur.rows(a, b))
            for a, b in feature_chunks(len(self.features_), width, self.chunk_budget)
        ]
        raw = torch.cat(parts).cpu().numpy() if parts else np.zeros(0)
        n_ref, n_cur = self._ref.counts_numpy(), cur.counts_numpy()
        tested = self._test(raw, n_ref, n_cur, cur, current)
        return drift_result(
            method=self.method,
            features=self.features_,
            statistic=tested.statistic,
            p_value=tested.p_value,
            alpha=self.alpha,
            correction=self.correction,
            n_reference=np.where(tested.testable, n_ref, 0),
            n_current=np.where(tested.testable, n_cur, 0),
            extra=tested.extra,
        )

    def _after_fit(self, reference: np.ndarray) -> None:
        """What a test precomputes from the reference beyond its sorted columns."""

    def _statistic(
        self, start: int, stop: int, ref: SortedColumns, cur: SortedColumns
    ) -> torch.Tensor:
        raise NotImplementedError

    def _test(
        self,
        raw: np.ndarray,
        n_ref: np.ndarray,
        n_cur: np.ndarray,
        cur: SortedColumns,
        current: np.ndarray,
    ) -> Outcome:
        raise NotImplementedError
