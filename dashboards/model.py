"""The "Tidewatch / Model" dashboard: what changed for one model, feature by feature.

Why: a use-case owner who gets a drift alert wants to see which features drifted and since
when, whether the predictions and the (estimated or realized) performance moved with them,
whether the data quality or the telemetry volume changed, and then open the detection run
itself in Tidewatch. The variables pick the model, its version and the features; the
``tidewatch_url`` variable is where Tidewatch's API answers (for the links to runs).

Detection results are exposed by every replica, so each query de-duplicates with
``max by (...)``, keeping ``monitor`` so that a model with several monitors shows each.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as models

from dashboards import panels as p

UID = "tidewatch-model"
TITLE = "Tidewatch / Model"
TIDEWATCH_URL = "http://localhost:8000"
M = 'model="$model", version="$version"'
F = f'{M}, feature=~"$feature"'
RATE = "[$__rate_interval]"
# the HTML drift report of the last run (Evidently presets and Tidewatch's plots)
RUN_URL = "${tidewatch_url}/api/v1/models/${model}/report?run=${__value.raw}"
RESULTS_URL = (
    "${tidewatch_url}/api/v1/models/${model}/results"
    "?version=${version}&monitor=${__field.labels.monitor}"
)
RESULT_LEGEND = "{{feature}} {{detector}} ({{monitor}})"


def _results_link(panel: timeseries.Panel) -> timeseries.Panel:
    """Run results over time link to the runs of the series' monitor."""
    return panel.data_links([p.link("Runs of ${__field.labels.monitor}", RESULTS_URL)])


def _status() -> p.Item:
    return (
        p.stat_panel("Status", p.status_code_expr("model", M), "none", p.at(0, 1, 4, 4))
        .mappings(p.status_code_mappings())
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE)
    )


def _last_run() -> p.Item:
    expr = f"max by (monitor) (tidewatch_monitor_last_run_id{{{M}}})"
    return (
        p.stat_panel("Last detection run", expr, "none", p.at(8, 1, 6, 4), "{{monitor}}")
        .decimals(0)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .color_mode(common.BigValueColorMode.NONE)
        .graph_mode(common.BigValueGraphMode.NONE)
        .data_links([p.link("Run ${__value.raw} of ${__field.labels.monitor}", RUN_URL)])
    )


def _drift_over_time(title: str, metric: str, y: int, x: int) -> p.Item:
    expr = f"max by (monitor, feature, detector) ({metric}{{{F}}})"
    return _results_link(
        p.timeseries_panel(title, [(expr, RESULT_LEGEND)], "none", p.at(x, y, 12, 9))
    )


def _performance() -> p.Item:
    queries = [
        (
            f"max by (monitor, metric) (tidewatch_performance_{kind}{{{M}}})",
            f"{kind} {{{{metric}}}} ({{{{monitor}}}})",
        )
        for kind in ("estimated", "realized", "threshold")
    ]
    dashed = models.DynamicConfigValue(
        id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}
    )
    panel = p.timeseries_panel(
        "Estimated against realized performance", queries, "percentunit", p.at(12, 24, 12, 8)
    )
    return _results_link(panel.override_by_query("C", [dashed]))


def _ingest() -> p.Item:
    queries = [
        (f'sum(rate(tidewatch_{name}{{model="$model"}}{RATE}))', legend)
        for name, legend in (
            ("ingested_records_total", "ingested"),
            ("duplicate_records_total", "duplicates"),
            ("rejected_requests_total", "rejected requests"),
        )
    ]
    return p.timeseries_panel("Ingest volume", queries, "suffix: rec/s", p.at(16, 33, 8, 8))


