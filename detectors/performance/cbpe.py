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
without labels.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Self

import numpy as np
import torch
from sklearn.isotonic import IsotonicRegression
from sklearn.model_selection import KFold

from detectors.device import resolve_device
from detectors.params import Params

METRICS = ("accuracy", "f1", "roc_auc")
CALIBRATE = ("always", "auto", "never")

# Cap on the number of float64 values one batch of drawn label sets holds (label sets x rows),
# so the Monte Carlo band on a large window is computed in slices, not in gigabytes.
_MAX_DRAWN_VALUES = 1 << 22


@dataclass(frozen=True)
class MetricEstimate:
    """One metric's estimate and the bounds of its band."""

    value: float
    lower: float
    upper: float


@dataclass(frozen=True)
class PerformanceEstimate:
    """Estimated metrics of one window: ``value[i]`` belongs to ``metrics[i]``.

    ``lower``/``upper`` bound the central ``confidence`` interval of the metric that labels
    drawn from the calibrated probabilities would realize on these ``n`` rows (see
    :class:`CBPE`). ``estimate["f1"]`` gives one metric as a :class:`MetricEstimate`.
    """

    method: str
    metrics: tuple[str, ...]
    value: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    n: int
    confidence: float

    def __getitem__(self, metric: str) -> MetricEstimate:
        if metric not in self.metrics:
            raise KeyError(f"{metric!r} was not estimated; metrics are {list(self.metrics)}")
        i = self.metrics.index(metric)
        return MetricEstimate(
            value=float(self.value[i]), lower=float(self.lower[i]), upper=float(self.upper[i])
        )


def check_probabilities(data: Any, *, name: str, n_classes: int | None = None) -> np.ndarray:
    """``data`` as a float64 (rows, classes) array of probabilities, or a clear ValueError.

    A 1-D array is a binary classifier's positive-class score and becomes ``[1 - p, p]``.
    """
    array = np.asarray(data, dtype=np.float64)
    if array.ndim == 1:
        array = np.column_stack([1.0 - array, array])
    if array.ndim != 2 or array.shape[1] < 2:
        raise ValueError(
            f"{name} must be (rows,) positive-class scores or (rows, classes) probabilities "
            f"with at least 2 classes, got shape {np.shape(data)}"
        )
    if n_classes is not None and array.shape[1] != n_classes:
        raise ValueError(
            f"{name} must have {n_classes} columns (one per class seen in fit), "
            f"got shape {array.shape}"
        )
    if array.shape[0] == 0:
        raise ValueError(f"{name} has no rows")
    if not np.all(np.isfinite(array)) or array.min() < 0.0 or array.max() > 1.0:
        raise ValueError(f"{name} must hold finite probabilities in [0, 1]")
    return array


def expected_calibration_error(
    probabilities: np.ndarray, labels: np.ndarray, *, n_bins: int = 10
) -> float:
    """Mean one-vs-rest expected calibration error over equal-frequency bins.

    ``labels`` are class indices into the columns. For two classes only the positive column is
    scored (the negative one has the same error). Per class: rows sorted by probability, cut
    into ``n_bins`` equally full bins, ``sum_b |sum p - sum y| / n``.

    >>> p = np.array([[0.8, 0.2], [0.8, 0.2], [0.3, 0.7], [0.3, 0.7]])
    >>> expected_calibration_error(p, np.array([0, 0, 1, 1]), n_bins=2)
    0.25
    """
    classes = [1] if probabilities.shape[1] == 2 else range(probabilities.shape[1])
    errors = []
    for k in classes:
        order = np.argsort(probabilities[:, k], kind="stable")
        bins = np.array_split(order, min(n_bins, len(order)))
        gap = sum(abs(probabilities[b, k].sum() - (labels[b] == k).sum()) for b in bins)
        errors.append(gap / len(labels))
    return float(np.mean(errors))


