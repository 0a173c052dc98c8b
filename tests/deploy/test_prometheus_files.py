"""deploy/prometheus: promtool accepts the configuration and the rules, the rules' unit tests
pass, and the rules use only the metric names of the /metrics contract (issue #6).

promtool comes with Debian's ``prometheus`` package (.ci/run installs it): without it these
tests skip on a developer's machine and fail under CI=true.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml

from alerts.alertmanager import alertname
from alerts.rules import Kind
from tests.conftest import service_missing
from tests.metric_contract import SERIES

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
CONFIG = PROMETHEUS / "prometheus.yml"
RULES = PROMETHEUS / "rules" / "tidewatch.yml"
RULES_TEST = PROMETHEUS / "rules" / "tidewatch_test.yml"
# optional, not loaded by prometheus.yml: model alerts for sites that alert from Prometheus
MODEL_RULES = PROMETHEUS / "rules" / "tidewatch_model_alerts.yml"
MODEL_RULES_TEST = PROMETHEUS / "rules" / "tidewatch_model_alerts_test.yml"

CONTRACT = SERIES
CONTRACT_PREFIXES = ("process_", "python_")  # the prometheus-client defaults
PROMETHEUS_OWN = {"ALERTS", "ALERTS_FOR_STATE", "up"}

PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
}


def promtool(*args: str | Path) -> str:
    """Run promtool from the repository root; exit code 0 and no warning, else the test fails."""
    exe = shutil.which("promtool")
    if exe is None:
        service_missing("promtool", "not on PATH (Debian package prometheus)")
    proc = subprocess.run(
        [exe, *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "FAILED" not in output, output
    assert "WARNING" not in output.upper(), output
    return output


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def rules(*files: Path) -> list[dict[str, Any]]:
    return [
        rule
        for path in files or (RULES, MODEL_RULES)
        for group in load(path)["groups"]
        for rule in group["rules"]
    ]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (a lexical approximation, enough here)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges and subqueries
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for match in re.finditer(r"(?<![\w:.])([a-zA-Z_:][\w:]*)(\s*\()?", expr):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in PROMQL_WORDS or re.fullmatch(r"\d+[smhdwy]", name):
            continue
        names.add(name)
    return names


def test_metric_names_parse() -> None:
    expr = (
        'sum by (model) (rate(a_total{model=~"x|y"}[5m])) / on (model) group_left b'
        " or absent(c) > bool 0.5 and time() - max without (instance) (d:e:f offset 5m)"
    )
    assert metric_names(expr) == {"a_total", "b", "c", "d:e:f"}


def test_config_is_valid() -> None:
    output = promtool("check", "config", "--lint=all", "--lint-fatal", CONFIG)
    assert "SUCCESS" in output
    # the rule files it loads are checked with it: the unit tests must not be among them
    assert "tidewatch_test.yml" not in output


def test_config_scrapes_tidewatch() -> None:
    config = load(CONFIG)
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "tidewatch"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert job["scrape_interval"] == "15s"
    targets = {target for static in job["static_configs"] for target in static["targets"]}
    assert targets == {"tidewatch:8000", "tidewatch-worker:9464"}
    (alertmanagers,) = config["alerting"]["alertmanagers"]
    assert alertmanagers["static_configs"][0]["targets"] == ["alertmanager:9093"]
    for pattern in config["rule_files"]:
        loaded = list(PROMETHEUS.glob(pattern))
        assert loaded, pattern
        assert RULES_TEST not in loaded and MODEL_RULES_TEST not in loaded
        assert MODEL_RULES not in loaded  # optional: the documented path is Tidewatch's rules


def test_loaded_rules_do_not_duplicate_tidewatch_alerts() -> None:
    """Following the README (Tidewatch's own rules, posted to Alertmanager) with this
    configuration gives each model alert once: Prometheus raises only operational alerts."""
    config = load(CONFIG)
    loaded = [path for pattern in config["rule_files"] for path in PROMETHEUS.glob(pattern)]
    alerts = {rule["alert"] for rule in rules(*loaded) if "alert" in rule}
    assert alerts == {
        "TidewatchMonitorStale",
        "TidewatchSchedulerNoLeader",
        "TidewatchIngestRejections",
    }
    tidewatch_own = {alertname(kind) for kind in get_args(Kind)}
    optional = {rule["alert"] for rule in rules(MODEL_RULES) if "alert" in rule}
    assert not alerts & (tidewatch_own | optional)
    assert optional == {
        "TidewatchModelDrift",
        "TidewatchPerformanceBelowThreshold",
        "TidewatchNoTelemetry",
    }


@pytest.mark.parametrize("path", [RULES, MODEL_RULES], ids=lambda p: p.name)
def test_rules_are_valid(path: Path) -> None:
    output = promtool("check", "rules", "--lint=all", "--lint-fatal", path)
    assert "SUCCESS" in output


@pytest.mark.parametrize("path", [RULES_TEST, MODEL_RULES_TEST], ids=lambda p: p.name)
def test_rules_unit_tests_pass(path: Path) -> None:
    output = promtool("test", "rules", path)
    assert "SUCCESS" in output


def test_rules_use_contract_metric_names() -> None:
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    unknown = {}
    for rule in rules():
        names = metric_names(rule["expr"])
        assert names, rule
        bad = {
            name
            for name in names
            if name not in CONTRACT | recorded | PROMETHEUS_OWN
            and not name.startswith(CONTRACT_PREFIXES)
        }
        if bad:
            unknown[rule.get("record") or rule["alert"]] = sorted(bad)
    assert not unknown, f"metric names outside the contract: {unknown}"


def test_recording_rule_names_follow_level_metric_operations() -> None:
    for rule in rules():
        if "record" in rule:
            assert re.fullmatch(r"[a-z_]+:tidewatch_[a-z_]+:[a-z0-9_]+", rule["record"]), rule


@pytest.mark.parametrize(
    "alert",
    [
        "TidewatchModelDrift",
        "TidewatchPerformanceBelowThreshold",
        "TidewatchNoTelemetry",
        "TidewatchMonitorStale",
        "TidewatchSchedulerNoLeader",
        "TidewatchIngestRejections",
    ],
)
def test_alert_has_severity_and_annotations(alert: str) -> None:
    (rule,) = [rule for rule in rules() if rule.get("alert") == alert]
    assert rule["labels"]["severity"] in {"warning", "critical"}
    assert {"summary", "description", "dashboard"} <= set(rule["annotations"])
    assert rule["annotations"]["dashboard"].startswith("/d/tidewatch-model")
    if "model" in rule["annotations"]["summary"]:
        assert "var-model={{ $labels.model }}" in rule["annotations"]["dashboard"]
