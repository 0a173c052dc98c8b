"""/metrics: results read from storage (and cached briefly), the service's counters with bounded
labels, and `promtool check metrics` on the whole exposition."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import service_missing
from tests.metric_contract import SERIES
from tests.monitor.test_api_detection import DETECT, post, rows, upload_reference


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(metrics: dict[Any, float], name: str, **labels: str) -> float | None:
    return metrics.get((name, tuple(sorted(labels.items()))))


def test_results_on_metrics_match_the_stored_run(
    client: TestClient, admin: dict[str, str], model: dict[str, Any]
) -> None:
    upload_reference(client, admin)
    post(client, admin, rows(300, shift=2.0, seed=3))
    (run,) = client.post(DETECT, headers=admin).json()
    client.app.state.tidewatch.exposition.results.ttl = 0  # type: ignore[attr-defined]
    text = client.get("/metrics").text
    m = samples(text)
    base = {"model": "plankton", "version": "1"}
    assert value(m, "tidewatch_model_status", **base, status="drift") == 1.0
    for other in ("ok", "warning", "no_data"):
        assert value(m, "tidewatch_model_status", **base, status=other) == 0.0
    key = {**base, "monitor": "drift"}
    assert value(m, "tidewatch_monitor_last_run_id", **key) == run["id"]
    assert value(m, "tidewatch_monitor_window_records", **key) == 300
    assert value(m, "tidewatch_monitor_drifted_features_ratio", **key) == run["drifted_share"]
    for r in run["results"]:
        labels = {**key, "feature": r["feature"], "detector": r["method"]}
        assert value(m, "tidewatch_feature_drifted", **labels) == float(r["drift"])
        if r["statistic"] is not None:
            assert value(m, "tidewatch_feature_drift_statistic", **labels) == r["statistic"]
        if r["p_adjusted"] is not None:
            assert value(m, "tidewatch_feature_drift_p_value", **labels) == r["p_adjusted"]
    for q in run["quality"]:
        labels = {**key, "feature": q["feature"], "check": q["check"]}
        assert value(m, "tidewatch_data_quality_problem", **labels) == float(q["problem"])
    # every record of the window predicted "copepod" (rows() gives no label: the argmax)
    assert value(m, "tidewatch_prediction_class_ratio", **key, **{"class": "copepod"}) == 1.0
    assert value(m, "tidewatch_prediction_confidence_mean", **key) == 0.699999988079071
    assert value(m, "tidewatch_telemetry_records", **base) == 300
    assert value(m, "tidewatch_ingested_records_total", model="plankton") is not None
    assert value(
        m, "tidewatch_detection_runs_total", model="plankton", monitor="drift", status="drift"
    )
    # nothing outside the contract that the dashboards and rules are checked against
    exposed = {name for name, _ in m if name.startswith("tidewatch_")}
    assert exposed <= SERIES, exposed - SERIES
    not_yet = {
        # performance monitors only (this model has none), and series no request produced yet
        "tidewatch_performance_realized",
        "tidewatch_performance_estimated",
        "tidewatch_performance_threshold",
        "tidewatch_performance_labels",
        "tidewatch_scheduler_lag_seconds_bucket",
        "tidewatch_scheduler_lag_seconds_sum",
        "tidewatch_scheduler_lag_seconds_count",
        "tidewatch_scheduler_lag_seconds_created",
        "tidewatch_duplicate_records_total",
        "tidewatch_duplicate_records_created",
        "tidewatch_ignored_feature_values_total",
        "tidewatch_ignored_feature_values_created",
        "tidewatch_rejected_requests_total",
        "tidewatch_rejected_requests_created",
        "tidewatch_results_read_errors_total",
        "tidewatch_results_read_errors_created",
    }
    assert SERIES - exposed <= not_yet, (SERIES - exposed) - not_yet


def test_results_are_read_at_most_once_per_ttl(
    client: TestClient, admin: dict[str, str], model: dict[str, Any]
) -> None:
    results = client.app.state.tidewatch.exposition.results  # type: ignore[attr-defined]
    results.ttl = 3600
    client.get("/metrics")
    client.get("/metrics")
    assert results.reads == 1
    results.ttl = 0
    client.get("/metrics")
    assert results.reads == 2


def test_rejections_are_counted_with_bounded_labels(
    client: TestClient, admin: dict[str, str], model: dict[str, Any]
) -> None:
    before = samples(client.get("/metrics").text)
    client.post("/api/v1/models/plankton/telemetry", content=b"{not json", headers=admin)
    for i in range(3):  # made-up model names must not become label values
        client.post(f"/api/v1/models/made-up-{i}/telemetry", json={"records": []}, headers=admin)
    client.post("/api/v1/models/plankton/telemetry", json={"records": []})  # no key
    after = samples(client.get("/metrics").text)

    def grew(**labels: str) -> float:
        name = "tidewatch_rejected_requests_total"
        return (value(after, name, **labels) or 0) - (value(before, name, **labels) or 0)

    assert grew(model="plankton", code="400") == 1
    assert grew(model="", code="404") == 3
    assert grew(model="", code="401") == 1
    names = {dict(k[1]).get("model") for k in after if k[0] == "tidewatch_rejected_requests_total"}
    assert not any(n and n.startswith("made-up") for n in names)


def test_promtool_finds_nothing_to_complain_about(
    client: TestClient, admin: dict[str, str], model: dict[str, Any]
) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        service_missing("promtool", "not on PATH (Debian package prometheus)")
    upload_reference(client, admin)
    post(client, admin, rows(300, shift=2.0, seed=3))
    client.post(DETECT, headers=admin)
    text = client.get("/metrics").text
    checked = subprocess.run(
        [str(promtool), "check", "metrics"], input=text, capture_output=True, text=True
    )
    assert checked.returncode == 0 and checked.stdout + checked.stderr == "", checked


def test_metrics_are_served_while_the_database_is_down() -> None:
    from monitor.app import create_app
    from monitor.settings import Settings

    app = create_app(
        Settings(
            database_url="postgresql://nobody@127.0.0.1:1/none",
            migrate_on_start=False,
            scheduler=False,
        )
    )
    with TestClient(app) as down:
        before = samples(down.get("/metrics").text)
        answer = down.get("/metrics")
        assert answer.status_code == 200
        m = samples(answer.text)
        errors = value(m, "tidewatch_results_read_errors_total") or 0
        assert errors > (value(before, "tidewatch_results_read_errors_total") or 0) - 1
        assert errors >= 1
        assert value(m, "tidewatch_scheduler_leader") is not None  # the process's own metrics
