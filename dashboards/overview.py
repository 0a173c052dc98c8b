"""The "Tidewatch / Platform overview" dashboard: every model and the service itself at a glance.

Why: a platform operator runs one Tidewatch for dozens of models and needs one page that says
which models drift, whether their monitors still run, whether telemetry still arrives, whether
detection keeps up, which alerts are pending or firing and which process leads the scheduler.
The per-model detail lives in :mod:`dashboards.model`; the status table links there.

Metric names and labels follow the /metrics contract: detection results (group A) are exposed
by every replica and de-duplicated with ``max by (...)``; service counters (group B) are summed.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builders

from dashboards import panels as p

UID = "tidewatch-overview"
TITLE = "Tidewatch / Platform overview"
STATUS = "max by (model, version, status) (tidewatch_model_status) == 1"
ALERTS = 'ALERTS{alertname=~"Tidewatch.*"}'
RATE = "[$__rate_interval]"
# seconds since the epoch, in milliseconds for Grafana's date units
LAST_RUN = "max by (model, version, monitor) (tidewatch_monitor_last_run_timestamp_seconds) * 1000"
MODEL_LINK = (
    "/d/tidewatch-model?var-model=${__data.fields.model}&var-version=${__data.fields.version}"
)


def _models_with(status: str) -> str:
    return f'count(max by (model) (tidewatch_model_status{{status="{status}"}}) == 1) or vector(0)'


def _status_table() -> p.Item:
    panel = p.table_panel("Model status", STATUS, "none", p.at(0, 5, 12, 10), ("Time", "Value"))
    panel = p.color_cells(panel.mappings(p.status_text_mappings()), "status")
    return panel.data_links([p.link("Open the model's dashboard", MODEL_LINK, new_tab=False)])


def _alerts_table() -> p.Item:
    firing = {"firing": ("firing", "red"), "pending": ("pending", "orange")}
    panel = p.table_panel(
        "Tidewatch alerts (pending and firing)", ALERTS, "none", p.at(0, 25, 16, 8)
    ).mappings([p.value_mapping(firing)])
    return p.color_cells(panel, "alertstate")


def _leader() -> p.Item:
    leads = p.value_mapping({"1": ("leader", "green"), "0": ("follower", "transparent")})
    return p.state_timeline_panel(
        "Scheduler leader (per process)",
        "max by (instance) (tidewatch_scheduler_leader)",
        "{{instance}}",
        p.at(12, 52, 12, 8),
        [leads],
    )


def items() -> list[p.Item]:
    """The overview's rows and panels, top to bottom."""
    return [
        p.row("Models", 0),
        p.stat_panel(
            "Models", "count(max by (model) (tidewatch_model_status))", "none", p.at(0, 1, 6, 4)
        ),
        p.stat_panel("Drifting", _models_with("drift"), "none", p.at(6, 1, 6, 4)),
        p.stat_panel("Warning", _models_with("warning"), "none", p.at(12, 1, 6, 4)),
        p.stat_panel("No data", _models_with("no_data"), "none", p.at(18, 1, 6, 4)),
        _status_table(),
        p.table_panel(
            "Last run per monitor",
            LAST_RUN,
            "dateTimeFromNow",
            p.at(12, 5, 12, 10),
        ),
        p.state_timeline_panel(
            "Status history",
            p.status_code_expr("model"),
            "{{model}}",
            p.at(0, 15, 24, 9),
            p.status_code_mappings(),
        ),
        p.row("Alerts", 24),
        _alerts_table(),
        p.timeseries_panel(
            "Alert deliveries / s",
            [
                (
                    f"sum by (channel, outcome) (rate(tidewatch_alert_deliveries_total{RATE}))",
                    "{{channel}} {{outcome}}",
                )
            ],
            "ops",
            p.at(16, 25, 8, 8),
        ),
        p.row("Ingest", 33),
        p.timeseries_panel(
            "Ingested records / s",
            [(f"sum by (model) (rate(tidewatch_ingested_records_total{RATE}))", "{{model}}")],
            "suffix: rec/s",
            p.at(0, 34, 12, 8),
        ),
        p.timeseries_panel(
            "Rejected requests / s",
            [
                (
                    f"sum by (model, code) (rate(tidewatch_rejected_requests_total{RATE}))",
                    "{{model}} {{code}}",
                )
            ],
            "reqps",
            p.at(12, 34, 12, 8),
        ),
        p.row("Detection and scheduling", 42),
        p.timeseries_panel(
            "Detection run duration p95",
            [
                (
                    "histogram_quantile(0.95, sum by (le, model) "
                    f"(rate(tidewatch_detection_run_duration_seconds_bucket{RATE})))",
                    "{{model}}",
                )
            ],
            "s",
            p.at(0, 43, 12, 9),
        ),
        p.timeseries_panel(
            "Detection runs / s by status",
            [(f"sum by (status) (rate(tidewatch_detection_runs_total{RATE}))", "{{status}}")],
            "ops",
            p.at(12, 43, 12, 9),
        ),
        p.timeseries_panel(
            "Scheduler lag",
            [
                (
                    f"histogram_quantile({q}, sum by (le) "
                    f"(rate(tidewatch_scheduler_lag_seconds_bucket{RATE})))",
                    f"p{round(q * 100)}",
                )
                for q in (0.5, 0.95)
            ],
            "s",
            p.at(0, 52, 12, 8),
        ),
        _leader(),
    ]


def dashboard() -> dashboard_builders.Dashboard:
    """The overview dashboard, ready to encode."""
    return p.dashboard(TITLE, UID, "now-24h", [p.datasource_variable()], items())
