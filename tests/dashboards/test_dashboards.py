"""The Grafana dashboards: kept JSON is what the code generates, queries follow the contract.

The dashboards are code (``dashboards/``) and Grafana provisions the JSON generated from it
(``deploy/grafana/dashboards``); these tests fail when the two drift apart, when a query names
a metric the /metrics contract (issue #6) does not define, and when panels overlap.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest
import yaml

from dashboards.build import (
    DASHBOARDS,
    all_panels,
    build_all,
    dump,
    layout_svg,
    panel_queries,
    write_all,
)
from tests.metric_contract import COUNTERS, HISTOGRAMS, RESULT_GAUGES, SERVICE_GAUGES

ROOT = Path(__file__).resolve().parents[2]
KEPT = ROOT / "deploy" / "grafana" / "dashboards"
PICTURES = ROOT / "docs" / "dashboards"
PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
REBUILD = "run `tidewatch dashboards build deploy/grafana/dashboards`"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

COUNTER_SERIES = {f"{name}_total" for name in COUNTERS}
ALLOWED = (
    RESULT_GAUGES
    | COUNTER_SERIES
    | SERVICE_GAUGES
    | {f"{name}_bucket" for name in HISTOGRAMS}
    | {"ALERTS"}  # Prometheus's series of the Tidewatch* alerting rules
)
KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (not functions, labels, keywords).

    >>> sorted(metric_names('sum by (model) (rate(a_total{m="x"}[$__rate_interval])) or b'))
    ['a_total', 'b']
    """
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        called = text[match.end() :].lstrip().startswith("(")
        if not called and match.group().lower() not in KEYWORDS:
            names.add(match.group())
    return names


@pytest.fixture(scope="module")
def built() -> dict[str, dict[str, Any]]:
    return build_all()


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in all_panels(dashboard) if panel.get("type") != "row"]


def _panel(dashboard: dict[str, Any], title: str) -> dict[str, Any]:
    (found,) = [panel for panel in _panels(dashboard) if panel["title"] == title]
    return found


def _variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {variable["name"]: variable for variable in dashboard["templating"]["list"]}


def test_kept_json_is_what_the_code_generates(built: dict[str, dict[str, Any]]) -> None:
    kept = sorted(path.name for path in KEPT.glob("*.json"))
    assert kept == sorted(built), f"dashboard files differ from the code's: {REBUILD}"
    for name, dashboard in built.items():
        text = (KEPT / name).read_text(encoding="utf-8")
        assert json.loads(text) == dashboard, f"{name} is not what the code generates: {REBUILD}"
        assert text == dump(dashboard), f"{name} is not formatted as generated: {REBUILD}"


def test_write_all_writes_every_dashboard(tmp_path: Path) -> None:
    written = write_all(tmp_path / "out")
    assert sorted(path.name for path in written) == sorted(DASHBOARDS)
    for path in written:
        assert path.read_text(encoding="utf-8") == (KEPT / path.name).read_text(encoding="utf-8")


def test_titles_and_uids(built: dict[str, dict[str, Any]]) -> None:
    assert built["overview.json"]["title"] == "Tidewatch / Platform overview"
    assert built["overview.json"]["uid"] == "tidewatch-overview"
    assert built["model.json"]["title"] == "Tidewatch / Model"
    assert built["model.json"]["uid"] == "tidewatch-model"


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_panel_queries_the_datasource_variable(
    built: dict[str, dict[str, Any]], name: str
) -> None:
    dashboard = built[name]
    assert _variables(dashboard)["datasource"]["type"] == "datasource"
    assert _variables(dashboard)["datasource"]["query"] == "prometheus"
    for panel in _panels(dashboard):
        assert panel.get("title"), panel
        assert panel.get("datasource") == DATASOURCE, panel["title"]
        assert panel.get("targets"), f"{panel['title']} has no query"
        for target in panel["targets"]:
            assert target.get("expr", "").strip(), f"{panel['title']} has an empty query"
            assert target.get("datasource") == DATASOURCE, panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(set(ref_ids)) == len(ref_ids), panel["title"]
    ids = [panel["id"] for panel in all_panels(dashboard)]
    assert len(set(ids)) == len(ids), "panel ids repeat"


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_queries_use_only_contract_metrics(built: dict[str, dict[str, Any]], name: str) -> None:
    for title, expr in panel_queries(built[name]):
        names = metric_names(expr)
        assert names, f"{title}: no metric in {expr}"
        assert names <= ALLOWED, f"{title}: {sorted(names - ALLOWED)} not in the contract"
        for counter in names & COUNTER_SERIES:
            assert f"rate({counter}" in expr, f"{title}: counter {counter} not read by rate()"
        if names & RESULT_GAUGES:
            assert "max" in expr, f"{title}: result gauges are not de-duplicated with max"


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_panels_do_not_overlap(built: dict[str, dict[str, Any]], name: str) -> None:
    boxes = [(panel["title"], panel["gridPos"]) for panel in all_panels(built[name])]
    for title, pos in boxes:
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, f"{title} leaves the grid"
        assert pos["h"] > 0 and pos["w"] > 0 and pos["y"] >= 0, title
    for (a, p), (b, q) in combinations(boxes, 2):
        apart = (
            p["x"] + p["w"] <= q["x"]
            or q["x"] + q["w"] <= p["x"]
            or p["y"] + p["h"] <= q["y"]
            or q["y"] + q["h"] <= p["y"]
        )
        assert apart, f"{a!r} overlaps {b!r}"


