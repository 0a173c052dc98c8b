"""Alerts pushed to Prometheus Alertmanager, for platforms that route everything through it.

Alertmanager's v2 API takes a list of alerts; an alert is identified by its label set, so the
labels hold what identifies a Tidewatch alert (rule, model, version, alert id) and the
annotations what only describes it. A firing alert is sent without ``endsAt``: Alertmanager
then resolves it by itself after its ``resolve_timeout`` (5 minutes by default) unless it is
sent again, so the lifecycle must re-send firing alerts more often than that (Prometheus does
the same). A resolved alert is sent with ``endsAt`` = ``resolved_at``, in the past, and
Alertmanager marks it resolved at once (it no longer lists it under ``GET /api/v2/alerts``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from alerts.channel import post_json
from alerts.effect_text import effect_text, feature_label
from alerts.notification import Notification

MAX_EFFECTS = 5  # drifted features whose effect the annotation says; the report lists them all


def alertname(kind: str) -> str:
    """``drift`` -> ``TidewatchDrift``, ``no_telemetry`` -> ``TidewatchNoTelemetry``."""
    return "Tidewatch" + "".join(part.capitalize() for part in kind.split("_") if part)


def rfc3339(value: datetime) -> str:
    """Alertmanager (Go) wants RFC 3339 with a zone; naive datetimes are taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def alert(notification: Notification) -> dict[str, Any]:
    """One Alertmanager alert (the ``postableAlert`` of its OpenAPI spec)."""
    n = notification
    labels = {
        "alertname": alertname(n.kind),
        "model": n.model,
        "version": n.version,
        "severity": n.severity,
        "rule": n.rule,
        "tidewatch_alert_id": str(n.alert_id),
    }
    annotations = {
        "summary": n.summary,
        "dashboard": n.dashboard_url,
        "report": n.report_url,
        "changes": "; ".join(n.changes),  # what got worse since the last notice
        "effects": effects(n),
    }
    body: dict[str, Any] = {
        # an empty label value means "no such label" to Alertmanager: leave it out
        "labels": {k: v for k, v in labels.items() if v},
        "annotations": {k: v for k, v in annotations.items() if v},
        "startsAt": rfc3339(n.started_at),
    }
    if n.dashboard_url or n.report_url:
        body["generatorURL"] = n.dashboard_url or n.report_url
    if n.state == "resolved":
        body["endsAt"] = rfc3339(n.resolved_at or datetime.now(UTC))
    return body


def effects(notification: Notification) -> str:
    """How much the most drifted features moved, in their own units, one per line (annotations
    are strings): ``brightness: mean 0.55 -> 0.35 (-3.97 sd)``; "" when none says it."""
    lines = [
        f"{feature_label(d.feature)}: {text}"
        for d in notification.drifted[:MAX_EFFECTS]
        if (text := effect_text(d.effect))
    ]
    return "\n".join(lines)


@dataclass(frozen=True, kw_only=True)
class AlertmanagerChannel:
    """POSTs to ``{url}/api/v2/alerts``; ``url`` is Alertmanager's base URL."""

    url: str
    timeout: float = 10.0
    name: str = field(default="alertmanager", init=False)

    def send(self, notification: Notification) -> None:
        body = json.dumps([alert(notification)]).encode()
        post_json(f"{self.url.rstrip('/')}/api/v2/alerts", body, {}, self.timeout, "Alertmanager")
