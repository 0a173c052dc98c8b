"""Results cross module borders as numpy arrays and Python numbers, never tensors."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class DriftResult:
    """Outcome of one detector on one window, one entry per feature.

    ``p_value`` is the raw p-value of each feature; ``p_adjusted`` the p-value after the
    multiple-testing ``correction`` across features; ``drift`` is ``p_adjusted < threshold``
    (``threshold`` is then alpha). A distance without a p-value has NaN p-values and drift is
    ``statistic > threshold``. A multivariate test (one verdict over all columns) has one entry,
    the feature ``"*"``: ``res.statistic[0]``, ``res.drift[0]``.
    """

    method: str
    features: tuple[str, ...]
    statistic: np.ndarray
    p_value: np.ndarray
    p_adjusted: np.ndarray
    drift: np.ndarray
    threshold: float
    correction: str
    n_reference: np.ndarray
    n_current: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def dataset_drift(self) -> bool:
        """Dataset-level verdict: any feature drifts after correction."""
        return bool(np.any(self.drift))
