"""Drift on embeddings: KS tests on the reference's top principal components.

A cheap multivariate test: the reference embedding is centred and its top ``n_components``
principal directions found once in ``fit``; each window is projected on them and the components
are KS-tested together. The p-value is the Bonferroni combination (``min(1, k * min p)``), the
statistic the largest KS distance.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import numpy as np
import torch

from detectors.base import check_matrix, multivariate_result
from detectors.device import resolve_device
from detectors.params import Params
from detectors.result import DriftResult
from detectors.univariate.ks import KSTest


class ProjectedKSTest(Params):
    """One verdict for a (rows, dim) embedding. Rows with a missing value are left out.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> test = ProjectedKSTest(device="cpu").fit(rng.normal(size=(400, 8)))
    >>> bool(test.score(rng.normal(size=(300, 8)) + 1.0).drift[0])
    True
    """

    method = "ks_pca"

    def min_reference_rows(self) -> int:
        return 2  # principal components need a spread

    def __init__(self, *, device: str = "auto", alpha: float = 0.05, n_components: int = 8) -> None:
        if n_components < 1:
            raise ValueError("n_components must be at least 1")
        self.device = device
        self.alpha = alpha
        self.n_components = n_components
        self._device = resolve_device(device)
        self._mean: torch.Tensor | None = None
        self._basis: torch.Tensor | None = None
        self._ks: KSTest | None = None

    def _rows(self, data: np.ndarray, name: str, dim: int | None = None) -> torch.Tensor:
        x = torch.as_tensor(check_matrix(data, name=name, n_features=dim), device=self._device)
        return x[torch.isfinite(x).all(dim=1)]

    def fit(self, reference: np.ndarray, features: Sequence[str] | None = None) -> Self:
        x = self._rows(reference, "reference")
        if x.shape[0] < 2:
            raise ValueError("an embedding needs at least two complete reference rows")
        self._mean = x.mean(dim=0)
        k = min(self.n_components, x.shape[1], x.shape[0])
        # right singular vectors of the centred data are the principal directions
        _, _, vh = torch.linalg.svd(x - self._mean, full_matrices=False)
        self._basis = vh[:k].T.contiguous()
        self._ks = KSTest(device=str(self._device), correction="none")
        self._ks.fit(((x - self._mean) @ self._basis).cpu().numpy())
        return self

    def score(self, current: np.ndarray) -> DriftResult:
        if self._mean is None or self._basis is None or self._ks is None:
            raise RuntimeError("call fit(reference) before score(current)")
        x = self._rows(current, "current", int(self._mean.shape[0]))
        res = self._ks.score(((x - self._mean) @ self._basis).cpu().numpy())
        k = len(res.p_value)
        tested = x.shape[0] > 0
        return multivariate_result(
            method=self.method,
            statistic=float(np.nanmax(res.statistic)) if tested else float("nan"),
            p_value=float(min(1.0, k * np.nanmin(res.p_value))) if tested else float("nan"),
            alpha=self.alpha,
            n_reference=int(res.n_reference.min()),
            n_current=int(x.shape[0]),
            extra={"component_p_values": res.p_value},
        )
