"""Importance-weighted CBPE: label-free estimates that follow a covariate shift.

CBPE assumes ``P(label | model scores)`` is the same in the current window as on the
reference. Under covariate shift it often is not: the inputs move into a region where the
model is right (or wrong) for other reasons than its scores say, and CBPE's estimate stays
where the reference was. This estimator learns the calibration on the reference rows weighted
by how much more likely each is under the current window than under the reference, the density
ratio ``w(x) = p_current(x) / p_reference(x)``. The weighted calibration estimates the
current window's ``P(label | score)`` as long as ``P(label | inputs)`` is unchanged (covariate
shift) and the reference covers where the window went (Shimodaira 2000, "Improving predictive
inference under covariate shift by weighting the log-likelihood function", J. Statistical
Planning and Inference 90(2); Sugiyama, Krauledat and Müller 2007, "Covariate shift adaptation
by importance weighted cross validation", JMLR 8). The ratio comes from a probabilistic
classifier told apart reference and current rows, ``w = P(current | x) / P(reference | x)``
with balanced classes (Bickel, Brückner and Scheffer 2009, "Discriminative learning under
covariate shift", JMLR 10).

Weights are clipped at ``max_weight`` times their mean, trading a little bias for variance
where the reference barely covers the window; the band's calibration variance counts what
remains of the reference (its effective size, ``(sum w)**2 / sum w**2``, is reported).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Self

import numpy as np
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression

from detectors.params import Params
from detectors.performance.calibration import (
    Calibrator,
    calibrated_columns,
    check_probabilities,
    class_index,
    sorted_columns,
)
from detectors.performance.cbpe import (
    METRICS,
    PerformanceEstimate,
    band,
    check_common,
    check_device,
)
from detectors.performance.expected import (
    Decisions,
    expected_metrics,
    sampling_moments,
)


def _features(data: Any, *, name: str, n_rows: int, n_features: int | None) -> np.ndarray:
    array = np.asarray(data, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[0] != n_rows:
        raise ValueError(
            f"{name} must be (rows, features) with one row per probability row ({n_rows}), "
            f"got shape {np.shape(data)}"
        )
    if n_features is not None and array.shape[1] != n_features:
        raise ValueError(f"{name} must have {n_features} columns, got {array.shape[1]}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite (no NaN or infinity)")
    return array


def _logits(probabilities: np.ndarray) -> np.ndarray:
    clipped = np.clip(probabilities, 1e-6, 1 - 1e-6)
    columns = calibrated_columns(probabilities.shape[1])
    return np.log(clipped[:, columns]) - np.log1p(-clipped[:, columns])


class ImportanceWeightedCBPE(Params):
    """CBPE with the calibration reweighted to the current window (covariate shift).

    ``fit`` keeps the labelled reference: its probabilities, labels and, optionally, the
    model's inputs (numeric features, one row per probability row). ``estimate`` fits
    ``domain_model`` (by default a logistic regression on the standardised features and the
    scores' logits, balanced classes) to tell the reference from the window, weighs each
    reference row by the resulting density ratio, learns the isotonic calibration with those
    weights and returns CBPE's expected metrics of the window under it. Without features the
    domain classifier sees the scores only; reweighting by the score alone leaves
    ``P(label | score)`` as it was, so the estimate is then CBPE's up to noise: the features are
    what lets it follow a shift.

    The band is CBPE's (delta-method sampling variance of the window's realized metric plus the
    calibration's own variance, each block's mean now a weighted one), without CBPE's
    reference-bias correction; the weights themselves are taken as known.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(4000, 2))
    >>> p = 1 / (1 + np.exp(-2 * x[:, 0]))
    >>> y = (rng.uniform(size=4000) < p).astype(int)
    >>> iw = ImportanceWeightedCBPE(metrics=("accuracy",)).fit(p, y, x)
    >>> est = iw.estimate(p[:2000], x[:2000])
    >>> round(est["accuracy"].value, 2), est.effective_rows > 3000
    (0.78, True)
    """

    method = "iw-cbpe"

    def __init__(
        self,
        *,
        metrics: Sequence[str] = METRICS,
        confidence: float = 0.95,
        threshold: float = 0.5,
        max_weight: float = 50.0,
        domain_model: Any = None,
        device: str = "auto",
        seed: int = 0,
    ) -> None:
        self.metrics = check_common(metrics, confidence, 2, threshold)
        if max_weight < 1.0:
            raise ValueError(f"max_weight must be at least 1, got {max_weight}")
        if domain_model is not None and not hasattr(domain_model, "predict_proba"):
            raise ValueError("domain_model must be a scikit-learn classifier with predict_proba")
        check_device(device)
        self.confidence = confidence
        self.threshold = threshold
        self.max_weight = max_weight
        self.domain_model = domain_model
        self.device = device
        self.seed = seed
        self.classes_: np.ndarray = np.empty(0)
        self._probabilities = np.empty((0, 0))
        self._labels = np.empty(0, dtype=np.int64)
        self._features: np.ndarray | None = None

    def fit(
        self,
        reference_probabilities: Any,
        reference_labels: Any,
        reference_features: Any = None,
        classes: Sequence[Any] | None = None,
    ) -> Self:
        """Keep the labelled reference (the calibration is learnt per window)."""
        probabilities = check_probabilities(
            reference_probabilities,
            name="reference_probabilities",
            n_classes=len(classes) if classes is not None else None,
        )
        if np.ndim(reference_labels) == 1 and len(reference_labels) != len(probabilities):
            raise ValueError(
                f"{len(reference_labels)} reference_labels for {len(probabilities)} rows of "
                "reference_probabilities; they must match"
            )
        self.classes_, self._labels = class_index(reference_labels, probabilities.shape[1], classes)
        self._probabilities = probabilities
        self._features = (
            None
            if reference_features is None
            else _features(
                reference_features,
                name="reference_features",
                n_rows=len(probabilities),
                n_features=None,
            )
        )
        return self

    def _domain_inputs(self, probabilities: np.ndarray, features: np.ndarray | None) -> np.ndarray:
        inputs = _logits(probabilities)
        return inputs if features is None else np.column_stack([features, inputs])

    def weights(self, current_probabilities: Any, current_features: Any = None) -> np.ndarray:
        """The reference rows' importance weights for a window (mean 1, clipped)."""
        if len(self._labels) == 0:
            raise RuntimeError("call fit(reference_probabilities, reference_labels) first")
        current = check_probabilities(
            current_probabilities, name="current_probabilities", n_classes=len(self.classes_)
        )
        if (self._features is None) != (current_features is None):
            raise ValueError(
                "give features to both fit and estimate, or to neither: the domain classifier "
                "compares the same inputs on both sides"
            )
        features = (
            None
            if current_features is None
            else _features(
                current_features,
                name="current_features",
                n_rows=len(current),
                n_features=None if self._features is None else self._features.shape[1],
            )
        )
        reference = self._domain_inputs(self._probabilities, self._features)
        window = self._domain_inputs(current, features)
        both = np.vstack([reference, window])
        centre, scale = both.mean(axis=0), both.std(axis=0)
        both = (both - centre) / np.where(scale > 0, scale, 1.0)
        side = np.r_[np.zeros(len(reference)), np.ones(len(window))]
        model = (
            LogisticRegression(class_weight="balanced", max_iter=1000)
            if self.domain_model is None
            else clone(self.domain_model)
        )
        model.fit(both, side)
        p_current = np.clip(model.predict_proba(both[: len(reference)])[:, 1], 1e-12, 1 - 1e-12)
        # balanced classes: the odds are the density ratio, up to a constant the mean removes
        ratio = p_current / (1.0 - p_current)
        ratio /= ratio.mean()
        ratio = np.minimum(ratio, self.max_weight)
        return ratio / ratio.mean()

    def estimate(
        self, current_probabilities: Any, current_features: Any = None
    ) -> PerformanceEstimate:
        """Expected metrics of an unlabelled window under the reweighted calibration."""
        weights = self.weights(current_probabilities, current_features)
        raw = check_probabilities(
            current_probabilities, name="current_probabilities", n_classes=len(self.classes_)
        )
        calibrator = Calibrator.fit(self._probabilities, self._labels, weights)
        orders, ordered = sorted_columns(raw)
        calibrated = calibrator.calibrate(raw, orders, ordered)
        q = calibrated.q
        decisions = Decisions.of(raw, self.threshold, self.metrics, orders, ordered)
        value, grads = expected_metrics(q, decisions, self.metrics)
        variance, means = sampling_moments(q, grads)
        variance = variance + calibrated.variance(grads, means)
        estimate = band(self.method, self.metrics, value, variance, len(raw), self.confidence)
        effective = float(weights.sum() ** 2 / (weights**2).sum())
        return dataclasses.replace(estimate, effective_rows=effective)
