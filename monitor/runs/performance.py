"""Realized performance of a window: its records joined with their delayed labels by id.

Labels arrive hours or days after the predictions; they are stored by record id and joined
here, when the window of *prediction* time is computed. The errors of the labelled records
(0/1 for a classifier, the absolute error for a regressor) also feed the monitor's streaming
concept-drift detector, in prediction-time order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from detectors.performance.cbpe import CBPE
from detectors.performance.classification import classification_metrics
from detectors.performance.decision import decision_threshold
from detectors.performance.regression import regression_metrics
from detectors.streaming import StreamingDriftDetector
from monitor.data.layout import from_bytes
from monitor.db.models import RegisteredModel
from monitor.db.tables import Label, TelemetryBatch, TelemetryRecord
from monitor.spec.model import PERFORMANCE_METRICS, PerformanceSpec, performance_metrics
from monitor.vocabulary import ResultKey

_ID_CHUNK = 900
CBPE_METRICS = ("accuracy", "f1", "roc_auc")


@dataclass(frozen=True)
class MetricRow:
    metric: str
    value: float | None
    threshold: float | None
    problem: bool
    n_labels: int


@dataclass(frozen=True)
class PerformanceOutcome:
    rows: list[MetricRow]
    n_labels: int
    breached: list[str]  # metrics worse than their threshold
    stream_drifts: int  # drifts the streaming detector saw in this window
    stream_warning: bool


def load_labels(
    session: Session, model_id: int, ids: list[str]
) -> dict[str, tuple[str | None, float | None]]:
    """Labels of the given record ids (those that have one)."""
    found: dict[str, tuple[str | None, float | None]] = {}
    for i in range(0, len(ids), _ID_CHUNK):
        rows = session.execute(
            select(Label.record_id, Label.label, Label.value).where(
                Label.model_id == model_id, Label.record_id.in_(ids[i : i + _ID_CHUNK])
            )
        )
        found.update({rid: (label, value) for rid, label, value in rows})
    return found


def _rows_summing_to_one(rows: list[list[float]]) -> np.ndarray:
    # stored as float32 (and often rounded by the sender): renormalise in float64
    matrix = np.asarray(rows, dtype=np.float64)
    return matrix / matrix.sum(axis=1, keepdims=True)


def _labelled(
    table: pa.Table,
    labels: dict[str, tuple[str | None, float | None]],
    task: str,
    classes: list[str],
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Row positions (in ts order) that carry a usable label, and the arrays they need.

    A classification label outside the declared classes is not usable (it is stored, but
    cannot be compared with a prediction among the classes).
    """
    ids = table.column("id").to_pylist()
    if task == "classification":
        known = set(classes)
        truth = [labels.get(rid, (None, None))[0] for rid in ids]
        keep = np.array([t in known for t in truth], dtype=bool)
        rows = np.flatnonzero(keep)
        predicted = table.column("p.label").to_pylist()
        proba = table.column("p.proba").to_pylist()
        return rows, {
            "truth": np.array([truth[i] for i in rows], dtype=object),
            "predicted": np.array([predicted[i] for i in rows], dtype=object),
            "proba": _rows_summing_to_one([proba[i] for i in rows])
            if len(rows) and all(proba[i] is not None for i in rows)
            else np.zeros((0, 0)),
        }
    values = [labels.get(rid, (None, None))[1] for rid in ids]
    keep = np.array([v is not None for v in values], dtype=bool)
    rows = np.flatnonzero(keep)
    predicted_values = table.column("p.value").to_numpy(zero_copy_only=False)
    return rows, {
        "truth": np.array([values[i] for i in rows], dtype=np.float64),
        "predicted": np.asarray(predicted_values[rows], dtype=np.float64),
    }


def _metric_values(
    arrays: dict[str, np.ndarray], registered: RegisteredModel, device: str, min_labels: int
) -> tuple[dict[str, float | None], np.ndarray]:
    task = registered.spec.output.task
    result: Any
    if task == "classification":
        classes = registered.spec.output.classes
        known = np.isin(arrays["truth"], classes) & np.isin(arrays["predicted"], classes)
        errors = (arrays["truth"] != arrays["predicted"]).astype(np.float64)
        if int(known.sum()) < min_labels:
            # labels outside the declared classes do not count; too few left for metrics
            return dict.fromkeys(PERFORMANCE_METRICS[task]), errors
        proba = arrays["proba"]
        result = classification_metrics(
            arrays["truth"][known],
            arrays["predicted"][known],
            probabilities=proba[known] if proba.shape[0] else None,
            classes=classes,
            device=device,
        )
    else:
        result = regression_metrics(arrays["truth"], arrays["predicted"], device=device)
        errors = np.abs(arrays["truth"] - arrays["predicted"])
    values = {
        name: (None if getattr(result, name) is None else float(getattr(result, name)))
        for name in PERFORMANCE_METRICS[task]
    }
    return values, errors


@dataclass(frozen=True)
class Calibration:
    """Labelled records predicted before a window: what CBPE learns its calibration from."""

    probabilities: np.ndarray  # (rows, classes), rows summing to one
    truth: np.ndarray  # true labels (class names)
    predicted: np.ndarray  # the model's own predicted labels (class names, None if absent)


