"""Signed webhooks against a real HTTP server on loopback that verifies every signature."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator

import httpx
import pytest

from alerts.channel import Channel, DeliveryError
from alerts.notification import FeatureDrift, Notification
from alerts.webhook import (
    DELIVERY_HEADER,
    DELIVERY_SIGNATURE_HEADER,
    WebhookChannel,
    encode,
    payload,
    sign,
    verify,
)
from tests.alerts.conftest import DASHBOARD, REPORT, free_port
from tests.alerts.receiver import Receiver, webhook_receiver

SECRET = "retrain-me"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver(SECRET) as state:
        yield state


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
    assert receiver.accepted == [True, True, True]
    # every attempt has its own id: a retry is not taken for a replay
    assert len({h[DELIVERY_HEADER] for h in receiver.headers}) == 3
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
        "effect": None,  # the fixture's notice predates effects
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
    effect = {"kind": "numeric", "reference": {"mean": 1.0, "sd": 0.0}, "current": {"mean": 2.0}}
    odd = FeatureDrift("x", "ks", 0.5, 0.01, effect={**effect, "mean_shift_sd": float("inf")})
    sent = json.loads(encode(dataclasses.replace(firing, drifted=[odd])))["drifted"][0]["effect"]
    assert sent == {**effect, "mean_shift_sd": None}


def test_secret_required() -> None:
    with pytest.raises(ValueError):
        WebhookChannel(url="http://127.0.0.1/", secret="")


def test_a_replayed_delivery_is_refused(receiver: Receiver, firing: Notification) -> None:
    WebhookChannel(url=receiver.url, secret=SECRET, timeout=5).send(firing)
    captured = receiver.headers[0]
    replay = {
        name: captured[name]
        for name in (
            "Content-Type",
            "X-Tidewatch-Timestamp",
            "X-Tidewatch-Signature",
            DELIVERY_HEADER,
            DELIVERY_SIGNATURE_HEADER,
        )
    }
    answer = httpx.post(receiver.url, content=receiver.bodies[0], headers=replay, timeout=5)
    assert answer.status_code == 401  # within the 300 s tolerance, yet refused
    assert receiver.verified == [True, True]  # the timestamp check alone let it through
    assert receiver.accepted == [True, False]


def test_verify_delivery_ids(resolved: Notification) -> None:
    body = encode(resolved)
    now = int(time.time())
    first, second = "8c0f3f9e-0000-4000-8000-000000000001", "8c0f3f9e-0000-4000-8000-000000000002"
    signed_first = sign(SECRET, now, body, first)
    assert signed_first != sign(SECRET, now, body)  # the id is part of the signed material
    seen: set[str] = set()
    assert verify(SECRET, now, body, signed_first, delivery=first, seen=seen)
    assert not verify(SECRET, now, body, signed_first, delivery=first, seen=seen)  # replayed
    assert seen == {first}
    signed_second = sign(SECRET, now, body, second)
    assert verify(SECRET, now, body, signed_second, delivery=second, seen=seen)  # another one
    # an id swapped for a fresh one breaks the signature, and is not recorded
    fresh = "8c0f3f9e-0000-4000-8000-000000000003"
    assert not verify(SECRET, now, body, signed_first, delivery=fresh, seen=seen)
    assert fresh not in seen
    assert not verify(SECRET, now, body, signed_first, delivery=fresh)  # without seen too
    # the signature without the id does not stand in for the one with it
    assert not verify(SECRET, now, body, sign(SECRET, now, body), delivery=fresh, seen=seen)
    assert not verify(SECRET, now, body, sign(SECRET, now, body), seen=seen)  # id required
    assert not verify(SECRET, now, body, sign(SECRET, now, body, "a.b"), delivery="a.b")
    assert verify(SECRET, now, body, signed_first, delivery=first)  # no seen: no memory


def test_verify_with_a_callable_store(resolved: Notification) -> None:
    body = encode(resolved)
    now = int(time.time())
    store: dict[str, int] = {}

    def remember(delivery: str) -> bool:  # as SET NX on a shared store would
        if delivery in store:
            return False
        store[delivery] = now
        return True

    signature = sign(SECRET, now, body, "d-1")
    assert verify(SECRET, now, body, signature, delivery="d-1", seen=remember)
    assert not verify(SECRET, now, body, signature, delivery="d-1", seen=remember)
    assert list(store) == ["d-1"]
