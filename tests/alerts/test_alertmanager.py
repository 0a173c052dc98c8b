"""Alerts pushed to a real Alertmanager (Debian's prometheus-alertmanager) on loopback.

What Alertmanager 0.25 does on resolve: an alert posted with ``endsAt`` in the past counts as
received resolved (``alertmanager_alerts_received_total{status="resolved"}``) and is no longer
listed by ``GET /api/v2/alerts`` at all, whatever the ``active``/``silenced``/``inhibited``
filters say (its API drops alerts whose ``endsAt`` is past); the ``alertmanager_alerts``
gauge for active alerts goes back to 0.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import httpx
import pytest

from alerts.alertmanager import AlertmanagerChannel, alert, alertname
from alerts.channel import Channel, DeliveryError
from alerts.notification import Notification
from tests.alerts.conftest import DASHBOARD, REPORT, free_port


def ours(url: str, notification: Notification, **params: str) -> list[dict[str, Any]]:
    alerts = httpx.get(f"{url}/api/v2/alerts", params=params, timeout=5).json()
    return [
        a for a in alerts if a["labels"].get("tidewatch_alert_id") == str(notification.alert_id)
    ]


def received(url: str, status: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    match = re.search(
        rf'^alertmanager_alerts_received_total\{{status="{status}",version="v2"\}} (\S+)$',
        text,
        re.M,
    )
    assert match, "alertmanager_alerts_received_total missing from /metrics"
    return float(match.group(1))


@pytest.mark.integration
def test_fire_then_resolve(alertmanager: str, firing: Notification, resolved: Notification) -> None:
    channel: Channel = AlertmanagerChannel(url=alertmanager + "/", timeout=5)
    assert channel.name == "alertmanager"
    channel.send(firing)

    [active] = ours(alertmanager, firing, active="true")
    assert active["status"]["state"] == "active"
    assert active["labels"] == {
        "alertname": "TidewatchDrift",
        "model": "plankton",
        "version": "1",
        "severity": "warning",
        "rule": "drift-3-windows",
        "tidewatch_alert_id": "42",
    }
    assert active["annotations"] == {
        "summary": firing.summary,
        "dashboard": DASHBOARD,
        "report": REPORT,
    }
    assert active["startsAt"].startswith("2024-05-01T06:00:00")
    assert active["generatorURL"] == DASHBOARD

    channel.send(resolved)
    assert received(alertmanager, "resolved") == 1
    # 0.25 lists no alert whose endsAt is past, whatever the filters
    assert ours(alertmanager, firing) == []
    assert ours(alertmanager, firing, active="true") == []
    assert ours(alertmanager, firing, active="false", silenced="true", inhibited="true") == []


@pytest.mark.integration
def test_invalid_alert_is_permanent(alertmanager: str, firing: Notification) -> None:
    # resolved before it started: Alertmanager answers 400, retrying cannot help
    broken = dataclasses.replace(
        firing, state="resolved", resolved_at=firing.started_at.replace(year=2020)
    )
    with pytest.raises(DeliveryError) as info:
        AlertmanagerChannel(url=alertmanager, timeout=5).send(broken)
    assert info.value.retryable is False


def test_unreachable_is_retryable(firing: Notification) -> None:
    with pytest.raises(DeliveryError) as info:
        AlertmanagerChannel(url=f"http://127.0.0.1:{free_port()}", timeout=5).send(firing)
    assert info.value.retryable is True


def test_alert_body(firing: Notification, resolved: Notification) -> None:
    assert alertname("no_telemetry") == "TidewatchNoTelemetry"
    assert alertname("performance") == "TidewatchPerformance"
    body = alert(firing)
    assert body["startsAt"] == "2024-05-01T06:00:00.000Z" and "endsAt" not in body
    assert alert(resolved)["endsAt"].endswith("Z")
    bare = alert(dataclasses.replace(firing, dashboard_url=None, report_url=None))
    assert set(bare["annotations"]) == {"summary"} and "generatorURL" not in bare
    assert (
        alert(dataclasses.replace(firing, report_url=None, dashboard_url=None, summary=""))[
            "annotations"
        ]
        == {}
    )
