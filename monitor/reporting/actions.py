"""What to do next about a run: the commands, filled in, and which records to label first.

Three things a reader can do after a drift: make the window the new reference (after a
retraining on such data, or once the change is understood and accepted), acknowledge or
silence the model's firing alerts, and get labels for the records that say most about the
model on the new data.

Which records to label: the window's records that have no label yet, those in the *drifted
region* first, each group from the least certain prediction (smallest margin between the two
most probable classes) to the most certain. A record is in the drifted region when, for at
least one feature that drifted, its value lies where only a small part of the reference does:
a number outside the reference's 5th-95th percentiles, an embedding farther from the
reference's mean than 90% of the reference's rows, or a category (or predicted class) at least
``GAIN`` times as common in the window as in the reference (new ones included: merely commoner
would take in most records when another category vanishes). The ids are the stored record
ids, the ones ``POST /api/v1/models/{name}/labels`` takes.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pyarrow as pa
from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.data.arrays import Columns, table_columns
from monitor.data.layout import from_bytes
from monitor.db.models import RegisteredModel
from monitor.db.references import get_reference
from monitor.db.results import run_results
from monitor.db.tables import Alert, DetectionResult, DetectionRun
from monitor.reporting.plots import shares
from monitor.runs.performance import load_labels
from monitor.runs.windows import load_span, window_span
from monitor.spec.model import ModelSpec

SHOWN = 10  # candidates listed on the page; the CSV has up to its limit
DEFAULT_LIMIT = 100
GAIN = 2.0  # a category this many times as common as in the reference is in the drifted region
SILENCE_HOURS = 4
REGION_SENTENCE = (
    "Records in the drifted region come first: for a feature that drifted, the record's value "
    "lies where only a small part of the reference does (a number outside the reference's "
    "5th-95th percentiles, an embedding farther from the reference's mean than 90% of it, a "
    "category at least twice as common in this window as in the reference); within each group, "
    "the least "
    "certain predictions (smallest margin between the two most probable classes) come first. "
    "Records that already have a label are left out."
)


@dataclass(frozen=True)
class Candidate:
    record_id: str
    ts: datetime
    prediction: str | None
    top_probability: float | None
    margin: float | None  # top minus second probability; None without probabilities
    drifted_region: bool
    because: tuple[str, ...]  # the drifted features that put it in the region


@dataclass(frozen=True)
class AlertLine:
    id: int
    rule: str
    severity: str
    since: datetime
    acknowledged: bool
    silenced_until: datetime | None


def firing_alerts(session: Session, model_id: int) -> list[AlertLine]:
    rows = session.scalars(
        select(Alert).where(Alert.model_id == model_id, Alert.state == "firing").order_by(Alert.id)
    )
    return [
        AlertLine(
            a.id, a.rule, a.severity, a.started_at, a.acknowledged_at is not None, a.silenced_until
        )
        for a in rows
    ]


def promote_command(model: str, start: datetime, end: datetime) -> str:
    """>>> from datetime import UTC
    >>> promote_command("m", datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))
    'tidewatch reference promote m --from 2026-01-01T00:00:00+00:00 --to 2026-01-02T00:00:00+00:00'
    """
    return f"tidewatch reference promote {model} --from {start.isoformat()} --to {end.isoformat()}"


def ack_command(alert_id: int) -> str:
    return f"tidewatch alerts ack {alert_id}"


def silence_command(alert_id: int, hours: float = SILENCE_HOURS) -> str:
    return f"tidewatch alerts silence {alert_id} --hours {hours:g}"


def region_features(results: list[DetectionResult], columns: Columns) -> list[str]:
    """Drifted features that have one value per record (not the per-box columns of a detector's
    boxes, nor a multivariate test's "*")."""
    known = set(columns.numeric) | set(columns.categorical) | set(columns.vector)
    return [
        r.feature
        for r in results
        if r.drift and r.feature in known and not r.feature.startswith("prediction.box_")
    ]


def _outside(
    name: str, current: Columns, reference: Columns, n: int
) -> np.ndarray:  # one flag per record
    if name in current.numeric:
        values, ref = current.numeric[name][:n], reference.numeric[name]
        ref = ref[np.isfinite(ref)]
        if not ref.size:
            return np.zeros(n, dtype=bool)
        low, high = np.percentile(ref, [5, 95])
        with np.errstate(invalid="ignore"):
            return np.asarray((values < low) | (values > high), dtype=bool)
    if name in current.vector:
        matrix, ref = current.vector[name], reference.vector[name]
        ref = ref[np.isfinite(ref).all(axis=1)]
        if not len(ref):
            return np.zeros(n, dtype=bool)
        mean = ref.mean(axis=0)
        limit = np.percentile(np.linalg.norm(ref - mean, axis=1), 90)
        with np.errstate(invalid="ignore"):
            return np.asarray(np.linalg.norm(matrix - mean, axis=1) > limit, dtype=bool)
    values, ref_values = current.categorical[name][:n], reference.categorical[name]
    ref_share, cur_share = shares(ref_values), shares(values)
    gained = {c for c, s in cur_share.items() if s >= GAIN * ref_share.get(c, 0.0)}
    return np.array([v is not None and str(v) in gained for v in values], dtype=bool)


def margins(table: pa.Table, spec: ModelSpec) -> tuple[np.ndarray, np.ndarray]:
    """Top-class probability and margin (top minus second) per record; NaN without
    probabilities (other tasks, or a record sent without them). ``p.proba`` is in the layout's
    form (a fixed-size list, :func:`monitor.data.layout.arrow_schema`).

    >>> from monitor.spec.model import ModelSpec
    >>> spec = ModelSpec.model_validate({"name": "m", "features": [{"name": "x",
    ...     "kind": "numeric"}], "output": {"task": "classification", "classes": ["a", "b"]}})
    >>> proba = pa.array([[0.6, 0.4], None, [1.0, 3.0]], pa.list_(pa.float32(), 2))
    >>> top, margin = margins(pa.table({"p.proba": proba}), spec)
    >>> [round(v, 2) for v in top.tolist()], [round(v, 2) for v in margin.tolist()]
    ([0.6, nan, 0.75], [0.2, nan, 0.5])
    """
    n = table.num_rows
    top, margin = np.full(n, np.nan), np.full(n, np.nan)
    if spec.output.task != "classification" or "p.proba" not in table.schema.names or not n:
        return top, margin
    column = table.column("p.proba").combine_chunks()
    k = column.type.list_size
    # the child values of a fixed-size list, this slice's rows (null rows hold slots too)
    flat = np.asarray(column.values.to_numpy(zero_copy_only=False), dtype=np.float64)
    matrix = flat[column.offset * k : (column.offset + n) * k].reshape(n, k)
    valid = ~np.asarray(column.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    total = matrix.sum(axis=1)
    valid &= np.isfinite(total) & (total > 0)
    if not valid.any():
        return top, margin
    # stored as float32 and often rounded by the sender: renormalised, largest first
    ordered = -np.sort(-(matrix[valid] / total[valid, None]), axis=1)
    top[valid] = ordered[:, 0]
    margin[valid] = ordered[:, 0] - ordered[:, 1] if k > 1 else ordered[:, 0]
    return top, margin


def label_candidates(
    spec: ModelSpec,
    results: list[DetectionResult],
    current: pa.Table,
    reference: pa.Table | None,
    labelled: set[str],
    limit: int = DEFAULT_LIMIT,
) -> list[Candidate]:
    """Up to ``limit`` unlabelled records of ``current`` (in time order, as windows are read)
    in the order the module docstring gives; ties keep time order."""
    n = current.num_rows
    cur_cols = table_columns(current, spec)
    region = np.zeros(n, dtype=bool)
    because: list[list[str]] = [[] for _ in range(n)]
    if reference is not None and reference.num_rows:
        ref_cols = table_columns(reference, spec)
        for name in region_features(results, cur_cols):
            flags = _outside(name, cur_cols, ref_cols, n)
            region |= flags
            for i in np.flatnonzero(flags):
                because[i].append(name)
    top, margin = margins(current, spec)
    ids = current.column("id").to_pylist()
    ts = current.column("ts").to_pylist()
    predicted = (
        current.column("p.label").to_pylist() if "p.label" in current.schema.names else [None] * n
    )
    order = sorted(
        (i for i in range(n) if ids[i] not in labelled),
        key=lambda i: (not region[i], np.inf if np.isnan(margin[i]) else margin[i], i),
    )
    return [
        Candidate(
            record_id=ids[i],
            ts=ts[i],
            prediction=predicted[i],
            top_probability=None if np.isnan(top[i]) else float(top[i]),
            margin=None if np.isnan(margin[i]) else float(margin[i]),
            drifted_region=bool(region[i]),
            because=tuple(because[i]),
        )
        for i in order[:limit]
    ]


CSV_HEADER = (
    "record_id",
    "timestamp",
    "prediction",
    "top_probability",
    "margin",
    "drifted_region",
    "drifted_features",
)


def _decimal(value: float | None) -> str:
    # probabilities are stored as float32: 6 significant digits are all they hold
    return "" if value is None else f"{value:.6g}"


def candidates_csv(candidates: list[Candidate]) -> str:
    """The candidates as CSV, a header first; ids exactly as stored (a labelling tool posts
    them back)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for c in candidates:
        writer.writerow(
            [
                c.record_id,
                c.ts.isoformat(),
                "" if c.prediction is None else c.prediction,
                _decimal(c.top_probability),
                _decimal(c.margin),
                "yes" if c.drifted_region else "no",
                " ".join(c.because),
            ]
        )
    return out.getvalue()


def labelled_ids(session: Session, model_id: int, table: pa.Table) -> set[str]:
    """The ids of ``table``'s records that already have a label."""
    return set(load_labels(session, model_id, table.column("id").to_pylist()))


def load_label_candidates(
    session: Session,
    registered: RegisteredModel,
    run: DetectionRun,
    limit: int,
    sample_reference: Callable[[pa.Table], pa.Table],
) -> list[Candidate]:
    """The run's label candidates, read from storage: its window's records (none when they are
    no longer stored), its results, the version's reference (through ``sample_reference``,
    the report's own sampling, so the page and the CSV agree) and the labels already there."""
    start, end = window_span(run)
    current = load_span(session, registered, start, end)
    if current is None:
        return []
    row = get_reference(session, registered)
    reference = None if row is None else sample_reference(from_bytes(row.data))
    labelled = labelled_ids(session, registered.model.id, current)
    results = run_results(session, run.id)
    return label_candidates(registered.spec, results, current, reference, labelled, limit)
