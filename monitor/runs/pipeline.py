"""The detection pipeline: a window of current telemetry against the fitted reference.

References are fitted once per (reference content, monitor configuration) and kept in a small
LRU cache, so a scheduler running every minute does not re-sort the reference each time. All
features of a model, prediction drift included, are corrected for multiple testing together.
"""

from __future__ import annotations

import os
import socket
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
from sqlalchemy.orm import Session

from detectors import DriftResult
from detectors import registry as detector_registry
from detectors.effects import EffectReference
from detectors.joint import BlockTest, marginal_family_size
from detectors.quality import DataQuality
from detectors.streaming import StreamingDriftDetector
from detectors.verdict import family_size, window_verdict
from monitor.data.arrays import Columns, table_columns
from monitor.data.layout import from_bytes
from monitor.db.models import RegisteredModel
from monitor.db.references import get_reference
from monitor.db.tables import (
    DetectionResult,
    DetectionRun,
    PerformanceResult,
    QualityResult,
    ReferenceSet,
    WindowStat,
)
from monitor.db.telemetry import load_window
from monitor.runs.estimation import estimate_performance
from monitor.runs.joint_stage import fit_joint, joint_columns, score_joint, stage_message
from monitor.runs.performance import score_performance
from monitor.runs.quality import fit_quality, score_quality
from monitor.runs.window_stats import window_stats
from monitor.spec.model import MonitorConfig, PerformanceSpec
from monitor.vocabulary import RunStatus

_KINDS = ("numeric", "categorical", "vector")


@dataclass
class FittedReference:
    """Detectors fitted on one reference, one per column kind that has columns."""

    n_rows: int
    detectors: dict[str, Any]  # kind -> fitted detector
    names: dict[str, list[str]]  # kind -> column names in detector order
    effects: EffectReference  # the reference side of each tested column's effect size
    quality: DataQuality | None = None
    joint: BlockTest | None = None  # the joint stage over the numeric block (joint_stage.py)


def _select(columns: Columns, monitor: MonitorConfig) -> dict[str, dict[str, np.ndarray]]:
    wanted = set(monitor.features) if monitor.features else None
    groups = {
        "numeric": columns.numeric,
        "categorical": columns.categorical,
        "vector": columns.vector,
    }
    return {
        kind: {n: v for n, v in group.items() if wanted is None or n in wanted}
        for kind, group in groups.items()
    }


def _stack(kind: str, values: dict[str, np.ndarray]) -> Any:
    if kind == "vector":
        return list(values.values())
    return np.stack(list(values.values()), axis=1)


def fit_reference(
    table: pa.Table, registered: RegisteredModel, monitor: MonitorConfig, device: str
) -> FittedReference:
    columns = table_columns(table, registered.spec)
    groups = _select(columns, monitor)
    detectors: dict[str, Any] = {}
    names: dict[str, list[str]] = {}
    tested = [kind for kind in _KINDS if groups[kind] and kind in monitor.tested_kinds()]
    block = joint_columns(monitor, groups["numeric"])
    # every tested feature is one test of the family corrected in _drift_step(): permutation
    # tests draw enough permutations for their smallest p-value to pass that correction (the
    # joint stage's weight leaves them 1 - share of it)
    n_marginal = sum(len(groups[kind]) for kind in tested)
    family = family_size(n_marginal, monitor.correction)
    if block and monitor.joint is not None and monitor.correction != "none":
        family = marginal_family_size(n_marginal, monitor.joint.share)
    for kind in tested:
        choice = monitor.detector(kind)
        # correction is applied once across every kind together, in _drift_step()
        detector = detector_registry.build(
            choice.name, choice.params, device=device, alpha=monitor.alpha, family_size=family
        )
        names[kind] = list(groups[kind])
        detectors[kind] = detector.fit(_stack(kind, groups[kind]), names[kind])
    quality = fit_quality(columns, registered.spec, device) if monitor.quality else None
    joint = fit_joint(monitor, groups["numeric"], block, device) if block else None
    cols = _tested(groups, names)
    effects = EffectReference.fit(
        numeric=cols["numeric"], categorical=cols["categorical"], vector=cols["vector"]
    )
    return FittedReference(
        n_rows=table.num_rows,
        detectors=detectors,
        names=names,
        quality=quality,
        effects=effects,
        joint=joint,
    )


def _tested(
    groups: dict[str, dict[str, np.ndarray]], names: dict[str, list[str]]
) -> dict[str, dict[str, np.ndarray]]:
    """The columns a detector tests, by kind: those that get an effect size."""
    return {kind: {n: groups[kind][n] for n in names.get(kind, ())} for kind in _KINDS}


