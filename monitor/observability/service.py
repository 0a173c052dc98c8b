"""This process's own metrics (prometheus-client), one set per process.

Counters are per process: with several replicas, Prometheus scrapes each one and queries sum
them (``sum by (model) (rate(...))``). Label values are bounded: model names only of registered
models (a request for an unknown model counts under ``model=""``), never record ids.
"""

from __future__ import annotations

import threading

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)

REGISTRY = CollectorRegistry(auto_describe=True)
for _collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    REGISTRY.register(_collector)

INGESTED = Counter(
    "tidewatch_ingested_records",
    "Telemetry records stored (new ids only).",
    ["model"],
    registry=REGISTRY,
)
DUPLICATES = Counter(
    "tidewatch_duplicate_records",
    "Telemetry records dropped because their id was already stored (a resend).",
    ["model"],
    registry=REGISTRY,
)
IGNORED_FEATURES = Counter(
    "tidewatch_ignored_feature_values",
    "Values of features the model does not declare, left out of the stored records.",
    ["model", "feature"],
    registry=REGISTRY,
)
# feature names come from the senders: past this many per model they count as "(other)"
MAX_IGNORED_NAMES = 50
_ignored_names: dict[str, set[str]] = {}
_ignored_lock = threading.Lock()


def count_ignored(model: str, ignored: dict[str, int]) -> None:
    """Count undeclared feature values by name, with the names per model bounded."""
    with _ignored_lock:
        names = _ignored_names.setdefault(model, set())
        for feature, n in ignored.items():
            if feature not in names and len(names) >= MAX_IGNORED_NAMES:
                feature = "(other)"
            else:
                names.add(feature)
            IGNORED_FEATURES.labels(model, feature).inc(n)


REJECTED = Counter(
    "tidewatch_rejected_requests",
    "Telemetry and label requests answered with a 4xx, by status code.",
    ["model", "code"],
    registry=REGISTRY,
)
INGEST_SECONDS = Histogram(
    "tidewatch_ingest_duration_seconds",
    "Time to answer a telemetry or labels request, the database commit included.",
    ["model"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
RUNS = Counter(
    "tidewatch_detection_runs",
    "Detection runs stored, by their status.",
    ["model", "monitor", "status"],
    registry=REGISTRY,
)
RUN_SECONDS = Histogram(
    "tidewatch_detection_run_duration_seconds",
    "Time to compute and store one detection run (one window).",
    ["model", "monitor"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
    registry=REGISTRY,
)
SCHEDULER_LAG = Histogram(
    "tidewatch_scheduler_lag_seconds",
    "How late the scheduler submitted a job after its planned run time.",
    buckets=(0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0),
    registry=REGISTRY,
)
READ_ERRORS = Counter(
    "tidewatch_results_read_errors",
    "Scrapes that could not read the detection results from the database (stale values served).",
    registry=REGISTRY,
)
LEADER = Gauge(
    "tidewatch_scheduler_leader",
    "1 in the process that schedules monitors, 0 elsewhere.",
    registry=REGISTRY,
)
ALERT_DELIVERIES = Counter(
    "tidewatch_alert_deliveries",
    "Alert notifications handed to a channel, by outcome.",
    ["channel", "outcome"],
    registry=REGISTRY,
)
# the channels and outcomes exist from the start, so dashboards and rules see zeros, not gaps
for _channel in ("email", "webhook", "alertmanager"):
    for _outcome in ("sent", "failed"):
        ALERT_DELIVERIES.labels(_channel, _outcome)
LEADER.set(0)
