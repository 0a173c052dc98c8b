"""Label-free estimates of a window's accuracy, F1 and ROC AUC, by the estimator that suits the
model.

The labelled records predicted before the window are the reference: their probabilities,
true labels, the model's own predicted labels (which give a binary model's cut when the spec
does not declare it) and numeric input features. A backtest on them (each of the last few
runs of records estimated from the ones before it, see :mod:`detectors.performance.backtest`)
chooses between CBPE and the importance-weighted CBPE; the choice and its backtest error are
stored per model version (``estimator_choices``) for the status to show.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pyarrow as pa
from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from detectors.performance.backtest import Backtest, backtest, fit_estimate
from detectors.performance.decision import decision_threshold
from monitor.data.layout import from_bytes
from monitor.db.models import RegisteredModel
from monitor.db.tables import EstimatorChoice, Label, TelemetryBatch, TelemetryRecord
from monitor.runs.performance import MetricRow, rows_summing_to_one
from monitor.spec.model import PerformanceSpec
from monitor.vocabulary import ResultKey

ESTIMATED_METRICS = ("accuracy", "f1", "roc_auc")
# past windows a backtest compares the estimators on, at most
BACKTEST_WINDOWS = 5


@dataclass(frozen=True)
class Calibration:
    """Labelled records predicted before a window, oldest first: what the estimators learn
    from."""

    probabilities: np.ndarray  # (rows, classes), rows summing to one
    truth: np.ndarray  # true labels (class names)
    predicted: np.ndarray  # the model's own predicted labels (class names, None if absent)
    features: np.ndarray | None  # (rows, numeric features), None without numeric features


def numeric_features(registered: RegisteredModel) -> list[str]:
    return [f.name for f in registered.spec.features if f.kind == "numeric"]


def _matrix(rows: list[list[float | None]], width: int) -> np.ndarray:
    """(rows, width) float64, missing values as NaN."""
    values = [[np.nan if v is None else v for v in row] for row in rows]
    return np.array(values, dtype=np.float64).reshape(len(rows), width)


def load_calibration(
    session: Session, registered: RegisteredModel, before: datetime, limit: int
) -> Calibration:
    """The newest ``limit`` labelled records predicted before ``before``, oldest first."""
    rows = session.execute(
        select(TelemetryRecord.record_id, TelemetryRecord.batch_id, TelemetryRecord.ts, Label.label)
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
    wanted: dict[int, dict[str, tuple[str, datetime]]] = {}
    for record_id, batch_id, ts, label in rows:
        wanted.setdefault(batch_id, {})[record_id] = (str(label), ts)
    names = numeric_features(registered)
    found: list[tuple[datetime, str, list[float], str | None, list[float | None]]] = []
    for batch_id, labels in wanted.items():
        blob = session.scalar(select(TelemetryBatch.data).where(TelemetryBatch.id == batch_id))
        if blob is None:
            continue
        batch = from_bytes(blob)
        values = [batch.column(f"f.{name}").to_pylist() for name in names]
        for i, (rid, proba, label) in enumerate(
            zip(
                batch.column("id").to_pylist(),
                batch.column("p.proba").to_pylist(),
                batch.column("p.label").to_pylist(),
                strict=True,
            )
        ):
            if rid in labels and proba is not None:
                truth, ts = labels[rid]
                found.append((ts, truth, proba, label, [v[i] for v in values]))
    found.sort(key=lambda row: row[0])
    features = _matrix([r[4] for r in found], len(names))
    return Calibration(
        rows_summing_to_one([r[2] for r in found]) if found else np.zeros((0, 0)),
        np.asarray([r[1] for r in found], dtype=object),
        np.asarray([r[3] for r in found], dtype=object),
        features if names and found else None,
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


def _filled(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Missing feature values filled with the reference column's mean; columns the reference
    never saw are dropped. None when no column is left."""
    seen = ~np.all(np.isnan(reference), axis=0)
    if not seen.any():
        return None
    reference, current = reference[:, seen], current[:, seen]
    means = np.nanmean(reference, axis=0)
    fill = lambda a: np.where(np.isnan(a), means, a)  # noqa: E731 (twice, same means)
    return fill(reference), fill(current)


def save_choice(session: Session, registered: RegisteredModel, result: Backtest) -> None:
    row = session.get(EstimatorChoice, registered.version.id)
    if row is None:
        row = EstimatorChoice(model_version_id=registered.version.id)
        session.add(row)
    row.estimator = result.chosen
    row.backtest_error = result.error
    row.backtest_windows = result.windows
    row.reason = result.reason


def estimate_performance(
    session: Session,
    registered: RegisteredModel,
    spec: PerformanceSpec,
    table: pa.Table,
    before: datetime,
    device: str,
) -> tuple[list[MetricRow], str]:
    """Estimates of the window's accuracy, F1 and ROC AUC from its probabilities (and numeric
    inputs) alone, by the estimator the backtest chose; the choice is saved."""
    del device  # the estimators compute in numpy on the CPU
    classes = registered.spec.output.classes
    calibration = load_calibration(session, registered, before, spec.calibration_rows)
    truth = calibration.truth
    has_proba = np.asarray(table.column("p.proba").is_valid())
    missing = sorted(set(classes) - set(truth.tolist()))
    if len(truth) < spec.min_labels or missing or not has_proba.any():
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
    current = rows_summing_to_one(table.column("p.proba").filter(has_proba).to_pylist())
    features = None
    if calibration.features is not None:
        window = np.column_stack(
            [
                # float64 columns: a missing value reads back as NaN
                np.asarray(table.column(f"f.{n}").filter(has_proba).to_numpy(), dtype=np.float64)
                for n in numeric_features(registered)
            ]
        )
        features = _filled(calibration.features, window)
    result = backtest(
        calibration.probabilities,
        truth,
        None if features is None else features[0],
        classes,
        window_rows=max(spec.min_labels, min(len(current), len(truth) // (BACKTEST_WINDOWS + 1))),
        min_reference=max(spec.min_labels, len(truth) // (BACKTEST_WINDOWS + 1)),
        max_windows=BACKTEST_WINDOWS,
        threshold=threshold,
    )
    save_choice(session, registered, result)
    estimate = fit_estimate(
        result.chosen,
        (calibration.probabilities, truth, None if features is None else features[0]),
        (current, None if features is None else features[1]),
        classes,
        threshold=threshold,
        metrics=ESTIMATED_METRICS,
    )
    rows = [
        MetricRow(str(ResultKey.estimated(m)), float(estimate[m].value), None, False, len(truth))
        for m in ESTIMATED_METRICS
    ]
    how = result.chosen + (
        f", backtest accuracy error {result.error:.3f} over {result.windows} windows"
        if result.error is not None
        else ": too little labelled history for a backtest"
    )
    return rows, f"estimated on {len(truth)} earlier labels ({how})"
