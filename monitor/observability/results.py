"""Detection results as Prometheus gauges, read from the database when Prometheus scrapes.

A custom prometheus-client collector: nothing is kept in process memory between runs, so any
replica serves the same values (the database is the truth) and a restart loses nothing. One
read serves all scrapes for ``ttl`` seconds; a read is a handful of queries, whatever the
history's length: the monitors' states point at each monitor's latest run, and only those
runs' rows are read. Label values are model, version, monitor, feature, detector, check,
metric and class names: all bounded by the registered models, never record ids.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor.db.tables import (
    DetectionResult,
    DetectionRun,
    Model,
    ModelVersion,
    MonitorState,
    PerformanceResult,
    QualityResult,
    TelemetryBatch,
    WindowStat,
)
from monitor.observability.service import READ_ERRORS
from monitor.vocabulary import ModelStatus, ResultKey, ResultKind
from monitor.vocabulary import worst as worst_of

log = logging.getLogger("tidewatch.metrics")
# the order of the exposed series
STATUSES = (ModelStatus.OK, ModelStatus.WARNING, ModelStatus.DRIFT, ModelStatus.NO_DATA)
_CHUNK = 900


def _chunks(ids: list[int]) -> Iterator[list[int]]:
    for i in range(0, len(ids), _CHUNK):
        yield ids[i : i + _CHUNK]


def _gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels)


class ResultsCollector(Collector):
    """Reads the latest results of every model's current version, at most every ``ttl`` s."""

    def __init__(self, sessions: sessionmaker[Session], ttl: float = 5.0) -> None:
        self.sessions = sessions
        self.ttl = ttl
        self._lock = threading.Lock()
        self._cached: list[Metric] = []
        self._read_at = float("-inf")
        self.reads = 0  # how many times the database was read (tests check the cache)

    def describe(self) -> Iterable[Metric]:
        return []  # names are only known after a read; registering must not touch the database

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            if time.monotonic() - self._read_at >= self.ttl:
                try:
                    with self.sessions() as session:
                        self._cached = self._read(session)
                except SQLAlchemyError as exc:
                    # the process's own metrics must still be scraped (they are how one sees
                    # the outage); the results stay as last read until the database is back
                    log.warning("results for /metrics not read (kept the last ones): %s", exc)
                    READ_ERRORS.inc()
                else:
                    self.reads += 1
                self._read_at = time.monotonic()
            return list(self._cached)

    def _read(self, session: Session) -> list[Metric]:
        current = session.execute(
            select(Model.name, ModelVersion.id, ModelVersion.version)
            .join(ModelVersion, ModelVersion.model_id == Model.id)
            .where(ModelVersion.version == Model.current_version)
        ).all()
        versions = {vid: (name, version) for name, vid, version in current}
        states = list(
            session.scalars(
                select(MonitorState).where(MonitorState.model_version_id.in_(list(versions)))
            )
        )
        runs: dict[int, tuple[str, str, str]] = {}  # run id -> (model, version, monitor)
        for state in states:
            if state.last_run_id is not None:
                model, version = versions[state.model_version_id]
                runs[state.last_run_id] = (model, version, state.monitor)
        families = self._status(versions, states)
        families += self._runs(session, runs)
        families += self._results(session, runs)
        families.append(self._records(session, versions))
        return families

    def _status(
        self, versions: dict[int, tuple[str, str]], states: list[MonitorState]
    ) -> list[Metric]:
        status = _gauge(
            "tidewatch_model_status",
            "1 for the model's current status (the worst of its monitors), 0 for the others.",
            ["model", "version", "status"],
        )
        since = _gauge(
            "tidewatch_model_status_since_timestamp_seconds",
            "When the model's current status began.",
            ["model", "version"],
        )
        by_version: dict[int, list[MonitorState]] = {}
        for state in states:
            by_version.setdefault(state.model_version_id, []).append(state)
        for vid, (model, version) in sorted(versions.items(), key=lambda kv: kv[1]):
            mine = by_version.get(vid, [])
            worst = worst_of(s.status for s in mine)
            for name in STATUSES:
                status.add_metric([model, version, name], 1.0 if name == worst else 0.0)
            began = [s.status_since for s in mine if s.status == worst and s.status_since]
            if began:
                since.add_metric([model, version], min(began).timestamp())
        return [status, since]

    def _runs(self, session: Session, runs: dict[int, tuple[str, str, str]]) -> list[Metric]:
        labels = ["model", "version", "monitor"]
        last = _gauge(
            "tidewatch_monitor_last_run_timestamp_seconds",
            "When the monitor last finished a run.",
            labels,
        )
        run_id = _gauge("tidewatch_monitor_last_run_id", "Id of the monitor's last run.", labels)
        records = _gauge(
            "tidewatch_monitor_window_records", "Records in the last run's window.", labels
        )
        share = _gauge(
            "tidewatch_monitor_drifted_features_ratio",
            "Share of the tested features that drifted in the last run.",
            labels,
        )
        for chunk in _chunks(sorted(runs)):
            for run in session.scalars(select(DetectionRun).where(DetectionRun.id.in_(chunk))):
                key = list(runs[run.id])
                if run.finished_at is not None:
                    last.add_metric(key, run.finished_at.timestamp())
                run_id.add_metric(key, float(run.id))
                records.add_metric(key, float(run.n_current))
                if run.drifted_share is not None:
                    share.add_metric(key, run.drifted_share)
        return [last, run_id, records, share]

    def _results(self, session: Session, runs: dict[int, tuple[str, str, str]]) -> list[Metric]:
        feature = ["model", "version", "monitor", "feature", "detector"]
        statistic = _gauge(
            "tidewatch_feature_drift_statistic",
            "The detector's statistic for the feature in the last run.",
            feature,
        )
        p_value = _gauge(
            "tidewatch_feature_drift_p_value",
            "The feature's p-value in the last run, after the monitor's correction.",
            feature,
        )
        drifted = _gauge(
            "tidewatch_feature_drifted", "1 when the feature drifted in the last run.", feature
        )
        check = ["model", "version", "monitor", "feature", "check"]
        quality = _gauge(
            "tidewatch_data_quality_value", "A data-quality check of the last window.", check
        )
        problem = _gauge(
            "tidewatch_data_quality_problem", "1 when the data-quality check failed.", check
        )
        metric = ["model", "version", "monitor", "metric"]
        realized = _gauge(
            "tidewatch_performance_realized",
            "A realized metric on the last window's labelled records.",
            metric,
        )
        estimated = _gauge(
            "tidewatch_performance_estimated",
            "A label-free (CBPE) estimate of a metric on the last window.",
            metric,
        )
        threshold = _gauge(
            "tidewatch_performance_threshold", "The configured threshold of a metric.", metric
        )
        monitor = ["model", "version", "monitor"]
        n_labels = _gauge(
            "tidewatch_performance_labels", "Labelled records in the last window.", monitor
        )
        class_ratio = _gauge(
            "tidewatch_prediction_class_ratio",
            "Share of the last window's predictions per class.",
            [*monitor, "class"],
        )
        confidence = _gauge(
            "tidewatch_prediction_confidence_mean",
            "Mean top-class probability in the last window.",
            monitor,
        )
        ids = sorted(runs)
        for chunk in _chunks(ids):
            for r in session.scalars(
                select(DetectionResult).where(DetectionResult.run_id.in_(chunk))
            ):
                key = [*runs[r.run_id], r.feature, r.method]
                if r.statistic is not None:
                    statistic.add_metric(key, r.statistic)
                if r.p_adjusted is not None:
                    p_value.add_metric(key, r.p_adjusted)
                drifted.add_metric(key, float(r.drift))
            for q in session.scalars(select(QualityResult).where(QualityResult.run_id.in_(chunk))):
                key = [*runs[q.run_id], q.feature, q.check]
                if q.value is not None:
                    quality.add_metric(key, q.value)
                problem.add_metric(key, float(q.problem))
            labelled: dict[int, int] = {}
            for p in session.scalars(
                select(PerformanceResult).where(PerformanceResult.run_id.in_(chunk))
            ):
                base = list(runs[p.run_id])
                result = ResultKey.parse(p.metric)
                if result.kind is ResultKind.ESTIMATED:
                    if p.value is not None:
                        estimated.add_metric([*base, result.name], p.value)
                    continue
                if result.kind is ResultKind.STREAM:
                    continue
                labelled[p.run_id] = p.n_labels
                if p.value is not None:
                    realized.add_metric([*base, p.metric], p.value)
                if p.threshold is not None:
                    threshold.add_metric([*base, p.metric], p.threshold)
            for rid, n in labelled.items():
                n_labels.add_metric(list(runs[rid]), float(n))
            for w in session.scalars(select(WindowStat).where(WindowStat.run_id.in_(chunk))):
                if w.name.startswith("class_ratio."):
                    name = w.name.removeprefix("class_ratio.")
                    class_ratio.add_metric([*runs[w.run_id], name], w.value)
                elif w.name == "confidence_mean":
                    confidence.add_metric(list(runs[w.run_id]), w.value)
        return [
            statistic,
            p_value,
            drifted,
            quality,
            problem,
            realized,
            estimated,
            threshold,
            n_labels,
            class_ratio,
            confidence,
        ]

    def _records(self, session: Session, versions: dict[int, tuple[str, str]]) -> Metric:
        stored = _gauge(
            "tidewatch_telemetry_records",
            "Telemetry records stored for the model's current version (within retention).",
            ["model", "version"],
        )
        totals: dict[Any, Any] = dict(
            session.execute(
                select(TelemetryBatch.model_version_id, func.sum(TelemetryBatch.n_records))
                .where(TelemetryBatch.model_version_id.in_(list(versions)))
                .group_by(TelemetryBatch.model_version_id)
            ).all()
        )
        for vid, (model, version) in sorted(versions.items(), key=lambda kv: kv[1]):
            stored.add_metric([model, version], float(totals.get(vid) or 0))
        return stored
