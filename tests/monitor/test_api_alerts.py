"""Alert rules and alerts through the API and the CLI: rules refused when they do not fit, an
alert fired by a manual run, its history, acknowledging and silencing it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from monitor.cli import app
from tests.conftest import make_key
from tests.monitor.test_api_detection import DETECT, post, rows, upload_reference

RULES = "/api/v1/models/plankton/alerts/rules"
DRIFT_RULE = {"name": "drift-now", "kind": "drift", "severity": "critical"}


def fire(client: TestClient, admin: dict[str, str]) -> dict[str, Any]:
    body = {"rules": [DRIFT_RULE], "recipients": ["owner@example.org"]}
    put = client.put(RULES, json=body, headers=admin)
    assert put.status_code == 200, put.text
    upload_reference(client, admin)
    post(client, admin, rows(300, shift=3, seed=2))
    (run,) = client.post(DETECT, headers=admin).json()
    assert run["status"] == "drift"
    (alert,) = client.get("/api/v1/alerts", params={"state": "firing"}, headers=admin).json()
    return alert


def test_rules_are_checked_against_the_model(
    client: TestClient, admin: dict[str, str], model: dict[str, Any]
) -> None:
    bad = {"rules": [{"name": "p", "kind": "performance", "metric": "accuracy", "below": 0.9}]}
    refused = client.put(RULES, json=bad, headers=admin)
    assert refused.status_code == 422 and "computes no performance" in refused.text
    unknown = {"rules": [{"name": "d", "kind": "drift", "features": ["nope"]}]}
    assert "unknown features" in client.put(RULES, json=unknown, headers=admin).text
    assert client.get(RULES, headers=admin).json() == {"rules": [], "recipients": []}
    read = make_key(client, "read")
    assert client.put(RULES, json={"rules": []}, headers=read).status_code == 403


def test_an_alert_fires_and_is_acknowledged_and_silenced(
    client: TestClient, admin: dict[str, str], model: dict[str, Any]
) -> None:
    alert = fire(client, admin)
    assert (alert["model"], alert["rule"], alert["severity"]) == (
        "plankton",
        "drift-now",
        "critical",
    )
    full = client.get(f"/api/v1/alerts/{alert['id']}", headers=admin).json()
    # no channel is configured in this test app: the history says so
    assert [e["event"] for e in full["events"]] == ["fired", "undelivered"]
    acked = client.post(f"/api/v1/alerts/{alert['id']}/ack", json={"by": "ana"}, headers=admin)
    assert acked.status_code == 200 and acked.json()["acknowledged_by"] == "ana"
    silenced = client.post(
        f"/api/v1/alerts/{alert['id']}/silence", json={"seconds": 3600}, headers=admin
    )
    assert silenced.json()["silenced_until"] is not None
    assert (
        client.post(
            f"/api/v1/alerts/{alert['id']}/silence", json={"seconds": -1}, headers=admin
        ).status_code
        == 422
    )
    unsilenced = client.delete(f"/api/v1/alerts/{alert['id']}/silence", headers=admin).json()
    assert unsilenced["silenced_until"] is None
    events = [e["event"] for e in unsilenced["events"]]
    assert events == ["fired", "undelivered", "acknowledged", "silenced", "unsilenced"]
    assert client.get("/api/v1/alerts/999", headers=admin).status_code == 404
    # a calm window resolves it; a resolved alert cannot be acknowledged
    post(client, admin, rows(300, shift=0, seed=3, start=300))
    client.post(DETECT, headers=admin)
    (resolved,) = client.get("/api/v1/alerts", params={"state": "resolved"}, headers=admin).json()
    assert resolved["id"] == alert["id"] and resolved["resolved_at"] is not None
    assert client.post(f"/api/v1/alerts/{alert['id']}/ack", headers=admin).status_code == 409


def test_the_alerts_cli(
    client: TestClient, admin: dict[str, str], model: dict[str, Any], tmp_path: Path, db_url: str
) -> None:
    alert = fire(client, admin)
    config = tmp_path / "tw.toml"
    config.write_text(f'database_url = "{db_url}"\n')
    runner = CliRunner()
    listed = runner.invoke(
        app, ["alerts", "list", "--state", "firing", "--wide", "-c", str(config)]
    )
    assert listed.exit_code == 0 and "firing" in listed.output and "critic" in listed.output
    acked = runner.invoke(app, ["alerts", "ack", str(alert["id"]), "--by", "bo", "-c", str(config)])
    assert acked.exit_code == 0 and "acknowledged" in acked.output
    quiet = runner.invoke(
        app, ["alerts", "silence", str(alert["id"]), "--hours", "2", "-c", str(config)]
    )
    assert quiet.exit_code == 0 and "silenced" in quiet.output
    assert runner.invoke(app, ["alerts", "ack", "999", "-c", str(config)]).exit_code == 1
    full = client.get(f"/api/v1/alerts/{alert['id']}", headers=admin).json()
    assert full["acknowledged_by"] == "bo" and full["silenced_until"] is not None
