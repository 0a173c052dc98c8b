"""Signed webhooks against a real HTTP server on loopback that verifies every signature."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from alerts.channel import Channel, DeliveryError
from alerts.notification import FeatureDrift, Notification
from alerts.webhook import WebhookChannel, encode, payload, sign, verify
from tests.alerts.conftest import DASHBOARD, REPORT, free_port

SECRET = "retrain-me"


@dataclass
class Receiver:
    """What the server answers (in turn; the last one repeats) and what it saw."""

    url: str
    statuses: list[int] = field(default_factory=lambda: [200])
    bodies: list[bytes] = field(default_factory=list)
    verified: list[bool] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            ok = verify(
                SECRET,
                self.headers.get("X-Tidewatch-Timestamp", ""),
                body,
                self.headers.get("X-Tidewatch-Signature", ""),
            )
            state.bodies.append(body)
            state.verified.append(ok)
            state.headers.append(dict(self.headers))
            status = state.statuses.pop(0) if len(state.statuses) > 1 else state.statuses[0]
            self.send_response(status if ok else 401)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/retrain"
    yield state
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_retried_until_accepted(receiver: Receiver, firing: Notification) -> None:
    receiver.statuses = [503, 503, 200]
    channel: Channel = WebhookChannel(url=receiver.url, secret=SECRET, timeout=5)
    assert channel.name == "webhook"
    for _ in range(2):  # the outbox's backoff loop would do this
        with pytest.raises(DeliveryError) as info:
            channel.send(firing)
        assert info.value.retryable is True
    channel.send(firing)
    assert receiver.verified == [True, True, True]
    assert receiver.headers[0]["Content-Type"] == "application/json"
    event = json.loads(receiver.bodies[-1])
    assert event == payload(firing)
    assert event["event"] == "tidewatch.alert" and event["state"] == "firing"
    assert event["alert_id"] == 42 and event["model"] == "plankton" and event["run_id"] == 981
    assert event["started_at"] == "2024-05-01T06:00:00+00:00"
    assert event["drifted"][0] == {
        "feature": "brightness",
        "detector": "ks",
        "statistic": 0.412,
        "p_value": 1.2e-9,
    }
    assert event["links"] == {"dashboard": DASHBOARD, "report": REPORT}
    assert "reference" not in json.dumps(event)  # no histograms


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(400, False), (404, False), (408, True), (429, True), (500, True), (502, True)],
)
def test_status_decides_retry(
    receiver: Receiver, firing: Notification, status: int, retryable: bool
) -> None:
    receiver.statuses = [status]
    with pytest.raises(DeliveryError) as info:
        WebhookChannel(url=receiver.url, secret=SECRET, timeout=5).send(firing)
    assert info.value.retryable is retryable
    assert str(status) in str(info.value)


def test_wrong_secret_is_refused(receiver: Receiver, firing: Notification) -> None:
    with pytest.raises(DeliveryError) as info:
        WebhookChannel(url=receiver.url, secret="guess", timeout=5).send(firing)
    assert info.value.retryable is False  # the receiver's 401
    assert receiver.verified == [False]


def test_connection_refused_is_retryable(firing: Notification) -> None:
    channel = WebhookChannel(url=f"http://127.0.0.1:{free_port()}/", secret=SECRET, timeout=5)
    with pytest.raises(DeliveryError) as info:
        channel.send(firing)
    assert info.value.retryable is True


def test_verify(resolved: Notification) -> None:
    body = encode(resolved)
    now = int(time.time())
    signature = sign(SECRET, now, body)
    assert signature.startswith("sha256=") and len(signature) == 7 + 64
    assert verify(SECRET, now, body, signature)
    assert verify(SECRET.encode(), str(now), body, signature)
    assert not verify("other", now, body, signature)  # wrong secret
    assert not verify(SECRET, now, body.replace(b"resolved", b"firing"), signature)  # tampered
    assert not verify(SECRET, now + 1, body, signature)  # the timestamp is signed too
    assert not verify(SECRET, now, body, signature.upper())
    assert not verify(SECRET, now, body, "")
    assert not verify(SECRET, "yesterday", body, signature)
    stale = now - 301
    assert not verify(SECRET, stale, body, sign(SECRET, stale, body))  # a replay
    assert verify(SECRET, stale, body, sign(SECRET, stale, body), tolerance=600)
    assert not verify(SECRET, now, body, signature, now=now + 3600)


def test_payload_resolved_and_non_finite(resolved: Notification, firing: Notification) -> None:
    event = payload(resolved)
    assert event["state"] == "resolved" and event["resolved_at"] is not None
    assert event["drifted"] == []
    odd = FeatureDrift("x", "ks", float("nan"), float("inf"))
    body = encode(dataclasses.replace(firing, drifted=[odd]))
    assert json.loads(body)["drifted"][0]["statistic"] is None  # strict JSON, no NaN


def test_secret_required() -> None:
    with pytest.raises(ValueError):
        WebhookChannel(url="http://127.0.0.1/", secret="")
