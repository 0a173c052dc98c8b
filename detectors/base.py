"""What every batch detector shares: input checks, feature names and building the result.

A detector is a small class with keyword-only constructor parameters stored under the same
name (so its configuration can be saved and rebuilt), ``fit(reference, features=None)`` that
precomputes what the reference allows and returns ``self``, and ``score(current)`` that returns
a :class:`~detectors.result.DriftResult` of numpy arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, Self

import numpy as np
import torch

from detectors.correction import adjust
from detectors.result import DriftResult


class BatchDetector(Protocol):
    """The shape every batch drift detector has (see the module docstring)."""

    method: str

    def fit(self, reference: Any, features: Sequence[str] | None = None) -> Self: ...

    def score(self, current: Any) -> DriftResult: ...


def check_matrix(data: Any, *, name: str, n_features: int | None = None) -> np.ndarray:
    """``data`` as a float64 (rows, features) array, or a ValueError that says what is wrong."""
    array = np.asarray(data, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows x features), got shape {array.shape}")
    if n_features is not None and array.shape[1] != n_features:
        raise ValueError(f"{name} must have shape (rows, {n_features}), got {array.shape}")
    return array


def check_categories(data: Any, *, name: str, n_features: int | None = None) -> np.ndarray:
    """``data`` as an object (rows, features) array of strings, integers or missing values."""
    array = np.asarray(data, dtype=object)
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows x features), got shape {array.shape}")
    if n_features is not None and array.shape[1] != n_features:
        raise ValueError(f"{name} must have shape (rows, {n_features}), got {array.shape}")
    return array


def feature_names(features: Sequence[str] | None, n_features: int) -> tuple[str, ...]:
    """The given names, checked against the column count, or "0", "1", ... by default."""
    names = tuple(features) if features is not None else tuple(str(i) for i in range(n_features))
    if len(names) != n_features:
        raise ValueError(
            f"{len(names)} feature names given for {n_features} columns; they must match"
        )
    return names


def columns_tensor(data: np.ndarray, device: torch.device) -> torch.Tensor:
    """A (features, rows) float64 tensor of a (rows, features) array.

    A contiguous copy first: torch refuses numpy views with negative strides (``data[::-1]``).
    """
    return torch.as_tensor(np.ascontiguousarray(data, dtype=np.float64), device=device).T


def finite_counts(data: np.ndarray) -> np.ndarray:
    """Number of finite (non-missing) values in each column."""
    return np.isfinite(data).sum(axis=0).astype(np.int64)


def drift_result(
    *,
    method: str,
    features: tuple[str, ...],
    statistic: np.ndarray,
    p_value: np.ndarray | None,
    alpha: float,
    correction: str,
    n_reference: np.ndarray,
    n_current: np.ndarray,
    threshold: float | None = None,
    extra: dict[str, np.ndarray] | None = None,
) -> DriftResult:
    """Assemble a per-feature result.

    With p-values, drift is ``p_adjusted < alpha`` after the ``correction`` across features and
    ``threshold`` is alpha. Without (a distance with no permutation test), drift is
    ``statistic > threshold`` and the p-values are NaN. Features that could not be tested (no
    values on one side) have NaN statistic and p-value and never drift.
    """
    statistic = np.asarray(statistic, dtype=np.float64)
    testable = (np.asarray(n_reference) > 0) & (np.asarray(n_current) > 0)
    statistic = np.where(testable, statistic, np.nan)
    if p_value is not None:
        p = np.where(testable, np.clip(np.asarray(p_value, dtype=np.float64), 0.0, 1.0), np.nan)
        p_adjusted = adjust(p, correction)
        drift = np.nan_to_num(p_adjusted, nan=1.0) < alpha
        used_threshold = alpha
    else:
        if threshold is None:
            raise ValueError("a detector without p-values needs a statistic threshold")
        p = np.full(statistic.shape, np.nan)
        p_adjusted = p.copy()
        drift = np.nan_to_num(statistic, nan=-np.inf) > threshold
        used_threshold = threshold
        correction = "none"
    return DriftResult(
        method=method,
        features=features,
        statistic=statistic,
        p_value=p,
        p_adjusted=p_adjusted,
        drift=drift,
        threshold=float(used_threshold),
        correction=correction,
        n_reference=np.asarray(n_reference, dtype=np.int64),
        n_current=np.asarray(n_current, dtype=np.int64),
        extra=extra or {},
    )


def multivariate_result(
    *,
    method: str,
    statistic: float,
    p_value: float | None,
    alpha: float,
    n_reference: int,
    n_current: int,
    threshold: float | None = None,
    extra: dict[str, np.ndarray] | None = None,
) -> DriftResult:
    """A result for a test over all columns at once: one entry, named ``"*"``.

    Its arrays are 1-D of length one, like a univariate result's for one feature, so code
    reads ``res.statistic[0]`` whatever the detector.
    """
    if p_value is not None:
        p = float(np.clip(p_value, 0.0, 1.0))
        drift, used = p < alpha, alpha
    else:
        if threshold is None:
            raise ValueError("a detector without p-values needs a statistic threshold")
        p, drift, used = float("nan"), statistic > threshold, threshold
    return DriftResult(
        method=method,
        features=("*",),
        statistic=np.array([float(statistic)]),
        p_value=np.array([p]),
        p_adjusted=np.array([p]),
        drift=np.array([bool(drift)]),
        threshold=float(used),
        correction="none",
        n_reference=np.array([int(n_reference)], dtype=np.int64),
        n_current=np.array([int(n_current)], dtype=np.int64),
        extra=extra or {},
    )