class ReferenceCache:
    """Thread-safe LRU of fitted references."""

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self._items: OrderedDict[tuple[Any, ...], FittedReference] = OrderedDict()
        self._lock = threading.Lock()
        self.fits = 0  # how many times a reference was fitted (tests check the cache with it)

    def get(
        self,
        key: tuple[Any, ...],
        load: Any,
    ) -> FittedReference:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        fitted = load()
        with self._lock:
            self.fits += 1
            self._items[key] = fitted
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return fitted


def _finish(
    session: Session,
    run: DetectionRun,
    status: RunStatus,
    message: str,
    rows: Sequence[Any] = (),
) -> DetectionRun:
    """Write the run and its result rows: the first write of the window's transaction.

    Everything before is reads and computing. On SQLite the first write takes the database's
    write lock until the commit, so writing last keeps ingest from waiting behind a detection
    run's computation (it waited seconds when the run was inserted first).
    """
    run.status, run.message = status, message
    run.finished_at = datetime.now(UTC)
    session.add(run)
    session.flush()  # gives the run its id for the result rows
    for row in rows:
        row.run_id = run.id
    session.add_all(rows)
    session.flush()
    return run


def new_run(
    registered: RegisteredModel,
    monitor: MonitorConfig,
    *,
    trigger: str = "manual",
    window_key: str | None = None,
) -> DetectionRun:
    return DetectionRun(
        model_version_id=registered.version.id,
        monitor=monitor.name,
        status="running",
        started_at=datetime.now(UTC),
        correction=monitor.correction,
        alpha=monitor.alpha,
        trigger=trigger,
        window_key=window_key,
        runner=f"{socket.gethostname()}:{os.getpid()}",
    )


def run_monitor(
    session: Session,
    registered: RegisteredModel,
    monitor: MonitorConfig,
    cache: ReferenceCache,
    *,
    device: str = "auto",
    now: datetime | None = None,
) -> DetectionRun:
    """Run one monitor's sliding window now, store the run and its results, and return it."""
    run = new_run(registered, monitor)
    current = load_window(session, registered, monitor.window, now=now)
    evaluate(session, registered, monitor, cache, run, current, device=device)
    session.commit()
    return run


def evaluate(
    session: Session,
    registered: RegisteredModel,
    monitor: MonitorConfig,
    cache: ReferenceCache,
    run: DetectionRun,
    current: pa.Table | None,
    *,
    device: str = "auto",
    stream: StreamingDriftDetector | None = None,
    span: tuple[datetime, datetime] | None = None,
) -> DetectionRun:
    """Compare ``current`` with the reference, store the run's results (flushed, not committed).

    Drift and data quality need the reference and ``min_samples`` records; realized performance
    needs ``min_labels`` labelled records and no reference. ``stream`` (a streaming detector)
    is fed the errors of the labelled records, in order, and left updated for the caller to
    save. ``span`` sets the run's window edges (tumbling windows); else the records' own.
    """
    n_current = 0 if current is None else current.num_rows
    run.n_current = n_current
    if span is not None:
        run.window_start, run.window_end = span
    elif current is not None and n_current:
        ts = current.column("ts")
        run.window_start, run.window_end = ts[0].as_py(), ts[-1].as_py()
    rows: list[Any] = []  # result rows, written with the run at the end (see _finish)
    statuses: list[RunStatus] = []
    messages: list[str] = []
    if monitor.tested_kinds() or monitor.quality:
        reference = get_reference(session, registered)
        if reference is None:
            statuses.append(RunStatus.NO_REFERENCE)
            messages.append("no reference uploaded for this version")
        else:
            run.n_reference = reference.n_rows
            if current is None or n_current < monitor.min_samples:
                statuses.append(RunStatus.INSUFFICIENT_DATA)
                messages.append(f"{n_current} records in the window, {monitor.min_samples} needed")
            else:
                status, message = _drift_step(
                    registered, monitor, cache, run, current, reference, device, rows
                )
                statuses.append(status)
                messages.append(message)
    if current is not None and n_current:
        for name, value in window_stats(current, registered.spec).items():
            rows.append(WindowStat(name=name, value=value))
    if monitor.performance is not None:
        status, message = _performance_step(
            session, registered, monitor.performance, run, current, stream, device, rows
        )
        statuses.append(status)
        messages.append(message)
    if not statuses:
        statuses, messages = [RunStatus.INSUFFICIENT_DATA], ["this monitor checks nothing"]
    worst = max(statuses, key=lambda s: s.severity)
    return _finish(session, run, worst, "; ".join(messages), rows)


