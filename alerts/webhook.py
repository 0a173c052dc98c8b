"""Signed JSON webhooks, meant to start a retraining job (or anything else) when an alert fires.

Payload
-------
``POST <url>`` with ``Content-Type: application/json`` and this body (schema 1; fields may be
added, never renamed)::

    {
      "event": "tidewatch.alert",
      "schema": 1,
      "state": "firing",                      # or "resolved"
      "alert_id": 42,
      "rule": "drift-3-windows",
      "kind": "drift",                        # drift | performance | quality | no_telemetry
      "model": "plankton",
      "version": "1",
      "severity": "warning",                  # or "critical"
      "summary": "2 of 5 features drifted for 3 windows",
      "started_at": "2024-05-01T06:00:00+00:00",
      "resolved_at": null,                    # ISO 8601 once resolved
      "run_id": 981,                          # the detection run that fired it, or null
      "drifted": [                            # most drifted first; no histograms
        {"feature": "brightness", "detector": "ks", "statistic": 0.41, "p_value": 1.2e-09}
      ],
      "metric": null,                         # performance alerts: e.g. "accuracy"
      "threshold": null,
      "details": {},                          # kind-specific facts
      "links": {"dashboard": "https://grafana/...", "report": "https://tidewatch/..."}
    }

Non-finite numbers (NaN, infinity) are sent as ``null`` so every JSON parser accepts the body.
A receiver should answer 2xx quickly (start the job asynchronously). 5xx, 408 and 429 are
retried by the outbox with backoff; any other 4xx is a permanent failure. Deliveries are at
least once: deduplicate on ``(alert_id, state)``.

Signature
---------
Two headers::

    X-Tidewatch-Timestamp: 1714543200                      (unix seconds, when it was sent)
    X-Tidewatch-Signature: sha256=<hex HMAC-SHA256(secret, f"{timestamp}.".encode() + body)>

The timestamp is signed with the body so a captured request cannot be replayed later: reject
timestamps more than a few minutes away from your clock. Compare in constant time, and verify
the raw body bytes before parsing them. A receiver in Python (any framework)::

    from alerts.webhook import verify   # or copy its ten lines

    def handle(headers, body: bytes):
        if not verify(SECRET, headers["X-Tidewatch-Timestamp"], body,
                      headers["X-Tidewatch-Signature"]):
            return 401
        event = json.loads(body)
        if event["state"] == "firing" and event["kind"] == "drift":
            start_retraining(event["model"], event["version"], event["run_id"])
        return 202
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from alerts.channel import post_json
from alerts.notification import Notification

EVENT = "tidewatch.alert"
SCHEMA = 1
TIMESTAMP_HEADER = "X-Tidewatch-Timestamp"
SIGNATURE_HEADER = "X-Tidewatch-Signature"


def _finite(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def payload(notification: Notification) -> dict[str, Any]:
    """The documented JSON payload (see the module docstring) for one notification."""
    n = notification
    return {
        "event": EVENT,
        "schema": SCHEMA,
        "state": n.state,
        "alert_id": n.alert_id,
        "rule": n.rule,
        "kind": n.kind,
        "model": n.model,
        "version": n.version,
        "severity": n.severity,
        "summary": n.summary,
        "started_at": _iso(n.started_at),
        "resolved_at": _iso(n.resolved_at),
        "run_id": n.run_id,
        "drifted": [
            {
                "feature": d.feature,
                "detector": d.detector,
                "statistic": _finite(d.statistic),
                "p_value": _finite(d.p_value),
            }
            for d in n.drifted
        ],
        "metric": n.metric,
        "threshold": _finite(n.threshold),
        "details": n.details,
        "links": {"dashboard": n.dashboard_url, "report": n.report_url},
    }


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON: {value!r}")


def encode(notification: Notification) -> bytes:
    """The exact body bytes that are signed and sent."""
    return json.dumps(
        payload(notification), default=_json_default, separators=(",", ":"), sort_keys=True
    ).encode()


def _key(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def sign(secret: str | bytes, timestamp: int | str, body: bytes) -> str:
    """The signature header value: ``sha256=`` and the hex HMAC of ``"{timestamp}." + body``."""
    digest = hmac.new(_key(secret), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(
    secret: str | bytes,
    timestamp: int | str,
    body: bytes,
    signature: str,
    tolerance: float = 300,
    now: float | None = None,
) -> bool:
    """For receivers: True when ``signature`` signs ``body`` at a ``timestamp`` near ``now``.

    Refuses timestamps more than ``tolerance`` seconds in the past or future (replays, badly
    skewed clocks), and compares in constant time.
    """
    try:
        sent = int(str(timestamp).strip())
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - sent) > tolerance:
        return False
    expected = sign(secret, sent, body).encode()
    return hmac.compare_digest(expected, signature.strip().encode("utf-8", "replace"))


@dataclass(frozen=True, kw_only=True)
class WebhookChannel:
    """POSTs the signed payload to one URL."""

    url: str
    secret: str = field(repr=False)
    timeout: float = 10.0
    name: str = field(default="webhook", init=False)

    def __post_init__(self) -> None:
        if not self.secret:
            # an unsigned webhook would let anyone on the network start a retraining job
            raise ValueError("a webhook needs a secret to sign its payloads")

    def send(self, notification: Notification) -> None:
        body = encode(notification)
        timestamp = int(time.time())
        headers = {
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(self.secret, timestamp, body),
            "User-Agent": "tidewatch-webhook",
        }
        post_json(self.url, body, headers, self.timeout, "webhook")
