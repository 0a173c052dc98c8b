"""Drift on embeddings: KS tests on the reference's top principal components.

A stop-gap multivariate test until MMD lands (issue #3): the reference embedding is centred and
its top ``n_components`` principal directions found once in ``fit``; each window is projected
on them and the components are KS-tested together. The feature's p-value is the Bonferroni
combination (``min(1, k * min p)``), its statistic the largest KS distance.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import numpy as np
import torch

from detectors.correction import adjust
from detectors.device import resolve_device
from detectors.result import DriftResult
from detectors.univariate.ks import KSTest


class ProjectedKSTest:
    """One drift verdict per vector feature. Inputs: a list of (rows, dim) arrays, one per feature.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> ref = [rng.normal(size=(400, 8))]
    >>> test = ProjectedKSTest(device="cpu").fit(ref)
    >>> bool(test.score([rng.normal(size=(300, 8)) + 1.0]).drift[0])
    True
    """

    method = "ks-pca"

    def __init__(
        self,
        *,
        device: str = "auto",
        alpha: float = 0.05,
        correction: str = "bh",
        n_components: int = 8,
    ) -> None:
        self.device = device
        self.alpha = alpha
        self.correction = correction
        self.n_components = n_components
        self._device = resolve_device(device)
        self._projections: list[tuple[torch.Tensor, torch.Tensor, KSTest]] = []
        self.features: tuple[str, ...] = ()

    def _project(self, data: np.ndarray, mean: torch.Tensor, basis: torch.Tensor) -> np.ndarray:
        x = torch.as_tensor(np.ascontiguousarray(data, dtype=np.float64), device=self._device)
        projected = (x - mean) @ basis  # rows with NaN stay NaN and are left out by KS
        return projected.cpu().numpy()

    def fit(self, reference: Sequence[np.ndarray], features: Sequence[str] | None = None) -> Self:
        self.features = (
            tuple(features)
            if features is not None
            else tuple(str(i) for i in range(len(reference)))
        )
        self._projections = []
        for data in reference:
            x = torch.as_tensor(np.ascontiguousarray(data, dtype=np.float64), device=self._device)
            x = x[torch.isfinite(x).all(dim=1)]
            if x.shape[0] < 2:
                raise ValueError("a vector feature needs at least two complete reference rows")
            mean = x.mean(dim=0)
            k = min(self.n_components, x.shape[1], x.shape[0])
            # right singular vectors of the centred data are the principal directions
            _, _, vh = torch.linalg.svd(x - mean, full_matrices=False)
            basis = vh[:k].T.contiguous()
            ks = KSTest(device=str(self._device), alpha=self.alpha, correction="none")
            ks.fit(((x - mean) @ basis).cpu().numpy())
            self._projections.append((mean, basis, ks))
        return self

    def score(self, current: Sequence[np.ndarray]) -> DriftResult:
        if len(current) != len(self._projections):
            raise ValueError(
                f"expected {len(self._projections)} vector features, got {len(current)}"
            )
        stats, p_values, n_ref, n_cur = [], [], [], []
        for data, (mean, basis, ks) in zip(current, self._projections, strict=True):
            res = ks.score(self._project(data, mean, basis))
            k = len(res.p_value)
            stats.append(float(np.nanmax(res.statistic)) if k else np.nan)
            p_values.append(float(min(1.0, k * np.nanmin(res.p_value))) if k else np.nan)
            n_ref.append(int(res.n_reference.min()))
            n_cur.append(int(res.n_current.min()))
        p = np.asarray(p_values, dtype=np.float64)
        p_adjusted = adjust(p, self.correction)
        return DriftResult(
            method=self.method,
            features=self.features,
            statistic=np.asarray(stats, dtype=np.float64),
            p_value=p,
            p_adjusted=p_adjusted,
            drift=np.nan_to_num(p_adjusted, nan=1.0) < self.alpha,
            threshold=self.alpha,
            correction=self.correction,
            n_reference=np.asarray(n_ref, dtype=np.int64),
            n_current=np.asarray(n_cur, dtype=np.int64),
        )
