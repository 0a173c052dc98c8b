"""Confidence-based performance estimation (CBPE): a classifier's metrics without labels.

CBPE, as NannyML describes it, reads a calibrated probability as the chance that the row's
label is that class. Given calibrated probabilities ``q`` for a window with no labels yet, the
model's (known) predictions and the probabilities' (known) ranking, every metric has an
*expected* value: accuracy is the mean ``q`` of the predicted class, F1 and ROC AUC come from
the expected confusion matrix and the expected ROC curve. The calibration is learnt once on a
labelled reference by isotonic regression, one class against the rest.

The estimate is right when calibration carries over from the reference to the current window,
that is when the shift is in the inputs only and ``P(label | model scores)`` stays the same. A
change of the concept itself (``P(label | inputs)``) is invisible to CBPE, as to any method
without labels; a shift of the inputs that changes ``P(label | scores)`` (the model is right
for other reasons in the new region) biases it too: see
:class:`detectors.performance.importance.ImportanceWeightedCBPE`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Self

import numpy as np
from scipy import stats

from detectors.params import Params
from detectors.performance.calibration import (
    Calibrator,
    SortedScores,
    check_probabilities,
    class_index,
    distinct,
    fit_distinct,
    sorted_columns,
)
from detectors.performance.crossfit import cross_fitted, expected_calibration_error
from detectors.performance.expected import (
    METRICS,
    Decisions,
    expected_metrics,
    metric_values,
    sampling_moments,
)

__all__ = [
    "CBPE",
    "METRICS",
    "MetricEstimate",
    "PerformanceEstimate",
    "check_probabilities",
    "expected_calibration_error",
]

CALIBRATE = ("always", "auto", "never")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class MetricEstimate:
    """One metric's estimate, the bounds of its band and its standard error."""

    value: float
    lower: float
    upper: float
    standard_error: float


@dataclass(frozen=True)
class PerformanceEstimate:
    """Estimated metrics of one window: ``value[i]`` belongs to ``metrics[i]``.

    ``lower``/``upper`` bound the central ``confidence`` interval of the metric the window's
    labels will realize on these ``n`` rows, ``value +- z * standard_error`` (see
    :class:`CBPE` for what it covers). ``estimate["f1"]`` gives one metric as a
    :class:`MetricEstimate`.
    """

    method: str
    metrics: tuple[str, ...]
    value: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    n: int
    confidence: float
    standard_error: np.ndarray
    # reference rows the calibration effectively rests on, when they are weighted
    effective_rows: float | None = None

    def __getitem__(self, metric: str) -> MetricEstimate:
        if metric not in self.metrics:
            raise KeyError(f"{metric!r} was not estimated; metrics are {list(self.metrics)}")
        i = self.metrics.index(metric)
        return MetricEstimate(
            value=float(self.value[i]),
            lower=float(self.lower[i]),
            upper=float(self.upper[i]),
            standard_error=float(self.standard_error[i]),
        )


@functools.lru_cache(maxsize=64)
def _normal_quantile(level: float) -> float:
    """The standard normal quantile, kept per level: scipy's ``ppf`` costs as much as a
    tenth of a window's estimate."""
    return float(stats.norm.ppf(level))


def band(
    method: str,
    metrics: tuple[str, ...],
    value: np.ndarray,
    variance: np.ndarray,
    n: int,
    confidence: float,
    centre: np.ndarray | None = None,
) -> PerformanceEstimate:
    """The estimate with its normal band ``centre +- z * sd`` (``centre`` defaults to
    ``value``), clipped to [0, 1]."""
    z = _normal_quantile(0.5 + confidence / 2)
    sd = np.sqrt(variance)
    middle = value if centre is None else centre
    return PerformanceEstimate(
        method=method,
        metrics=metrics,
        value=value,
        lower=np.clip(middle - z * sd, 0.0, 1.0),
        upper=np.clip(middle + z * sd, 0.0, 1.0),
        n=n,
        confidence=confidence,
        standard_error=sd,
    )


