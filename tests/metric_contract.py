"""The /metrics names, in one place for the tests of the exporter, the dashboards and the rules.

tests/monitor/test_metrics.py checks the real exposition against it, so a renamed metric fails
there first; the dashboards and Prometheus-rules tests check that they use only these names.
"""

from __future__ import annotations

# detection results, read from the database: the same on every replica
RESULT_GAUGES = frozenset(
    {
        "tidewatch_model_status",
        "tidewatch_model_status_since_timestamp_seconds",
        "tidewatch_monitor_last_run_timestamp_seconds",
        "tidewatch_monitor_last_run_id",
        "tidewatch_monitor_window_records",
        "tidewatch_monitor_drifted_features_ratio",
        "tidewatch_feature_drift_statistic",
        "tidewatch_feature_drift_p_value",
        "tidewatch_feature_drifted",
        "tidewatch_data_quality_value",
        "tidewatch_data_quality_problem",
        "tidewatch_performance_realized",
        "tidewatch_performance_estimated",
        "tidewatch_performance_threshold",
        "tidewatch_performance_labels",
        "tidewatch_prediction_class_ratio",
        "tidewatch_prediction_confidence_mean",
        "tidewatch_telemetry_records",
    }
)
# per-process service metrics (counters by their name without _total)
COUNTERS = frozenset(
    {
        "tidewatch_ingested_records",
        "tidewatch_duplicate_records",
        "tidewatch_ignored_feature_values",
        "tidewatch_rejected_requests",
        "tidewatch_detection_runs",
        "tidewatch_alert_deliveries",
        "tidewatch_results_read_errors",
    }
)
HISTOGRAMS = frozenset(
    {
        "tidewatch_ingest_duration_seconds",
        "tidewatch_detection_run_duration_seconds",
        "tidewatch_scheduler_lag_seconds",
    }
)
SERVICE_GAUGES = frozenset({"tidewatch_scheduler_leader"})
# every series name /metrics may expose under the tidewatch_ prefix
SERIES = (
    RESULT_GAUGES
    | SERVICE_GAUGES
    | {f"{name}{suffix}" for name in COUNTERS for suffix in ("_total", "_created")}
    | {
        f"{name}{suffix}"
        for name in HISTOGRAMS
        for suffix in ("_bucket", "_sum", "_count", "_created")
    }
)
