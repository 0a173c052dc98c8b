"""Direct loss estimation (DLE): a regression model's error without targets.

DLE, as NannyML describes it, learns on a labelled reference how large the regression model's
loss is for each row, from the row's features and the model's prediction. On a window with no
targets yet, the mean of the predicted losses estimates the model's MAE (absolute loss) or,
through its square root, its RMSE (squared loss). The loss model sees where the model is bad
(a noisier region, an extrapolation it has seen on the reference), so a shift of the inputs
into such a region shows up as a rising estimate.

Like CBPE, DLE assumes the shift is in the inputs only: how large the loss is for given
features must stay the same. It cannot see regions the reference never covered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Self

import numpy as np
from scipy import stats
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.model_selection import KFold

from detectors.params import Params

LOSSES = ("absolute", "squared")


@dataclass(frozen=True)
class RegressionEstimate:
    """Estimated error of one window: ``metric`` is ``"mae"`` or ``"rmse"``.

    ``lower``/``upper`` bound the central ``confidence`` interval of the window's realized
    value (see :class:`DLE` for what it covers); ``n`` is the number of rows.
    """

    method: str
    metric: str
    value: float
    lower: float
    upper: float
    n: int
    confidence: float


def _check_features(data: Any, *, name: str, n_features: int | None = None) -> np.ndarray:
    array = np.asarray(data, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows x features), got shape {array.shape}")
    if n_features is not None and array.shape[1] != n_features:
        raise ValueError(f"{name} must have shape (rows, {n_features}), got {array.shape}")
    if array.shape[0] == 0:
        raise ValueError(f"{name} has no rows")
    # missing features are left to the loss model (the default one handles NaN); infinities
    # are never meaningful
    if np.isinf(array).any():
        raise ValueError(f"{name} holds infinite values")
    return array


def _check_vector(data: Any, *, name: str, n_rows: int) -> np.ndarray:
    array = np.asarray(data, dtype=np.float64)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.shape != (n_rows,):
        raise ValueError(
            f"{name} must have shape ({n_rows},), one value per row, got {array.shape}"
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite (no NaN or infinity)")
    return array


class DLE(Params):
    """Direct loss estimation of a regression model's MAE or RMSE from its inputs alone.

    ``fit`` computes each reference row's loss (``|y - y_hat|`` or ``(y - y_hat)**2``) and fits
    ``model`` (any scikit-learn regressor, cloned; by default a
    ``HistGradientBoostingRegressor`` seeded with ``seed``) to predict it from the features
    and the prediction, once per fold of ``n_folds``, each time on the other folds (cross-
    fitting). ``estimate`` averages the predicted losses of a window over its rows and the fold
    models: the MAE, or the square root of the mean squared loss for the RMSE. Negative
    predicted losses count as 0.

    The band is for *this window's realized value*. Two errors add up, both measured on the
    reference: (1) the rows' own randomness, the residuals (actual minus predicted loss) of each
    reference row under the model that did not see it, whose variance is taken in ``n_bins``
    equally full bins of predicted loss because a row expected to err more also errs more
    variably; (2) the loss model's own error from a finite reference, the jackknife variance
    of the window's mean over the fold models, ``(K - 1) / K * sum_k (m_k - m)**2``. The band
    is ``value +- z * sd`` (normal: a mean over many rows); for the RMSE the band on the mean
    squared loss is square-rooted. It leaves out the bias a loss model has where the reference
    had (almost) no rows, so far outside the reference the estimate can be off by more.

    The example passes a small tree as the loss model (fast anywhere); leave ``model`` out for
    the gradient boosting default.

    >>> import numpy as np
    >>> from sklearn.tree import DecisionTreeRegressor
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(2000, 1))
    >>> y = x[:, 0] + rng.normal(size=2000) * np.where(x[:, 0] > 0, 1.0, 0.1)
    >>> tree = DecisionTreeRegressor(min_samples_leaf=50)
    >>> dle = DLE(loss="absolute", model=tree).fit(x, x[:, 0], y)
    >>> calm, noisy = x[x[:, 0] < 0], x[x[:, 0] > 0]
    >>> dle.estimate(calm, calm[:, 0]).value < 0.2 < 0.6 < dle.estimate(noisy, noisy[:, 0]).value
    True
    """

    method = "dle"

    def __init__(
        self,
        *,
        loss: Literal["absolute", "squared"] = "absolute",
        model: Any = None,
        seed: int = 0,
        confidence: float = 0.95,
        n_folds: int = 5,
        n_bins: int = 10,
    ) -> None:
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {list(LOSSES)}, got {loss!r}")
        if model is not None and not (hasattr(model, "fit") and hasattr(model, "predict")):
            raise ValueError("model must be a scikit-learn style regressor (fit and predict)")
        if not 0.0 < confidence < 1.0:
            raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
        if n_folds < 2:
            raise ValueError(f"n_folds must be at least 2, got {n_folds}")
        if n_bins < 1:
            raise ValueError(f"n_bins must be a positive integer, got {n_bins}")
        self.loss = loss
        self.model = model
        self.seed = seed
        self.confidence = confidence
        self.n_folds = n_folds
        self.n_bins = n_bins
        self._models: list[Any] = []
        self._n_features = 0
        # bins of predicted loss (inner edges) and the residual variance within each
        self._edges = np.empty(0)
        self._variance = np.empty(0)

    @property
    def metric(self) -> str:
        """What ``estimate`` reports: ``"mae"`` for absolute loss, ``"rmse"`` for squared."""
        return "mae" if self.loss == "absolute" else "rmse"

    def _new_model(self) -> Any:
        if self.model is None:
            return HistGradientBoostingRegressor(random_state=self.seed)
        return clone(self.model)

    def _losses(self, predictions: np.ndarray, targets: np.ndarray) -> np.ndarray:
        error = targets - predictions
        return np.abs(error) if self.loss == "absolute" else error**2

    def fit(
        self, reference_features: Any, reference_predictions: Any, reference_targets: Any
    ) -> Self:
        """Learn the loss models on a labelled reference; returns ``self``."""
        features = _check_features(reference_features, name="reference_features")
        n = len(features)
        predictions = _check_vector(reference_predictions, name="reference_predictions", n_rows=n)
        targets = _check_vector(reference_targets, name="reference_targets", n_rows=n)
        if n < 10 * self.n_folds:
            raise ValueError(
                f"the reference needs at least {10 * self.n_folds} rows "
                f"({self.n_folds} folds of 10) to learn a loss, got {n}"
            )
        inputs = np.column_stack([features, predictions])
        losses = self._losses(predictions, targets)

        models, out_of_fold = [], np.empty(n)
        folds = KFold(n_splits=self.n_folds, shuffle=True, random_state=self.seed)
        for train, test in folds.split(inputs):
            models.append(self._new_model().fit(inputs[train], losses[train]))
            out_of_fold[test] = np.maximum(models[-1].predict(inputs[test]), 0.0)
        residuals = losses - out_of_fold
        # at least ~30 rows per bin, so each variance rests on something
        n_bins = max(1, min(self.n_bins, n // 30))
        self._edges = np.unique(np.quantile(out_of_fold, np.linspace(0.0, 1.0, n_bins + 1)[1:-1]))
        bins = np.searchsorted(self._edges, out_of_fold, side="right")
        self._variance = np.array(
            [
                residuals[bins == b].var(ddof=1) if np.sum(bins == b) > 1 else residuals.var()
                for b in range(len(self._edges) + 1)
            ]
        )
        self._models = models
        self._n_features = features.shape[1]
        return self

    def estimate(self, current_features: Any, current_predictions: Any) -> RegressionEstimate:
        """Estimated MAE or RMSE of a window without targets, with its band."""
        if not self._models:
            raise RuntimeError("call fit(reference_features, ...) before estimate(...)")
        features = _check_features(
            current_features, name="current_features", n_features=self._n_features
        )
        n = len(features)
        predictions = _check_vector(current_predictions, name="current_predictions", n_rows=n)
        inputs = np.column_stack([features, predictions])
        # (folds, rows) predicted losses
        per_model = np.maximum(np.stack([m.predict(inputs) for m in self._models]), 0.0)
        predicted = per_model.mean(axis=0)
        mean_loss = float(predicted.mean())
        window_means = per_model.mean(axis=1)
        k = len(self._models)
        model_variance = (k - 1) / k * float(np.sum((window_means - mean_loss) ** 2))
        row_variance = (
            float(self._variance[np.searchsorted(self._edges, predicted, side="right")].sum())
            / n**2
        )
        z = float(stats.norm.ppf(0.5 + self.confidence / 2))
        half = z * np.sqrt(row_variance + model_variance)
        lower, upper = max(mean_loss - half, 0.0), mean_loss + half
        if self.loss == "squared":
            mean_loss, lower, upper = np.sqrt(mean_loss), np.sqrt(lower), np.sqrt(upper)
        return RegressionEstimate(
            method=self.method,
            metric=self.metric,
            value=float(mean_loss),
            lower=float(lower),
            upper=float(upper),
            n=n,
            confidence=self.confidence,
        )