def _drift_step(
    registered: RegisteredModel,
    monitor: MonitorConfig,
    cache: ReferenceCache,
    run: DetectionRun,
    current: pa.Table,
    reference: ReferenceSet,
    device: str,
    rows: list[Any],
) -> tuple[RunStatus, str]:
    key = (reference.id, reference.sha256, monitor.model_dump_json(), device)
    ref_data = reference.data
    fitted = cache.get(
        key, lambda: fit_reference(from_bytes(ref_data), registered, monitor, device)
    )
    current_columns = table_columns(current, registered.spec)
    groups = _select(current_columns, monitor)
    results: list[DriftResult] = [
        fitted.detectors[kind].score(_stack(kind, {n: groups[kind][n] for n in fitted.names[kind]}))
        for kind in _KINDS
        if kind in fitted.detectors
    ]
    # effect sizes in the features' own units, stored with each result ("*" gets none)
    cols = _tested(groups, fitted.names)
    effects = fitted.effects.compare(
        numeric=cols["numeric"], categorical=cols["categorical"], vector=cols["vector"]
    )
    joint = [score_joint(fitted.joint, groups["numeric"])] if fitted.joint is not None else []
    # one correction family over every kind and the joint stage (the calibration suite checks
    # this same verdict)
    verdict = window_verdict(
        results,
        alpha=monitor.alpha,
        correction=monitor.correction,
        joint=joint,
        share=monitor.joint.share if monitor.joint else 0.2,
    )
    p_value, p_adjusted, drift = verdict.p_value, verdict.p_adjusted, verdict.drift
    offset = 0
    for res in [*results, *joint]:
        for j, feature in enumerate(res.features):
            k = offset + j
            rows.append(
                DetectionResult(
                    feature=feature,
                    method=res.method,
                    statistic=_num(res.statistic[j]),
                    p_value=_num(p_value[k]),
                    p_adjusted=_num(p_adjusted[k]),
                    drift=bool(drift[k]),
                    n_reference=int(res.n_reference[j]),
                    n_current=int(res.n_current[j]),
                    effect=effects.get(feature),
                )
            )
        offset += len(res.features)
    statistic = np.concatenate([r.statistic for r in results]) if results else np.zeros(0)
    drift_features = drift[: len(statistic)]
    problems = 0
    if fitted.quality is not None:
        for row in score_quality(fitted.quality, current_columns, registered.spec):
            problems += int(row.problem)
            rows.append(QualityResult(**row.__dict__))
    tested = int((~np.isnan(statistic)).sum())
    drifted = int(drift_features.sum())
    run.drifted_share = drifted / tested if tested else None
    if verdict.stages == ("joint",) and (monitor.drift_share == 0.0):
        # the features moved together, none enough on its own: the window drifted all the same
        status = RunStatus.DRIFT
    elif drifted and (run.drifted_share or 0.0) >= monitor.drift_share:
        status = RunStatus.DRIFT
    elif drifted or problems or verdict.stages:
        status = RunStatus.WARNING
    else:
        status = RunStatus.OK
    message = (
        f"{drifted} of {tested} features drifted ({monitor.correction}, alpha={monitor.alpha})"
    )
    if fitted.joint is not None:
        message += stage_message(verdict, len(fitted.joint.features_), fitted.joint.method)
    if fitted.quality is not None:
        message += f"; {problems} data-quality problem{'s' * (problems != 1)}"
    return status, message


def _performance_step(
    session: Session,
    registered: RegisteredModel,
    spec: PerformanceSpec,
    run: DetectionRun,
    current: pa.Table | None,
    stream: StreamingDriftDetector | None,
    device: str,
    rows: list[Any],
) -> tuple[RunStatus, str]:
    if current is None or current.num_rows == 0:
        return RunStatus.INSUFFICIENT_DATA, "no labelled records"
    outcome = score_performance(session, registered, spec, current, stream, device)
    metrics = list(outcome.rows)
    estimated = ""
    if spec.estimate and run.window_start is not None:
        estimates, estimated = estimate_performance(
            session, registered, spec, current, run.window_start, device
        )
        metrics += estimates
    rows += [PerformanceResult(**metric.__dict__) for metric in metrics]
    if outcome.n_labels < spec.min_labels:
        message = f"{outcome.n_labels} labelled records, {spec.min_labels} needed for metrics"
        status = RunStatus.INSUFFICIENT_DATA
    else:
        message = f"performance on {outcome.n_labels} labels"
        status = RunStatus.OK
        if outcome.breached:
            message += f": {', '.join(outcome.breached)}"
            status = RunStatus.DRIFT
    if outcome.stream_drifts:
        message += (
            f"; concept drift detected {outcome.stream_drifts}x by {stream and stream.method}"
        )
        status = RunStatus.DRIFT
    elif outcome.stream_warning and status != RunStatus.DRIFT:
        message += f"; {stream and stream.method} warning"
        status = RunStatus.WARNING
    if estimated:
        message += f"; {estimated}"
    return status, message


def _num(value: float) -> float | None:
    value = float(value)
    return None if np.isnan(value) else value
