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
        {"feature": "brightness", "detector": "ks", "statistic": 0.41, "p_value": 1.2e-09,
         "effect": {                          # how much it moved, in its own units, or null
           "kind": "numeric",
           "reference": {"mean": 0.55, "median": 0.55, "p5": 0.5, "p95": 0.6, "sd": 0.0504},
           "current": {"mean": 0.35, "median": 0.35, "p5": 0.3, "p95": 0.4, "sd": 0.0504},
           "mean_shift_sd": -3.97, "size": 3.97}}
      ],
      "metric": null,                         # performance alerts: e.g. "accuracy"
      "threshold": null,
      "details": {},                          # kind-specific facts
      "links": {"dashboard": "https://grafana/...", "report": "https://tidewatch/..."},
      "drifted_share": 0.4,                   # drift alerts: share of tested features, or null
      "changes": []                           # what got worse since the last notice
    }

``effect`` is the same object the results API serves for that feature (``GET
/api/v1/models/{name}/results``; every field is defined in ``detectors/effects.py``): for a
numeric feature the reference's and the window's mean, median, p5, p95 and sd and the mean's
shift in reference standard deviations; for a categorical one (``"kind": "categorical"``) the
share of each category in both (``shares``), ``new`` and ``vanished`` categories and
``total_variation``; for an embedding (``"kind": "vector"``) the mean's move (``mean_shift``)
and the reference components it moved along. ``size`` is one non-negative number per effect.
It is ``null`` for results stored before effects were (and for a multivariate ``"*"``).

A firing notice with ``changes`` is an escalation (the alert got materially worse), about a
newer run: to act on escalations too, deduplicate on ``(alert_id, state, run_id, changes)``.

Non-finite numbers (NaN, infinity) are sent as ``null`` so every JSON parser accepts the body.
A receiver should answer 2xx quickly (start the job asynchronously). 5xx, 408 and 429 are
retried by the outbox with backoff; any other 4xx is a permanent failure. Deliveries are at
least once: deduplicate on ``(alert_id, state)``.

Signature
---------
Four headers::

    X-Tidewatch-Timestamp: 1714543200           (unix seconds, when it was sent)
    X-Tidewatch-Delivery: 8c0f...-...           (a new UUID for every attempt, retries included)
    X-Tidewatch-Delivery-Signature: sha256=<hex HMAC-SHA256(secret,
                                    f"{timestamp}.{delivery}.".encode() + body)>
    X-Tidewatch-Signature: sha256=<hex HMAC-SHA256(secret, f"{timestamp}.".encode() + body)>

The timestamp is signed with the body so a captured request cannot be replayed later: reject
timestamps more than a few minutes away from your clock. Within those minutes a captured
request could still be sent again; the delivery id closes that gap. It is signed too, so it
cannot be swapped for a fresh one: remember the ids you accepted (for twice the tolerance, 10
minutes by default, since older timestamps are refused anyway) and refuse one you have seen.
``X-Tidewatch-Signature`` leaves the delivery id out, for receivers written before it existed.

Compare in constant time, and verify the raw body bytes before parsing them. A receiver in
Python (any framework)::

    from alerts.webhook import verify   # or copy its lines

    SEEN: set[str] = set()   # several receivers: a callable on a shared store (see verify)

    def handle(headers, body: bytes):
        if not verify(SECRET, headers["X-Tidewatch-Timestamp"], body,
                      headers["X-Tidewatch-Delivery-Signature"],
                      delivery=headers.get("X-Tidewatch-Delivery"), seen=SEEN):
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
import re
import threading
import time
import uuid
from collections.abc import Callable, MutableSet
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from alerts.channel import post_json
from alerts.notification import Notification

EVENT = "tidewatch.alert"
SCHEMA = 1
TIMESTAMP_HEADER = "X-Tidewatch-Timestamp"
SIGNATURE_HEADER = "X-Tidewatch-Signature"
DELIVERY_HEADER = "X-Tidewatch-Delivery"
DELIVERY_SIGNATURE_HEADER = "X-Tidewatch-Delivery-Signature"
# No dot and never a "{": so "<timestamp>.<delivery>." + body cannot be read as
# "<timestamp>." + another body (a JSON body starts with "{"), nor the other way round.
_DELIVERY_ID = re.compile(r"[A-Za-z0-9-]{1,128}")
_SEEN_LOCK = threading.Lock()  # check-and-add on a plain set is two steps


