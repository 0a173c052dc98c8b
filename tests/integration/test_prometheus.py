"""A real Prometheus scrapes a real ``tidewatch serve`` holding drifted demo data; every PromQL
expression of every panel of every generated dashboard, with the dashboard variables filled in,
returns data. The rules of deploy/prometheus are loaded too, so the alerts panel has data."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dashboards.build import build_all, panel_queries
from monitor.demo.run import run_demo
from monitor.server import free_port
from tests.conftest import service_missing
from tests.integration.serve_process import ServeProcess, tidewatch_serve

pytestmark = pytest.mark.integration
RULES = Path(__file__).parents[2] / "deploy" / "prometheus" / "rules" / "tidewatch.yml"
# the optional model alerts too: the demo's drift gives the alerts panel a pending alert
MODEL_RULES = RULES.with_name("tidewatch_model_alerts.yml")
VARIABLES = {
    "model": "plankton-demo",
    "version": "1",
    "feature": "brightness",
    "datasource": "prometheus",
    "__rate_interval": "1m",
    "__interval": "5s",
    "__range": "1m",
}


def fill(expr: str) -> str:
    """Grafana's variable syntaxes ($name, ${name}, ${name:format}, [[name]]) filled in."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name not in VARIABLES:
            raise KeyError(f"no test value for dashboard variable {name!r} in {expr!r}")
        return VARIABLES[name]

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)", value, expr)


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Any]:
    binary = shutil.which("prometheus")
    if binary is None:
        service_missing("Prometheus", "no prometheus binary (Debian package prometheus)")

    def start(target: str) -> tuple[str, subprocess.Popen[bytes]]:
        port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            f"rule_files: ['{RULES}', '{MODEL_RULES}']\n"
            "scrape_configs:\n"
            "  - job_name: tidewatch\n"
            f"    static_configs: [{{targets: ['{target}']}}]\n"
        )
        log = (tmp_path / "prometheus.log").open("wb")
        proc = subprocess.Popen(
            [
                str(binary),
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=log,
        )
        procs.append(proc)
        return f"http://127.0.0.1:{port}", proc

    procs: list[subprocess.Popen[bytes]] = []
    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=30)


def query(base: str, expr: str) -> list[Any]:
    answer = httpx.get(f"{base}/api/v1/query", params={"query": expr}, timeout=30).json()
    assert answer["status"] == "success", (expr, answer)
    result: list[Any] = answer["data"]["result"]
    return result


def wait_for(condition: Any, what: str, timeout: float = 120.0) -> None:
    # a deadline for a hung test, not a speed requirement
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except (httpx.HTTPError, ValueError):
            pass  # Prometheus answers 503 in plain text until it is ready
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.5)


def _exercise(server: ServeProcess) -> None:
    """What a live service sees: monitors on a 1 s schedule, telemetry, one bad request."""
    key = server.cli("keys", "create", "--scope", "admin").splitlines()[-1]
    # a deadline for a hung request, not a speed requirement: a detect runs the default
    # monitor's joint stage (permutations) while the 1 s schedule runs the same monitors
    http = httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=120
    )
    monitors = http.get("/api/v1/models/plankton-demo/monitors").json()
    for m in monitors:
        m["schedule"] = {"every": 1}
    assert http.put("/api/v1/models/plankton-demo/monitors", json=monitors).status_code == 200
    from monitor.demo.data import generate

    records = generate(50, drifted=True, seed=99)
    for i, r in enumerate(records):
        r["id"] = f"live-{i}"
    sent = http.post("/api/v1/models/plankton-demo/telemetry", json={"records": records})
    assert sent.status_code == 200, sent.text
    bad = http.post("/api/v1/models/plankton-demo/telemetry", content=b"{broken")
    assert bad.status_code == 400
    assert http.post("/api/v1/models/plankton-demo/detect").status_code == 200
    http.close()


def test_every_dashboard_query_returns_data_from_a_real_prometheus(
    tmp_path: Path, prometheus: Any
) -> None:
    demo = run_demo(tmp_path / "demo")
    assert demo.run["status"] == "drift"
    database = f"sqlite:///{demo.workdir / 'tidewatch.db'}"
    env = {
        "TIDEWATCH_SCHEDULER_SYNC_SECONDS": "1",
        "TIDEWATCH_LEADER_POLL_SECONDS": "0.5",
        "TIDEWATCH_METRICS_CACHE_SECONDS": "0",
        "TIDEWATCH_DEVICE": "cpu",
    }
    with tidewatch_serve(database, tmp_path / "serve.log", extra_env=env) as server:
        _exercise(server)
        base, _ = prometheus(server.url.removeprefix("http://"))
        wait_for(
            lambda: (
                query(base, 'count_over_time(up{job="tidewatch"}[1m]) >= 5')
                and query(base, "tidewatch_scheduler_lag_seconds_count > 0")
                and query(base, 'ALERTS{alertname=~"Tidewatch.*"}')
            ),
            "five scrapes, a scheduled run and the rules' first evaluation",
        )
        assert query(base, 'up{job="tidewatch"} == 1')
        checked: list[str] = []
        empty: list[str] = []
        dashboards = build_all()
        for name, dashboard in dashboards.items():
            for title, expr in panel_queries(dashboard):
                filled = fill(expr)
                checked.append(f"{name} / {title}: {filled}")
                if not query(base, filled):
                    empty.append(f"{name} / {title}: {filled}")
    assert len(checked) >= 15, checked
    assert not empty, "queries without data:\n" + "\n".join(empty)