def _fit_calibrators(probabilities: np.ndarray, labels: np.ndarray) -> list[IsotonicRegression]:
    # binary: one calibrator for the positive class, the negative is its complement
    classes = [1] if probabilities.shape[1] == 2 else range(probabilities.shape[1])
    return [
        IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(
            probabilities[:, k], (labels == k).astype(np.float64)
        )
        for k in classes
    ]


def _apply_calibrators(
    calibrators: Sequence[IsotonicRegression], probabilities: np.ndarray
) -> np.ndarray:
    if probabilities.shape[1] == 2:
        positive = np.clip(calibrators[0].predict(probabilities[:, 1]), 0.0, 1.0)
        return np.column_stack([1.0 - positive, positive])
    calibrated = np.column_stack(
        [c.predict(probabilities[:, k]) for k, c in enumerate(calibrators)]
    )
    calibrated = np.clip(calibrated, 0.0, 1.0)
    total = calibrated.sum(axis=1, keepdims=True)
    # one-vs-rest calibrators do not sum to 1; a row every calibrator clipped to 0 (scores
    # outside anything the reference showed) keeps the model's own probabilities instead
    raw_total = np.maximum(probabilities.sum(axis=1, keepdims=True), 1e-300)
    return np.where(
        total > 1e-12, calibrated / np.maximum(total, 1e-300), probabilities / raw_total
    )


@dataclass(frozen=True)
class _Ranking:
    """One class's rows ordered by descending model score, and where each tie group ends."""

    order: torch.Tensor
    ends: torch.Tensor


def _ranking(scores: torch.Tensor) -> _Ranking:
    ordered, order = torch.sort(scores, descending=True, stable=True)
    last = torch.ones_like(ordered, dtype=torch.bool)
    last[:-1] = ordered[1:] != ordered[:-1]
    return _Ranking(order=order, ends=torch.nonzero(last).flatten())


def _roc_auc(members: torch.Tensor, ranking: _Ranking) -> torch.Tensor:
    """ROC AUC of each row of ``members`` (label sets, soft or 0/1) against one ranking.

    The ROC curve has one point per distinct score (tied rows move together), area by the
    trapezoid rule; with 0/1 labels this is exactly ``sklearn.metrics.roc_auc_score``. With
    calibrated probabilities as soft labels it is NannyML's expected ROC AUC.
    """
    true_pos = torch.cumsum(members[:, ranking.order], dim=1)[:, ranking.ends]
    false_pos = (ranking.ends + 1).to(members.dtype) - true_pos
    zero = torch.zeros_like(true_pos[:, :1])
    # no positives (or no negatives) makes the AUC undefined: 0/0 gives NaN on purpose
    tpr = torch.cat([zero, true_pos / true_pos[:, -1:]], dim=1)
    fpr = torch.cat([zero, false_pos / false_pos[:, -1:]], dim=1)
    return torch.trapezoid(tpr, fpr, dim=1)


def _metric_values(
    members: Sequence[torch.Tensor],
    predicted: torch.Tensor,
    score_classes: Sequence[int],
    rankings: Sequence[_Ranking],
    metrics: Sequence[str],
) -> list[torch.Tensor]:
    """Each metric for a batch of label sets, one value per label set.

    ``members[k]`` is a (label sets, rows) tensor: 1/0 whether the row's label is class ``k``,
    or its calibrated probability for the expected value. Every metric is linear in these
    memberships up to the final ratio, so one code path gives both the expectation and the
    realized value of a drawn label set. F1 and ROC AUC are those of the positive class for
    two classes and one-vs-rest macro averages otherwise (``score_classes``, ranked by
    ``rankings`` in the same order; those are only needed for ROC AUC).
    """
    n = predicted.shape[0]
    hits = [(predicted == k).to(members[0].dtype) for k in range(len(members))]
    out = []
    for metric in metrics:
        if metric == "accuracy":
            correct = torch.stack([m @ h for m, h in zip(members, hits, strict=True)])
            out.append(correct.sum(dim=0) / n)
        elif metric == "f1":
            scores = []
            for k in score_classes:
                true_pos = members[k] @ hits[k]
                false_pos = hits[k].sum() - true_pos
                false_neg = members[k].sum(dim=1) - true_pos
                denominator = 2 * true_pos + false_pos + false_neg
                # no positives predicted or present: F1 is 0, as scikit-learn's zero_division
                scores.append(
                    torch.where(denominator > 0, 2 * true_pos / denominator.clamp(min=1e-300), 0)
                )
            out.append(torch.stack(scores).mean(dim=0))
        else:
            aucs = [
                _roc_auc(members[k], ranking)
                for k, ranking in zip(score_classes, rankings, strict=True)
            ]
            out.append(torch.stack(aucs).mean(dim=0))
    return out