def _calibration(
    session: Session, registered: RegisteredModel, before: datetime, limit: int
) -> Calibration:
    """Probabilities, true and predicted labels of the newest labelled records predicted
    before ``before``."""
    rows = session.execute(
        select(TelemetryRecord.record_id, TelemetryRecord.batch_id, Label.label)
        .join(
            Label,
            and_(
                Label.model_id == TelemetryRecord.model_id,
                Label.record_id == TelemetryRecord.record_id,
            ),
        )
        .join(TelemetryBatch, TelemetryBatch.id == TelemetryRecord.batch_id)
        .where(
            TelemetryRecord.model_id == registered.model.id,
            TelemetryBatch.model_version_id == registered.version.id,
            TelemetryRecord.ts < before,
            Label.label.is_not(None),
        )
        .order_by(TelemetryRecord.ts.desc())
        .limit(limit)
    ).all()
    wanted: dict[int, dict[str, str]] = {}
    for record_id, batch_id, label in rows:
        wanted.setdefault(batch_id, {})[record_id] = str(label)
    probabilities: list[list[float]] = []
    truth: list[str] = []
    predicted: list[str | None] = []
    for batch_id, labels in wanted.items():
        blob = session.scalar(select(TelemetryBatch.data).where(TelemetryBatch.id == batch_id))
        if blob is None:
            continue
        batch = from_bytes(blob)
        for rid, proba, label in zip(
            batch.column("id").to_pylist(),
            batch.column("p.proba").to_pylist(),
            batch.column("p.label").to_pylist(),
            strict=True,
        ):
            if rid in labels and proba is not None:
                probabilities.append(proba)
                truth.append(labels[rid])
                predicted.append(label)
    return Calibration(
        _rows_summing_to_one(probabilities) if probabilities else np.zeros((0, 0)),
        np.asarray(truth, dtype=object),
        np.asarray(predicted, dtype=object),
    )


def model_threshold(registered: RegisteredModel, calibration: Calibration) -> float:
    """The binary model's cut on ``classes[1]``'s probability: declared in the spec, or read
    from the labelled records' predicted labels (ValueError when no cut explains them)."""
    declared = registered.spec.output.threshold
    if declared is not None:
        return declared
    known = np.isin(calibration.predicted, registered.spec.output.classes)
    if not known.any():
        # no predicted labels stored: the rule of the largest probability
        return 0.5
    positive = calibration.predicted[known] == registered.spec.output.classes[1]
    return decision_threshold(calibration.probabilities[known, 1], positive)


def estimate_performance(
    session: Session,
    registered: RegisteredModel,
    spec: PerformanceSpec,
    table: pa.Table,
    before: datetime,
    device: str,
) -> tuple[list[MetricRow], str]:
    """CBPE estimates of the window's accuracy, F1 and ROC AUC from its probabilities alone."""
    classes = registered.spec.output.classes
    calibration = _calibration(session, registered, before, spec.calibration_rows)
    proba, truth = calibration.probabilities, calibration.truth
    current = table.column("p.proba").drop_null().to_pylist()
    missing = sorted(set(classes) - set(truth.tolist()))
    if len(truth) < spec.min_labels or missing or not current:
        why = f"{len(truth)} labelled records before the window" + (
            f", none of class {missing[0]!r}" if missing else ""
        )
        return [], f"no estimate ({why})"
    threshold = 0.5
    if len(classes) == 2:
        try:
            threshold = model_threshold(registered, calibration)
        except ValueError as exc:
            return [], f"no estimate ({exc})"
    cbpe = CBPE(metrics=CBPE_METRICS, threshold=threshold, device=device)
    estimate = cbpe.fit(proba, truth, classes=classes).estimate(_rows_summing_to_one(current))
    rows = [
        MetricRow(str(ResultKey.estimated(m)), float(estimate[m].value), None, False, len(truth))
        for m in CBPE_METRICS
    ]
    return rows, f"estimated on {len(truth)} earlier labels"


def score_performance(
    session: Session,
    registered: RegisteredModel,
    spec: PerformanceSpec,
    table: pa.Table,
    stream: StreamingDriftDetector | None,
    device: str,
) -> PerformanceOutcome:
    """Metrics of the window's labelled records; feeds ``stream`` their errors in order."""
    task = registered.spec.output.task
    labels = load_labels(session, registered.model.id, table.column("id").to_pylist())
    rows, arrays = _labelled(table, labels, task, registered.spec.output.classes)
    n = len(rows)
    metric_rows: list[MetricRow] = []
    breached: list[str] = []
    drifts, warning = 0, False
    if n == 0:
        return PerformanceOutcome([], 0, [], 0, False)
    values, errors = _metric_values(arrays, registered, device, spec.min_labels)
    if stream is not None:
        drifts = len(stream.update_many(errors))
        warning = bool(stream.warning_detected)
    higher_is_better = PERFORMANCE_METRICS[task]
    for name in performance_metrics(spec, task):
        value = values[name] if n >= spec.min_labels else None
        threshold = spec.thresholds.get(name)
        problem = (
            value is not None
            and threshold is not None
            and (value < threshold if higher_is_better[name] else value > threshold)
        )
        if problem:
            breached.append(name)
        metric_rows.append(MetricRow(name, value, threshold, problem, n))
    if stream is not None:
        metric_rows.append(
            MetricRow(
                str(ResultKey.stream(stream.method, "drifts")), float(drifts), None, drifts > 0, n
            )
        )
    return PerformanceOutcome(metric_rows, n, breached, drifts, warning)