def _finite(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


def _finite_json(value: Any) -> Any:
    """``value`` (an effect: numbers, strings, lists and dicts) with NaN and infinity as None."""
    if isinstance(value, float):
        return _finite(value)
    if isinstance(value, dict):
        return {k: _finite_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_json(v) for v in value]
    return value


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
                "effect": _finite_json(d.effect),
            }
            for d in n.drifted
        ],
        "metric": n.metric,
        "threshold": _finite(n.threshold),
        "details": n.details,
        "links": {"dashboard": n.dashboard_url, "report": n.report_url},
        "drifted_share": _finite(n.drifted_share),
        "changes": n.changes,
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


def sign(
    secret: str | bytes, timestamp: int | str, body: bytes, delivery: str | None = None
) -> str:
    """A signature header value: ``sha256=`` and the hex HMAC of ``"{timestamp}." + body``, or
    of ``"{timestamp}.{delivery}." + body`` with a delivery id."""
    prefix = f"{timestamp}." if delivery is None else f"{timestamp}.{delivery}."
    digest = hmac.new(_key(secret), prefix.encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


Seen = MutableSet[str] | Callable[[str], bool]


def verify(
    secret: str | bytes,
    timestamp: int | str,
    body: bytes,
    signature: str,
    tolerance: float = 300,
    now: float | None = None,
    *,
    delivery: str | None = None,
    seen: Seen | None = None,
) -> bool:
    """For receivers: True when ``signature`` signs ``body`` at a ``timestamp`` near ``now``.

    Refuses timestamps more than ``tolerance`` seconds in the past or future (replays, badly
    skewed clocks), and compares in constant time.

    ``delivery``: the ``X-Tidewatch-Delivery`` header; ``signature`` is then the
    ``X-Tidewatch-Delivery-Signature`` header, which signs the id too. ``seen``: the delivery ids
    accepted before, to refuse a replay within the tolerance; a set (a new id is added), or a
    callable that records an id and returns True only when it was new (atomically, for a store
    shared by several receivers, e.g. Redis ``SET id 1 NX EX 600``). With ``seen``, a request
    without a delivery id is refused. Ids are recorded only once the signature is valid.
    """
    if seen is not None and delivery is None:
        return False
    if delivery is not None and not _DELIVERY_ID.fullmatch(delivery):
        return False
    if not _signed(secret, timestamp, body, signature, tolerance, now, delivery):
        return False
    return seen is None or delivery is None or _first_time(seen, delivery)


def _signed(
    secret: str | bytes,
    timestamp: int | str,
    body: bytes,
    signature: str,
    tolerance: float,
    now: float | None,
    delivery: str | None,
) -> bool:
    try:
        sent = int(str(timestamp).strip())
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - sent) > tolerance:
        return False
    expected = sign(secret, sent, body, delivery).encode()
    return hmac.compare_digest(expected, signature.strip().encode("utf-8", "replace"))


def _first_time(seen: Seen, delivery: str) -> bool:
    """Record ``delivery``; False when it was seen before."""
    if not isinstance(seen, MutableSet):
        return bool(seen(delivery))
    with _SEEN_LOCK:
        if delivery in seen:
            return False
        seen.add(delivery)
        return True


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
        # new for every attempt: a receiver that records ids before it has handled the request
        # would refuse an outbox retry carrying the same id for good (a 401 is not retried)
        delivery = str(uuid.uuid4())
        headers = {
            TIMESTAMP_HEADER: str(timestamp),
            DELIVERY_HEADER: delivery,
            DELIVERY_SIGNATURE_HEADER: sign(self.secret, timestamp, body, delivery),
            SIGNATURE_HEADER: sign(self.secret, timestamp, body),
            "User-Agent": "tidewatch-webhook",
        }
        post_json(self.url, body, headers, self.timeout, "webhook")