def items() -> list[p.Item]:
    """The model dashboard's rows and panels, top to bottom."""
    return [
        p.row("Status", 0),
        _status(),
        p.stat_panel(
            "Status since",
            f"max(tidewatch_model_status_since_timestamp_seconds{{{M}}}) * 1000",
            "dateTimeFromNow",
            p.at(4, 1, 4, 4),
        ).graph_mode(common.BigValueGraphMode.NONE),
        _last_run(),
        p.stat_panel(
            "Stored records", f"max(tidewatch_telemetry_records{{{M}}})", "short", p.at(14, 1, 5, 4)
        ),
        p.stat_panel(
            "Records in the last window",
            f"max by (monitor) (tidewatch_monitor_window_records{{{M}}})",
            "short",
            p.at(19, 1, 5, 4),
            "{{monitor}}",
        ),
        p.row("Drift", 5),
        _drift_over_time("Drift statistic per feature", "tidewatch_feature_drift_statistic", 6, 0),
        _drift_over_time("p-value per feature", "tidewatch_feature_drift_p_value", 6, 12),
        _results_link(
            p.timeseries_panel(
                "Share of drifted features",
                [
                    (
                        f"max by (monitor) (tidewatch_monitor_drifted_features_ratio{{{M}}})",
                        "{{monitor}}",
                    )
                ],
                "percentunit",
                p.at(0, 15, 12, 8),
            ).max(1)
        ),
        p.table_panel(
            "Drifted features in the last run",
            f"max by (monitor, feature, detector) (tidewatch_feature_drifted{{{F}}}) == 1",
            "none",
            p.at(12, 15, 12, 8),
            ("Time", "Value"),
        ),
        p.row("Predictions and performance", 23),
        _results_link(
            p.timeseries_panel(
                "Class mix",
                [
                    (
                        f"max by (monitor, class) (tidewatch_prediction_class_ratio{{{M}}})",
                        "{{class}} ({{monitor}})",
                    )
                ],
                "percentunit",
                p.at(0, 24, 6, 8),
            )
        ),
        _results_link(
            p.timeseries_panel(
                "Mean confidence",
                [
                    (
                        f"max by (monitor) (tidewatch_prediction_confidence_mean{{{M}}})",
                        "{{monitor}}",
                    )
                ],
                "percentunit",
                p.at(6, 24, 6, 8),
            )
        ),
        _performance(),
        p.row("Data quality and ingest", 32),
        _results_link(
            p.timeseries_panel(
                "Data-quality checks",
                [
                    (
                        f"max by (monitor, feature, check) (tidewatch_data_quality_value{{{F}}})",
                        "{{feature}} {{check}} ({{monitor}})",
                    )
                ],
                "none",
                p.at(0, 33, 8, 8),
            )
        ),
        p.table_panel(
            # every check with its verdict, failing first: an empty table would not tell "no
            # problem" from "no data"
            "Data-quality problems (1 = failing)",
            f"sort_desc(max by (monitor, feature, check) (tidewatch_data_quality_problem{{{F}}}))",
            "none",
            p.at(8, 33, 8, 8),
            ("Time",),
        ),
        _ingest(),
    ]


def variables() -> list[cogbuilder.Builder[models.VariableModel]]:
    """datasource, model, version, feature (multi, all) and tidewatch_url."""
    return [
        p.datasource_variable(),
        p.query_variable("model", "Model", "label_values(tidewatch_model_status, model)"),
        p.query_variable(
            "version",
            "Version",
            'label_values(tidewatch_model_status{model="$model"}, version)',
        ),
        p.query_variable(
            "feature",
            "Features",
            f"label_values(tidewatch_feature_drift_statistic{{{M}}}, feature)",
        )
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(models.VariableOption(text="All", value="$__all")),
        dashboard_builders.TextBoxVariable("tidewatch_url")
        .label("Tidewatch URL")
        .description("Where Tidewatch's API answers (for the links to detection runs)")
        .default_value(TIDEWATCH_URL)
        .current(models.VariableOption(text=TIDEWATCH_URL, value=TIDEWATCH_URL)),
    ]


def dashboard() -> dashboard_builders.Dashboard:
    """The model dashboard, ready to encode."""
    return p.dashboard(TITLE, UID, "now-7d", variables(), items())
