"""Realized performance of a window: its records joined with their delayed labels by id.

Labels arrive hours or days after the predictions; they are stored by record id and joined
here, when the window of *prediction* time is computed. The errors of the labelled records
(0/1 for a classifier, the absolute error for a regressor) also feed the monitor's streaming
concept-drift detector, in prediction-time order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from sqlalchemy import select
from sqlalchemy.orm import Session

from detectors.performance.classification import classification_metrics
from detectors.performance.regression import regression_metrics
from detectors.streaming import StreamingDriftDetector
from monitor.db.models import RegisteredModel
from monitor.db.tables import Label
from monitor.spec.model import PERFORMANCE_METRICS, PerformanceSpec, performance_metrics
from monitor.vocabulary import ResultKey

_ID_CHUNK = 900


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
    breached: list[str]  # metrics worse than their threshold, in words (breach_text)
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


def rows_summing_to_one(rows: list[list[float]]) -> np.ndarray:
    """Stored probabilities as float64 rows summing to one (they are stored as float32, and
    often rounded by the sender)."""
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
            "proba": rows_summing_to_one([proba[i] for i in rows])
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


def breach_text(name: str, value: float, threshold: float, higher_is_better: bool) -> str:
    """``accuracy 0.713 below 0.85``: which way the metric crossed, three significant digits."""
    side = "below" if higher_is_better else "above"
    return f"{name} {value:.3g} {side} {threshold:.3g}"


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
        if problem and value is not None and threshold is not None:
            breached.append(breach_text(name, value, threshold, higher_is_better[name]))
        metric_rows.append(MetricRow(name, value, threshold, problem, n))
    if stream is not None:
        metric_rows.append(
            MetricRow(
                str(ResultKey.stream(stream.method, "drifts")), float(drifts), None, drifts > 0, n
            )
        )
    return PerformanceOutcome(metric_rows, n, breached, drifts, warning)
