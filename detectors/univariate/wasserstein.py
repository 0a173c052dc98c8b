"""Wasserstein (earth mover's) distance between reference and current, per numeric feature."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import numpy as np
import torch

from detectors.base import check_matrix, drift_result, feature_names
from detectors.device import resolve_device
from detectors.params import Params
from detectors.permutations import (
    Permutations,
    check_family_size,
    check_permutations,
    resolve_permutations,
    window_seed,
)
from detectors.result import DriftResult
from detectors.univariate.columns import SortedColumns, ecdf_at, pooled, sort_columns
from detectors.univariate.permutation import permutation_p_values

# Evidently's floor for the reference's standard deviation in the normalised distance, so a
# constant reference column does not divide by zero
_MIN_SCALE = 1e-3


def wasserstein(ref: SortedColumns, cur: SortedColumns) -> torch.Tensor:
    """W1 = integral of |F_ref - F_cur| over the pooled values, one per feature.

    As ``scipy.stats.wasserstein_distance``: both ECDFs are step functions that change only at
    pooled values, so the integral is a sum over the gaps between consecutive pooled values.
    """
    z = pooled(ref, cur)
    gaps = z[:, 1:] - z[:, :-1]
    gaps = torch.where(torch.isfinite(gaps), gaps, torch.zeros_like(gaps))  # missing values last
    left = z[:, :-1].contiguous()
    diff = (ecdf_at(ref.values, ref.counts, left) - ecdf_at(cur.values, cur.counts, left)).abs()
    return (diff * gaps).sum(dim=1)


def _permuted(
    members: torch.Tensor, z: torch.Tensor, counts: torch.Tensor, n_ref: int, n_cur: int
) -> torch.Tensor:
    # |F_ref - F_cur| after the k-th pooled value, for every permutation: (P, N - 1)
    k = torch.arange(1, z.shape[1], device=z.device, dtype=torch.float64)
    in_cur = counts[:, 1:-1]
    gap_cdf = ((k - in_cur) / n_ref - in_cur / n_cur).abs()
    return (z[:, 1:] - z[:, :-1]) @ gap_cdf.T


class WassersteinDistance(Params):
    """Wasserstein-1 distance per numeric feature, optionally normalised, with a threshold.

    ``normalized=True`` divides by the reference's standard deviation (at least 1e-3), which
    makes one threshold meaningful for features of any scale; its default threshold 0.1 is
    Evidently's for ``wasserstein`` drift. The raw distance (``normalized=False``) is in the
    feature's unit and equals ``scipy.stats.wasserstein_distance``; give it a ``threshold``.
    With ``n_permutations > 0`` drift is decided by a permutation p-value instead (see
    :mod:`detectors.univariate.permutation`); ``n_permutations="auto"`` draws enough for the
    smallest p-value to pass the correction over ``family_size`` tests (at least 999; see
    :mod:`detectors.permutations`).

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> ref = rng.normal(size=(1000, 2))
    >>> WassersteinDistance(device="cpu").fit(ref).score(ref + [0.0, 0.5]).drift.tolist()
    [False, True]
    """

    method = "wasserstein"

    def __init__(
        self,
        *,
        device: str = "auto",
        normalized: bool = True,
        threshold: float | None = None,
        n_permutations: Permutations = 0,
        seed: int = 0,
        alpha: float = 0.05,
        correction: str = "bh",
        family_size: int | None = None,
    ) -> None:
        if threshold is None and not normalized and n_permutations == 0:
            raise ValueError(
                "the raw Wasserstein distance is in the feature's unit: give a threshold, "
                "use normalized=True or a permutation test (n_permutations > 0)"
            )
        check_permutations(n_permutations, minimum=0)
        check_family_size(family_size)
        self.device = device
        self.normalized = normalized
        self.threshold = 0.1 if threshold is None else threshold
        self.n_permutations = n_permutations
        self.seed = seed
        self.alpha = alpha
        self.correction = correction
        self.family_size = family_size
        self._device = resolve_device(device)
        self._ref: SortedColumns | None = None
        self._scale: torch.Tensor | None = None
        self.features_: tuple[str, ...] = ()

    def fit(self, reference: np.ndarray, features: Sequence[str] | None = None) -> Self:
        reference = check_matrix(reference, name="reference")
        self.features_ = feature_names(features, reference.shape[1])
        self._ref = sort_columns(reference, self._device)
        with np.errstate(invalid="ignore"):
            std = np.nan_to_num(
                np.nanstd(np.where(np.isfinite(reference), reference, np.nan), axis=0)
            )
        self._scale = torch.as_tensor(np.maximum(std, _MIN_SCALE), device=self._device)
        return self

    def permutations(self) -> int:
        """How many permutations ``score`` draws: ``n_permutations``, or with ``"auto"`` enough
        for the correction over ``family_size`` tests (this detector's features if None)."""
        return resolve_permutations(
            self.n_permutations,
            family_size=self.family_size or len(self.features_),
            alpha=self.alpha,
            minimum=999,
        )

    def score(self, current: np.ndarray) -> DriftResult:
        if self._ref is None or self._scale is None:
            raise RuntimeError("call fit(reference) before score(current)")
        current = check_matrix(current, name="current", n_features=len(self.features_))
        cur = sort_columns(current, self._device)
        scale = self._scale if self.normalized else torch.ones_like(self._scale)
        statistic = (wasserstein(self._ref, cur) / scale).cpu().numpy()
        n_ref, n_cur = self._ref.counts_numpy(), cur.counts_numpy()
        p_value = None
        drawn = self.permutations()
        if drawn:
            z = pooled(self._ref, cur)
            raw = statistic * scale.cpu().numpy()
            p_value = permutation_p_values(
                z,
                n_ref,
                n_cur,
                raw,
                _permuted,
                n_permutations=drawn,
                seed=window_seed(self.seed, current),
                per_feature=1,
            )
        return drift_result(
            method=self.method,
            features=self.features_,
            statistic=statistic,
            p_value=p_value,
            alpha=self.alpha,
            correction=self.correction,
            n_reference=n_ref,
            n_current=n_cur,
            threshold=self.threshold,
            extra={"n_permutations": np.full(len(self.features_), drawn, dtype=np.int64)},
        )