def test_overview_shows_status_alerts_and_leader(built: dict[str, dict[str, Any]]) -> None:
    queries = dict(panel_queries(built["overview.json"]))
    status_expr = "max by (model, version, status) (tidewatch_model_status) == 1"
    assert queries["Model status"] == status_expr
    assert queries["Tidewatch alerts (pending and firing)"] == 'ALERTS{alertname=~"Tidewatch.*"}'
    assert "tidewatch_scheduler_leader" in queries["Scheduler leader (per process)"]
    assert queries["Ingested records / s"] == (
        "sum by (model) (rate(tidewatch_ingested_records_total[$__rate_interval]))"
    )
    status = _panel(built["overview.json"], "Model status")
    (mapping,) = status["fieldConfig"]["defaults"]["mappings"]
    colors = {value: result["color"] for value, result in mapping["options"].items()}
    assert colors == {"ok": "green", "warning": "yellow", "drift": "red", "no_data": "grey"}


def test_model_dashboard_variables(built: dict[str, dict[str, Any]]) -> None:
    variables = _variables(built["model.json"])
    assert variables["model"]["query"] == "label_values(tidewatch_model_status, model)"
    assert variables["version"]["query"] == (
        'label_values(tidewatch_model_status{model="$model"}, version)'
    )
    feature = variables["feature"]
    assert feature["query"] == (
        'label_values(tidewatch_feature_drift_statistic{model="$model", version="$version"}, '
        "feature)"
    )
    assert feature["multi"] is True and feature["includeAll"] is True
    for name in ("model", "version", "feature"):
        assert variables[name]["type"] == "query"
        assert variables[name]["datasource"] == DATASOURCE
    assert variables["tidewatch_url"]["query"] == "http://localhost:8000"
    for title, expr in panel_queries(built["model.json"]):
        if "feature_drift" in expr:
            assert 'feature=~"$feature"' in expr, title


def test_model_dashboard_links_the_last_run(built: dict[str, dict[str, Any]]) -> None:
    panel = _panel(built["model.json"], "Last detection run")
    assert panel["type"] == "stat"
    assert [target["expr"] for target in panel["targets"]] == [
        'max by (monitor) (tidewatch_monitor_last_run_id{model="$model", version="$version"})'
    ]
    urls = [link["url"] for link in panel["fieldConfig"]["defaults"]["links"]]
    assert urls == ["${tidewatch_url}/api/v1/models/${model}/report?run=${__value.raw}"]


def test_model_dashboard_compares_estimated_and_realized(built: dict[str, dict[str, Any]]) -> None:
    exprs = [e for t, e in panel_queries(built["model.json"]) if t.startswith("Estimated")]
    assert any("tidewatch_performance_estimated" in e for e in exprs)
    assert any("tidewatch_performance_realized" in e for e in exprs)
    assert all("by (monitor, metric)" in e for e in exprs)


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_layout_svg_draws_every_panel(built: dict[str, dict[str, Any]], name: str) -> None:
    svg = layout_svg(built[name])
    root = ET.fromstring(svg)
    rects = root.findall("{http://www.w3.org/2000/svg}rect")
    assert len(rects) == len(all_panels(built[name]))
    assert len([r for r in rects if r.get("class") == "panel"]) == len(_panels(built[name]))
    picture = PICTURES / name.replace(".json", ".svg")
    assert picture.read_text(encoding="utf-8") == svg, (
        f"{picture.name} is out of date: run `python -m dashboards.build`"
    )


def test_provisioning_files_parse() -> None:
    datasources = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yaml").read_text())
    (prometheus,) = datasources["datasources"]
    assert prometheus["name"] == "Prometheus" and prometheus["uid"] == "prometheus"
    assert prometheus["type"] == "prometheus" and prometheus["isDefault"] is True
    assert prometheus["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "tidewatch.yaml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["folder"] == "Tidewatch"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards/tidewatch"