def check_common(
    metrics: Sequence[str], confidence: float, n_bins: int, threshold: float
) -> tuple[str, ...]:
    """The checks CBPE and its variants share; the metrics as a tuple."""
    if isinstance(metrics, str):  # one name, not its letters
        metrics = (metrics,)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {list(METRICS)}")
    if not metrics:
        raise ValueError(f"metrics must name at least one of {list(METRICS)}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    if n_bins < 2:
        raise ValueError(f"n_bins must be at least 2, got {n_bins}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must lie between 0 and 1, got {threshold}")
    return tuple(metrics)


def check_device(device: str) -> None:
    if device not in DEVICES and not device.startswith("cuda:"):
        raise ValueError(f"device must be one of {list(DEVICES)} or 'cuda:N', got {device!r}")


class CBPE(Params):
    """Confidence-based performance estimation of a classifier from its probabilities alone.

    ``fit`` learns an isotonic calibration per class (one against the rest; rows renormalised
    for three or more classes) on a labelled reference. ``estimate`` returns the expected
    ``accuracy``, ``f1`` and ``roc_auc`` of an unlabelled window. The model's prediction is the
    class of largest probability; for two classes, positive when the positive-class score is
    at least ``threshold`` (the model's own cut: see
    :func:`detectors.performance.decision.decision_threshold`). F1 and ROC AUC are the positive
    class's for two classes (the second column, or ``classes[1]``) and macro one-vs-rest
    averages otherwise. The expected values are NannyML's.

    The band is for *this window's realized metric*: ``centre +- z * sd`` (normal), where the
    variance adds two errors, both first order (see :mod:`detectors.performance.expected`):
    (1) the labels' own randomness given the rows, from the calibrated probabilities (exact for
    accuracy); (2) the error of a calibration learnt from a finite reference: each isotonic
    block's probability is a mean of the reference labels it pooled, whose variance moves the
    window's expected metric through the rows that fall in the block. The centre is ``value``
    plus ``bias_``, the estimate's error on the reference measured with each reference row
    calibrated by the folds that did not see it (finite-reference isotonic fits are
    overconfident at both ends, and for three or more classes one-vs-rest calibration is not
    calibration of the predicted class). Measured coverage of the 95% band on unshifted
    windows: 0.93-0.96 (README, "Performance estimation"). With ``calibrate`` ending
    uncalibrated, (2) is 0 and the centre still moves by the raw probabilities' error on the
    reference. The band does not cover a shift that changes how scores map to outcomes
    (concept shift, or covariate shift into a region the model ranks differently): then the
    estimate is biased and the band does not say so.

    ``calibrate="auto"`` keeps the raw probabilities unless cross-validated isotonic calibration
    lowers the expected calibration error on the reference (over ``n_bins`` equal-frequency
    bins), as NannyML does; ``"always"`` and ``"never"`` decide up front. ``seed`` splits the
    folds. The work is numpy on the CPU (a sort per scored class and a few passes over the
    window); ``device`` is accepted for the detectors' common interface.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> p = rng.uniform(size=4000)
    >>> y = (rng.uniform(size=4000) < p).astype(int)
    >>> est = CBPE(metrics=("accuracy",)).fit(p, y).estimate(p[:2000])
    >>> round(est["accuracy"].value, 2), est.n
    (0.75, 2000)
    """

    method = "cbpe"

    def __init__(
        self,
        *,
        metrics: Sequence[str] = METRICS,
        n_bins: int = 10,
        device: str = "auto",
        confidence: float = 0.95,
        threshold: float = 0.5,
        calibrate: Literal["always", "auto", "never"] = "always",
        seed: int = 0,
    ) -> None:
        self.metrics = check_common(metrics, confidence, n_bins, threshold)
        if calibrate not in CALIBRATE:
            raise ValueError(f"calibrate must be one of {list(CALIBRATE)}, got {calibrate!r}")
        check_device(device)
        self.n_bins = n_bins
        self.device = device
        self.confidence = confidence
        self.threshold = threshold
        self.calibrate = calibrate
        self.seed = seed
        self._calibrator: Calibrator | None = None
        self._fitted = False
        self.classes_: np.ndarray = np.empty(0)
        # set by fit: whether the probabilities are recalibrated, and the reference's expected
        # calibration error before and after (on held-out folds, so it is not flattered)
        self.calibrated_ = False
        self.ece_raw_ = float("nan")
        self.ece_calibrated_ = float("nan")
        # set by fit: the estimate's error on the (cross-fitted) reference, per metric
        self.bias_ = np.zeros(len(self.metrics))

    def fit(
        self,
        reference_probabilities: Any,
        reference_labels: Any,
        classes: Sequence[Any] | None = None,
    ) -> Self:
        """Learn the calibration on a labelled reference.

        ``classes`` names the probability columns in order; by default the sorted distinct
        labels. Every class must occur in the reference.
        """
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
        names, labels = class_index(reference_labels, probabilities.shape[1], classes)
        # the reference's columns sorted once, for the folds, the calibrator and the ROC curves
        columns = distinct(probabilities, labels)
        self.ece_raw_, self.ece_calibrated_, out_of_fold = cross_fitted(
            probabilities, labels, n_bins=self.n_bins, seed=self.seed, columns=columns
        )
        if self.calibrate == "auto":
            self.calibrated_ = self.ece_calibrated_ < self.ece_raw_
        else:
            self.calibrated_ = self.calibrate == "always"
        self._reference_bias(probabilities, labels, out_of_fold, columns)
        self._calibrator = fit_distinct(columns, np.ones(len(labels))) if self.calibrated_ else None
        self.classes_ = names
        self._fitted = True
        return self

    def _reference_bias(
        self,
        probabilities: np.ndarray,
        labels: np.ndarray,
        out_of_fold: np.ndarray | None,
        columns: list[SortedScores],
    ) -> None:
        """The estimate's error on the reference itself: realized minus expected metrics, with
        each row calibrated by the folds that did not see it (the raw probabilities when not
        calibrating).

        CBPE is biased where its calibrated probabilities are: isotonic regression from a
        finite reference is overconfident at both ends of the scores, and for three or more
        classes one-vs-rest calibration is not calibration of the predicted class (the class
        being the largest changes its odds). The band is centred on the estimate corrected by
        this error. The correction's own noise comes from the reference labels the calibration
        learnt from, so it cancels most of the calibration error rather than adding to it:
        measured, the corrected error's standard deviation equals the band's (sampling and
        calibration variance) and no third term is added.
        """
        self.bias_ = np.zeros(len(self.metrics))
        q = out_of_fold if self.calibrated_ else probabilities
        if q is None:
            return
        orders = [c.order for c in columns]
        decisions = Decisions.of(probabilities, self.threshold, self.metrics, orders)
        truth = np.eye(probabilities.shape[1])[labels].T[:, None, :]
        realized = metric_values(truth, decisions, self.metrics)[:, 0]
        expected = metric_values(q.T[:, None, :], decisions, self.metrics)[:, 0]
        self.bias_ = np.nan_to_num(realized - expected)

    def _checked(self, probabilities: Any) -> np.ndarray:
        if not self._fitted:
            raise RuntimeError("call fit(reference_probabilities, reference_labels) first")
        return check_probabilities(
            probabilities, name="current_probabilities", n_classes=len(self.classes_)
        )

    def calibrated_probabilities(self, probabilities: Any) -> np.ndarray:
        """The (rows, classes) probabilities after the calibration learnt in ``fit``."""
        array = self._checked(probabilities)
        return array if self._calibrator is None else self._calibrator.apply(array)

    def estimate(self, current_probabilities: Any) -> PerformanceEstimate:
        """Expected metrics of an unlabelled window, each with its band."""
        raw = self._checked(current_probabilities)
        # one sort per scored class, shared by the calibration and the ROC curves
        orders, ordered = sorted_columns(raw)
        calibrated = (
            None if self._calibrator is None else self._calibrator.calibrate(raw, orders, ordered)
        )
        q = raw.T if calibrated is None else calibrated.q  # (classes, rows)
        decisions = Decisions.of(raw, self.threshold, self.metrics, orders, ordered)
        value, grads = expected_metrics(q, decisions, self.metrics)
        variance, means = sampling_moments(q, grads)
        if calibrated is not None:
            variance = variance + calibrated.variance(grads, means)
        return band(
            self.method,
            self.metrics,
            value,
            variance,
            len(raw),
            self.confidence,
            centre=value + self.bias_,
        )
