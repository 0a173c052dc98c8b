"""Realized regression metrics, once the targets of a window have arrived.

MAE, RMSE, MAPE and R², each as scikit-learn defines it, computed in torch (float64) on the
configured device and returned as Python floats.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from detectors.device import resolve_device

# scikit-learn's mean_absolute_percentage_error divides by max(|y_true|, eps)
_MAPE_EPS = float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class RegressionMetrics:
    """Realized metrics of one window of ``n`` numeric predictions.

    ``mape`` is a fraction (0.1 is 10 %), not a percentage; a zero target makes it huge rather
    than infinite, as in scikit-learn. ``r2`` is NaN for fewer than two rows.
    """

    n: int
    mae: float
    rmse: float
    mape: float
    r2: float


def _check_targets(data: Any, *, name: str) -> np.ndarray:
    array = np.asarray(data, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per row), got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must hold finite numbers (no NaN or infinity)")
    return array


def regression_metrics(y_true: Any, y_pred: Any, *, device: str = "auto") -> RegressionMetrics:
    """MAE, RMSE, MAPE and R² of ``y_pred`` against ``y_true``.

    - ``mape``: mean of ``|y_pred - y_true| / max(|y_true|, eps)`` with the float64 machine
      epsilon, as ``sklearn.metrics.mean_absolute_percentage_error``.
    - ``r2``: ``1 - SS_res / SS_tot`` as ``sklearn.metrics.r2_score``; when ``y_true`` is
      constant (``SS_tot == 0``) it is 1.0 for a perfect prediction and 0.0 otherwise. The
      constant case is detected exactly, so rounding in the mean cannot turn it into a huge
      negative score.

    >>> m = regression_metrics([1.0, 2.0, 4.0], [1.0, 3.0, 2.0], device="cpu")
    >>> m.mae, m.rmse, m.mape, round(m.r2, 6)
    (1.0, 1.2909944487358056, 0.3333333333333333, -0.071429)
    """
    truth = _check_targets(y_true, name="y_true")
    predicted = _check_targets(y_pred, name="y_pred")
    if truth.shape != predicted.shape:
        raise ValueError(
            f"y_true has {truth.shape[0]} rows but y_pred has {predicted.shape[0]}; they must match"
        )
    n = truth.shape[0]
    if n == 0:
        raise ValueError("y_true is empty; there is nothing to score")
    dev = resolve_device(device)
    y = torch.as_tensor(truth, device=dev)
    error = torch.as_tensor(predicted, device=dev) - y
    absolute = error.abs()
    mae = absolute.mean()
    rmse = error.square().mean().sqrt()
    mape = (absolute / y.abs().clamp(min=_MAPE_EPS)).mean()
    if n < 2:
        r2 = float("nan")  # scikit-learn: R² is not defined for a single row
    else:
        residual = float(error.square().sum())
        total = 0.0 if bool((y == y[0]).all()) else float((y - y.mean()).square().sum())
        if residual == 0.0:
            r2 = 1.0
        elif total == 0.0:
            r2 = 0.0  # scikit-learn's force_finite: a constant target has no variance to explain
        else:
            r2 = 1.0 - residual / total
    return RegressionMetrics(n=n, mae=float(mae), rmse=float(rmse), mape=float(mape), r2=r2)