class CBPE(Params):
    """Confidence-based performance estimation of a classifier from its probabilities alone.

    ``fit`` learns an isotonic calibration per class (one against the rest; rows renormalised
    for three or more classes) on a labelled reference. ``estimate`` returns the expected
    ``accuracy``, ``f1`` and ``roc_auc`` of an unlabelled window. The model's prediction is the
    class of largest probability; for two classes, positive when the positive-class score is
    at least ``threshold``. F1 and ROC AUC are the positive class's for two classes (the second
    column, or ``classes[1]``) and macro one-vs-rest averages otherwise.

    The band is a Monte Carlo one for *this window's realized metric*: ``n_samples`` label sets
    are drawn from calibrated probabilities (seeded, in torch), each metric is computed for
    each set, and ``lower``/``upper`` are the central ``confidence`` quantiles. The label sets
    are drawn in turn from ``n_bootstrap`` calibrations fitted on bootstrap resamples of the
    reference, so the band covers both the labels' randomness given the rows and the error of a
    calibration learnt from a finite reference (``n_bootstrap=0`` leaves the latter out and
    gives a narrower band). It does not cover a shift that changes how scores map to outcomes
    (concept shift): then the estimate is biased and the band does not say so.

    ``calibrate="auto"`` keeps the raw probabilities unless cross-validated isotonic calibration
    lowers the expected calibration error on the reference (over ``n_bins`` equal-frequency
    bins), as NannyML does; ``"always"`` and ``"never"`` decide up front. The same seed and
    device give the same band; CPU and CUDA draw different random streams.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> p = rng.uniform(size=4000)
    >>> y = (rng.uniform(size=4000) < p).astype(int)
    >>> est = CBPE(metrics=("accuracy",), device="cpu").fit(p, y).estimate(p[:2000])
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
        n_samples: int = 200,
        n_bootstrap: int = 20,
        threshold: float = 0.5,
        calibrate: Literal["always", "auto", "never"] = "always",
        seed: int = 0,
    ) -> None:
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
        if n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer, got {n_samples}")
        if n_bootstrap < 0:
            raise ValueError(f"n_bootstrap must be 0 or more, got {n_bootstrap}")
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must lie between 0 and 1, got {threshold}")
        if calibrate not in CALIBRATE:
            raise ValueError(f"calibrate must be one of {list(CALIBRATE)}, got {calibrate!r}")
        self.metrics = tuple(metrics)
        self.n_bins = n_bins
        self.device = device
        self.confidence = confidence
        self.n_samples = n_samples
        self.n_bootstrap = n_bootstrap
        self.threshold = threshold
        self.calibrate = calibrate
        self.seed = seed
        self._device = resolve_device(device)
        self._calibrators: list[IsotonicRegression] | None = None
        self._bootstrap: list[list[IsotonicRegression]] = []
        self.classes_: np.ndarray = np.empty(0)
        # set by fit: whether the probabilities are recalibrated, and the reference's expected
        # calibration error before and after (on held-out folds, so it is not flattered)
        self.calibrated_ = False
        self.ece_raw_ = float("nan")
        self.ece_calibrated_ = float("nan")

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
        labels = np.asarray(reference_labels)
        if labels.ndim != 1:
            raise ValueError(f"reference_labels must be 1-D, got shape {labels.shape}")
        probabilities = check_probabilities(
            reference_probabilities,
            name="reference_probabilities",
            n_classes=len(classes) if classes is not None else None,
        )
        if len(labels) != len(probabilities):
            raise ValueError(
                f"{len(labels)} reference_labels for {len(probabilities)} rows of "
                "reference_probabilities; they must match"
            )
        names = np.asarray(classes) if classes is not None else np.unique(labels)
        if len(names) != probabilities.shape[1]:
            raise ValueError(
                f"reference_labels hold {len(names)} classes but reference_probabilities has "
                f"{probabilities.shape[1]} columns; pass classes= to name the columns"
            )
        index = {name: k for k, name in enumerate(names.tolist())}
        unknown = set(labels.tolist()) - set(index)
        if unknown:
            raise ValueError(
                f"reference_labels hold classes {sorted(map(str, unknown))} "
                f"that are not among classes {names.tolist()}"
            )
        label_index = np.array([index[v] for v in labels.tolist()], dtype=np.int64)
        missing = [names[k] for k in range(len(names)) if not np.any(label_index == k)]
        if missing:
            raise ValueError(f"reference_labels hold no example of class(es) {missing}")

        self.ece_raw_, self.ece_calibrated_ = self._cross_validated_ece(probabilities, label_index)
        if self.calibrate == "auto":
            self.calibrated_ = self.ece_calibrated_ < self.ece_raw_
        else:
            self.calibrated_ = self.calibrate == "always"
        self._calibrators = _fit_calibrators(probabilities, label_index) if self.calibrated_ else []
        self._bootstrap = []
        if self.calibrated_:
            rng = np.random.default_rng(self.seed)
            for _ in range(self.n_bootstrap):
                rows = rng.integers(0, len(label_index), size=len(label_index))
                self._bootstrap.append(_fit_calibrators(probabilities[rows], label_index[rows]))
        self.classes_ = names
        return self

    def _cross_validated_ece(
        self, probabilities: np.ndarray, labels: np.ndarray
    ) -> tuple[float, float]:
        """Expected calibration error before and after calibration, on held-out folds.

        Isotonic regression scored on its own training rows is calibrated by construction, so
        each fold is calibrated by the other folds. Both errors are taken fold by fold and
        averaged: pooled out-of-fold probabilities would let a bin's labels leak into the
        calibration of the same bin's rows from other folds, flattering the calibrated side.
        """
        n_splits = min(5, len(labels))
        if n_splits < 2:
            return float("nan"), float("nan")
        raw, calibrated = [], []
        folds = KFold(n_splits=n_splits, shuffle=True, random_state=self.seed)
        for train, test in folds.split(probabilities):
            calibrators = _fit_calibrators(probabilities[train], labels[train])
            held_out = _apply_calibrators(calibrators, probabilities[test])
            raw.append(
                expected_calibration_error(probabilities[test], labels[test], n_bins=self.n_bins)
            )
            calibrated.append(
                expected_calibration_error(held_out, labels[test], n_bins=self.n_bins)
            )
        return float(np.mean(raw)), float(np.mean(calibrated))

    def _checked(self, probabilities: Any) -> np.ndarray:
        if self._calibrators is None:
            raise RuntimeError("call fit(reference_probabilities, reference_labels) first")
        return check_probabilities(
            probabilities, name="current_probabilities", n_classes=len(self.classes_)
        )

    def calibrated_probabilities(self, probabilities: Any) -> np.ndarray:
        """The (rows, classes) probabilities after the calibration learnt in ``fit``."""
        array = self._checked(probabilities)
        if self.calibrated_ and self._calibrators:
            return _apply_calibrators(self._calibrators, array)
        return array

    def estimate(self, current_probabilities: Any) -> PerformanceEstimate:
        """Expected metrics of an unlabelled window, each with its Monte Carlo band."""
        raw = self._checked(current_probabilities)
        calibrated = self.calibrated_probabilities(raw)
        n, n_classes = calibrated.shape
        # a fresh generator per call: the same window and seed always give the same band
        generator = torch.Generator(device=self._device).manual_seed(self.seed)
        scores = torch.as_tensor(np.ascontiguousarray(raw), device=self._device)
        q = torch.as_tensor(np.ascontiguousarray(calibrated), device=self._device)
        if n_classes == 2:
            predicted = (scores[:, 1] >= self.threshold).to(torch.int64)
            # F1 and ROC AUC of the positive class only
            score_classes: Sequence[int] = [1]
        else:
            predicted = torch.argmax(scores, dim=1)
            score_classes = range(n_classes)
        # sorting is the costly part of ROC AUC: once per class, shared by all label sets
        rankings = (
            [_ranking(scores[:, k]) for k in score_classes] if "roc_auc" in self.metrics else []
        )
        expected = _metric_values(
            [q[:, k][None, :] for k in range(n_classes)],
            predicted,
            score_classes,
            rankings,
            self.metrics,
        )
        drawn = torch.cat(
            [
                self._drawn_metrics(p, count, predicted, score_classes, rankings, generator)
                for p, count in self._label_sources(raw, q)
            ],
            dim=1,
        )
        tail = (1.0 - self.confidence) / 2
        bounds = torch.nanquantile(
            drawn, torch.tensor([tail, 1.0 - tail], dtype=drawn.dtype, device=drawn.device), dim=1
        )
        return PerformanceEstimate(
            method=self.method,
            metrics=self.metrics,
            value=torch.cat(expected).cpu().numpy(),
            lower=bounds[0].cpu().numpy(),
            upper=bounds[1].cpu().numpy(),
            n=n,
            confidence=self.confidence,
        )

    def _label_sources(
        self, raw: np.ndarray, q: torch.Tensor
    ) -> Iterator[tuple[torch.Tensor, int]]:
        """The calibrated probabilities to draw label sets from, and how many sets from each.

        The sets are spread evenly over the bootstrap calibrations, or all come from the one
        calibration (``q``) without any. Made one at a time to hold one copy of the window.
        """
        sources = self._bootstrap[: self.n_samples]
        if not sources:
            yield q, self.n_samples
            return
        for b, calibrators in enumerate(sources):
            p = torch.as_tensor(_apply_calibrators(calibrators, raw), device=self._device)
            yield p, len(range(b, self.n_samples, len(sources)))

    def _drawn_metrics(
        self,
        q: torch.Tensor,
        n_samples: int,
        predicted: torch.Tensor,
        score_classes: Sequence[int],
        rankings: Sequence[_Ranking],
        generator: torch.Generator,
    ) -> torch.Tensor:
        """(metrics, n_samples) realized metrics of label sets drawn from ``q``."""
        n, n_classes = q.shape
        cumulative = torch.cumsum(q, dim=1)
        step = max(1, _MAX_DRAWN_VALUES // (n * n_classes))
        parts = [torch.empty(len(self.metrics), 0, dtype=q.dtype, device=q.device)]
        for start in range(0, n_samples, step):
            size = min(step, n_samples - start)
            uniform = torch.rand(size, n, dtype=q.dtype, device=q.device, generator=generator)
            # inverse CDF: the label is the number of cumulative probabilities at or below u
            labels = torch.searchsorted(cumulative, uniform.T.contiguous(), right=True).T
            labels = labels.clamp(max=n_classes - 1)
            members = [(labels == k).to(q.dtype) for k in range(n_classes)]
            values = _metric_values(members, predicted, score_classes, rankings, self.metrics)
            parts.append(torch.stack(values))
        return torch.cat(parts, dim=1)
