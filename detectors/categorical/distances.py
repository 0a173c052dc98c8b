"""Distances between category distributions: PSI, Jensen-Shannon and total variation.

The same formulas as the binned numeric distances (:mod:`detectors.univariate.binned`), with
categories as bins. Categories unseen in the reference count in the current distribution (so a
new category raises the distance); PSI smooths empty categories with 1e-4 before the logarithm.
Default threshold 0.1 for each (Evidently's default for its PSI, Jensen-Shannon and TVD tests).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Self

import numpy as np
import torch

from detectors.base import check_categories, drift_result, feature_names
from detectors.categorical.counts import column_counts, count_tables
from detectors.device import resolve_device
from detectors.params import Params
from detectors.result import DriftResult
from detectors.univariate.binned import jensen_shannon, psi


def total_variation(ref: torch.Tensor, cur: torch.Tensor) -> torch.Tensor:
    """Total variation distance ``sum |p - q| / 2``, in [0, 1]."""
    return (ref - cur).abs().sum(dim=-1) / 2


class _CategoricalDistance(Params):
    method: ClassVar[str]

    def distance(self, ref: torch.Tensor, cur: torch.Tensor) -> torch.Tensor:
        """The distance between proportions over the last axis (subclasses name it)."""
        raise NotImplementedError

    def __init__(self, *, device: str = "auto", threshold: float = 0.1) -> None:
        self.device = device
        self.threshold = threshold
        self._device = resolve_device(device)
        self._ref_counts: list[dict[str, int]] | None = None
        self.features_: tuple[str, ...] = ()

    def fit(self, reference: np.ndarray, features: Sequence[str] | None = None) -> Self:
        reference = check_categories(reference, name="reference")
        self.features_ = feature_names(features, reference.shape[1])
        self._ref_counts = [column_counts(reference[:, j]) for j in range(reference.shape[1])]
        return self

    def score(self, current: np.ndarray) -> DriftResult:
        if self._ref_counts is None:
            raise RuntimeError("call fit(reference) before score(current)")
        current = check_categories(current, name="current", n_features=len(self.features_))
        cur_counts = [column_counts(current[:, j]) for j in range(current.shape[1])]
        ref_table, cur_table, _ = count_tables(self._ref_counts, cur_counts)
        n_ref, n_cur = ref_table.sum(axis=1), cur_table.sum(axis=1)
        to_props = lambda t, n: torch.as_tensor(t / np.maximum(n, 1)[:, None], device=self._device)  # noqa: E731
        statistic = self.distance(to_props(ref_table, n_ref), to_props(cur_table, n_cur))
        return drift_result(
            method=self.method,
            features=self.features_,
            statistic=statistic.cpu().numpy(),
            p_value=None,
            alpha=0.05,
            correction="none",
            n_reference=n_ref.astype(np.int64),
            n_current=n_cur.astype(np.int64),
            threshold=self.threshold,
        )


def _masked_psi(ref: torch.Tensor, cur: torch.Tensor) -> torch.Tensor:
    # padding columns (zero on both sides) must not be smoothed into a contribution
    present = (ref > 0) | (cur > 0)
    zero = torch.zeros_like(ref)
    return psi(torch.where(present, ref, zero), torch.where(present, cur, zero))


class CategoricalPSI(_CategoricalDistance):
    """Population stability index over categories.

    >>> import numpy as np
    >>> ref = np.array([["a"], ["b"]] * 100, dtype=object)
    >>> cur = np.array([["a"]] * 150 + [["b"]] * 50, dtype=object)
    >>> bool(CategoricalPSI(device="cpu").fit(ref).score(cur).drift[0])
    True
    """

    method = "psi_categorical"

    def distance(self, ref: torch.Tensor, cur: torch.Tensor) -> torch.Tensor:
        return _masked_psi(ref, cur)


class CategoricalJensenShannon(_CategoricalDistance):
    """Jensen-Shannon distance over categories (natural log, as scipy).

    >>> import numpy as np
    >>> ref = np.array([[1], [2]] * 100, dtype=object)
    >>> bool(CategoricalJensenShannon(device="cpu").fit(ref).score(ref).drift[0])
    False
    """

    method = "jensen_shannon_categorical"

    def distance(self, ref: torch.Tensor, cur: torch.Tensor) -> torch.Tensor:
        return jensen_shannon(ref, cur)


class TotalVariation(_CategoricalDistance):
    """Total variation distance over categories.

    >>> import numpy as np
    >>> ref = np.array([["a"], ["b"]] * 100, dtype=object)
    >>> cur = np.array([["a"]] * 100 + [["c"]] * 100, dtype=object)
    >>> float(TotalVariation(device="cpu").fit(ref).score(cur).statistic[0])
    0.5
    """

    method = "tvd"

    def distance(self, ref: torch.Tensor, cur: torch.Tensor) -> torch.Tensor:
        return total_variation(ref, cur)
