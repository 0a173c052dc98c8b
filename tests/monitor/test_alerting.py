"""The alert lifecycle end to end with real servers on loopback: an SMTP server (aiosmtpd) gets
exactly one e-mail while an alert fires and one when it resolves; a webhook that fails twice
gets the signed notification on the third try; a dead channel does not hold up the others;
acknowledging stops re-notifications and silencing stops all."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import httpx
import pytest
from sqlalchemy import delete, select

from alerts.webhook import verify
from monitor.alerting.delivery import channels_from, deliver_due, refresh_alertmanager
from monitor.alerting.lifecycle import Alerting
from monitor.alerting.report_links import link_problem
from monitor.db.models import upsert_model
from monitor.db.tables import Alert, AlertEvent, OutboxMessage, TelemetryBatch, TelemetryRecord
from monitor.runs.monitoring import run_due
from monitor.runs.pipeline import ReferenceCache
from monitor.scheduling.scheduler import Worker
from monitor.server import free_port
from monitor.settings import Settings
from monitor.spec.model import ModelSpec
from tests.conftest import Inbox
from tests.monitor.monitoring_helpers import CLASSES, T0, Db, make_db, records

MINUTE = {"type": "tumbling", "by": "time", "seconds": 60}


def spec(rules: list[dict[str, Any]], monitor: dict[str, Any] | None = None) -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "name": "plankton",
            "features": [{"name": "x", "kind": "numeric"}, {"name": "y", "kind": "numeric"}],
            "output": {"task": "classification", "classes": CLASSES},
            "monitors": [monitor or {"name": "drift", "window": MINUTE, "min_samples": 20}],
            "alerts": rules,
            "alert_recipients": ["owner@example.org"],
        }
    )


def _stream(db: Db, shifted_minutes: set[int], minutes: int) -> None:
    for minute in range(minutes):
        shift = 2.5 if minute in shifted_minutes else 0.0
        db.post(
            records(
                T0 + timedelta(minutes=minute),
                60,
                seconds=60,
                shift=shift,
                prefix=f"m{minute}-",
                seed=minute,
            )
        )


def _cycle(db: Db, alerting: Alerting, settings: Settings, minute: int) -> None:
    """What the scheduler does at T0 + minute: run the monitor, check rules, deliver."""
    now = T0 + timedelta(minutes=minute)
    alerting.clock = lambda: now
    monitor = db.registered.spec.monitors[0]
    runs = run_due(db.sessions, db.registered, monitor, CACHE, now=now)
    alerting.after_runs(db.registered, monitor.name, runs)
    deliver_due(db.sessions, channels_from(settings), settings, now)


CACHE = ReferenceCache()


def test_one_email_while_firing_and_one_when_resolved(db_url: str, smtp: tuple[int, Inbox]) -> None:
    port, inbox = smtp
    rule = {"name": "drift-2", "kind": "drift", "consecutive": 2, "renotify_seconds": None}
    db = make_db(db_url, spec([rule]))
    _stream(db, shifted_minutes={1, 2, 3}, minutes=5)
    settings = Settings(
        database_url=db_url,
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_sender="tidewatch@example.org",
        grafana_url="http://grafana.example.org",
        public_url="http://tidewatch.example.org",
        report_link_secret="link-secret",
        report_link_ttl_seconds=3600,
    )
    alerting = Alerting(settings, db.sessions)
    sent_after = []
    for minute in range(1, 6):
        _cycle(db, alerting, settings, minute)
        sent_after.append(len(inbox.messages))
    # windows: 0 calm, 1-3 drifted, 4 calm. Two drifted in a row at minute 3 fire it; the
    # third drifted window keeps it firing without a new mail; the calm one resolves it
    assert sent_after == [0, 0, 1, 1, 2]
    firing, resolved = inbox.messages
    assert "FIRING" in firing["Subject"] and "plankton" in firing["Subject"]
    assert "RESOLVED" in resolved["Subject"]
    assert firing["To"] == "owner@example.org"
    text = firing.get_body(preferencelist=("plain",))
    html = firing.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    html_text = html.get_content()
    assert "x" in text.get_content() and "http://grafana.example.org/d/tidewatch-model" in html_text
    assert "http://tidewatch.example.org/api/v1/models/plankton/report?run=" in html_text
    # signed, and open for report_link_ttl_seconds from the alerting clock's minute 3
    found = re.search(r"report\?run=(\d+)&(?:amp;)?expires=(\d+)&(?:amp;)?token=(\w+)", html_text)
    assert found is not None, html_text
    run_id, expires, signed = int(found[1]), int(found[2]), found[3]
    fired = (T0 + timedelta(minutes=3)).timestamp()
    assert expires == int(fired) + 3600
    assert link_problem("link-secret", "plankton", run_id, expires, signed, now=fired) is None
    late = link_problem("link-secret", "plankton", run_id, expires, signed, now=expires)
    assert late is not None and "expired" in late
    images = [p for p in firing.walk() if p.get_content_type() == "image/png"]
    assert images, "the most drifted feature is plotted"
    for image in images:
        cid = image["Content-ID"].strip("<>")
        assert f"cid:{cid}" in html_text
        assert image.get_content().startswith(b"\x89PNG")
    with db.sessions() as session:
        (alert,) = session.scalars(select(Alert))
        events = [e.event for e in session.scalars(select(AlertEvent).order_by(AlertEvent.id))]
    assert alert.state == "resolved" and alert.resolved_at == T0 + timedelta(minutes=5)
    assert events == ["fired", "resolved"]


class _Receiver(BaseHTTPRequestHandler):
    secret = "s3cret"
    answers: ClassVar[list[int]] = []
    verified: ClassVar[list[bool]] = []
    bodies: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.verified.append(
            verify(
                self.secret,
                self.headers["X-Tidewatch-Timestamp"],
                body,
                self.headers["X-Tidewatch-Signature"],
            )
        )
        self.bodies.append(json.loads(body))
        status = self.answers.pop(0) if self.answers else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, type[_Receiver]]]:
    handler = type("Receiver", (_Receiver,), {"answers": [503, 503], "verified": [], "bodies": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/retrain", handler
    server.shutdown()


def test_a_webhook_that_fails_twice_gets_it_on_the_third_try(
    db_url: str, webhook: tuple[str, type[_Receiver]]
) -> None:
    url, receiver = webhook
    db = make_db(db_url, spec([{"name": "drift-1", "kind": "drift", "severity": "critical"}]))
    _stream(db, shifted_minutes={0}, minutes=1)
    settings = Settings(
        database_url=db_url, webhook_url=url, webhook_secret="s3cret", alert_retry_seconds=10
    )
    alerting = Alerting(settings, db.sessions)
    _cycle(db, alerting, settings, 1)  # fires; the first delivery gets a 503
    channels = channels_from(settings)
    now = T0 + timedelta(minutes=1)
    assert deliver_due(db.sessions, channels, settings, now + timedelta(seconds=5)) == 0  # not due
    assert deliver_due(db.sessions, channels, settings, now + timedelta(seconds=10)) == 0  # 503
    assert deliver_due(db.sessions, channels, settings, now + timedelta(seconds=30)) == 1
    with db.sessions() as session:
        (message,) = session.scalars(select(OutboxMessage))
    assert (message.state, message.attempts) == ("sent", 3)
    assert receiver.verified == [True, True, True]
    body = receiver.bodies[-1]
    assert (body["state"], body["model"], body["severity"]) == ("firing", "plankton", "critical")


def test_a_dead_channel_does_not_hold_up_the_others(
    db_url: str, webhook: tuple[str, type[_Receiver]]
) -> None:
    url, receiver = webhook
    receiver.answers.clear()
    db = make_db(db_url, spec([{"name": "drift-1", "kind": "drift"}]))
    _stream(db, shifted_minutes={0, 1}, minutes=2)
    settings = Settings(
        database_url=db_url,
        smtp_host="127.0.0.1",
        smtp_port=free_port(),  # nothing listens there
        webhook_url=url,
        webhook_secret="s3cret",
    )
    alerting = Alerting(settings, db.sessions)
    _cycle(db, alerting, settings, 1)
    _cycle(db, alerting, settings, 2)  # detection goes on while e-mail keeps failing
    with db.sessions() as session:
        by_channel = {m.channel: m for m in session.scalars(select(OutboxMessage))}
    assert by_channel["webhook"].state == "sent"
    # tried at each cycle (the retry delay had passed), still waiting, nothing else held up
    assert by_channel["email"].state == "pending" and by_channel["email"].attempts == 2
    assert "Connection refused" in (by_channel["email"].last_error or "")


def test_acknowledge_stops_renotification_and_silence_stops_all(
    db_url: str, smtp: tuple[int, Inbox]
) -> None:
    port, inbox = smtp
    rule = {"name": "drift-1", "kind": "drift", "renotify_seconds": 90}
    db = make_db(db_url, spec([rule]))
    _stream(db, shifted_minutes=set(range(8)), minutes=8)
    settings = Settings(database_url=db_url, smtp_host="127.0.0.1", smtp_port=port)
    alerting = Alerting(settings, db.sessions)
    for minute in (1, 2, 3):
        _cycle(db, alerting, settings, minute)
    assert len(inbox.messages) == 2  # fired at 1, re-notified at 3 (90 s later or more)
    with db.sessions() as session:
        alert = session.scalars(select(Alert)).one()
        alert.acknowledged_at = T0 + timedelta(minutes=3)
        session.commit()
    for minute in (4, 5, 6):
        _cycle(db, alerting, settings, minute)
    assert len(inbox.messages) == 2  # acknowledged: no more reminders
    with db.sessions() as session:
        alert = session.scalars(select(Alert)).one()
        alert.silenced_until = T0 + timedelta(hours=1)
        session.commit()
    db.post(records(T0 + timedelta(minutes=8), 60, seconds=60, prefix="calm", seed=50))
    _cycle(db, alerting, settings, 9)  # window 7 still drifted; window 8 is calm: resolved
    with db.sessions() as session:
        alert = session.scalars(select(Alert)).one()
        events = [e.event for e in session.scalars(select(AlertEvent).order_by(AlertEvent.id))]
    assert alert.state == "resolved"
    assert len(inbox.messages) == 2  # silenced: not even the resolution
    assert events == ["fired", "renotified", "resolved", "suppressed"]


@pytest.mark.integration
def test_alertmanager_sees_the_alert_active_then_resolved(db_url: str, alertmanager: str) -> None:
    db = make_db(db_url, spec([{"name": "drift-1", "kind": "drift", "severity": "critical"}]))
    _stream(db, shifted_minutes={0}, minutes=2)
    settings = Settings(database_url=db_url, alertmanager_url=alertmanager)
    alerting = Alerting(settings, db.sessions)

    def active() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = httpx.get(f"{alertmanager}/api/v2/alerts").json()
        return [a for a in found if a["labels"].get("model") == "plankton"]

    _cycle(db, alerting, settings, 1)  # window 0 drifted: fires
    (shown,) = active()
    assert shown["status"]["state"] == "active"
    assert shown["labels"]["alertname"] == "TidewatchDrift"
    assert shown["labels"]["severity"] == "critical" and shown["labels"]["rule"] == "drift-1"
    # the scheduler re-posts firing alerts every minute, so Alertmanager keeps them active
    assert refresh_alertmanager(db.sessions, channels_from(settings)["alertmanager"]) == 1
    _cycle(db, alerting, settings, 2)  # window 1 calm: resolves
    assert active() == []  # a resolved alert leaves Alertmanager's list
    assert refresh_alertmanager(db.sessions, channels_from(settings)["alertmanager"]) == 0


def test_a_silent_module_fires_and_resolves_when_telemetry_returns(
    db_url: str, smtp: tuple[int, Inbox]
) -> None:
    port, inbox = smtp
    rule = {"name": "dead", "kind": "no_telemetry", "after_seconds": 600, "severity": "critical"}
    db = make_db(db_url, spec([rule]))
    settings = Settings(database_url=db_url, smtp_host="127.0.0.1", smtp_port=port)
    alerting = Alerting(settings, db.sessions)
    alerting.check_telemetry()
    assert _alerts(db) == []  # never sent anything: nothing to miss yet
    db.post(records(T0, 10, seconds=10))
    with db.sessions() as session:
        (received,) = session.scalars(select(TelemetryBatch.received_at))
    alerting.clock = lambda: received + timedelta(minutes=5)
    alerting.check_telemetry()
    assert _alerts(db) == []
    alerting.clock = lambda: received + timedelta(minutes=11)
    alerting.check_telemetry()
    assert [(a.rule, a.state) for a in _alerts(db)] == [("dead", "firing")]
    db.post(records(T0 + timedelta(minutes=1), 10, seconds=10, prefix="back"))
    alerting.clock = lambda: datetime.now(UTC)
    alerting.check_telemetry()
    assert [a.state for a in _alerts(db)] == ["resolved"]
    # the firing notice was queued at the (moved) clock's time: deliver after both
    deliver_due(db.sessions, channels_from(settings), settings, received + timedelta(minutes=12))
    assert ["FIRING" in m["Subject"] for m in inbox.messages] == [True, False]


def _alerts(db: Db) -> list[Alert]:
    with db.sessions() as session:
        return list(session.scalars(select(Alert).order_by(Alert.id)))


def test_a_running_worker_mails_the_alert_by_itself(tmp_path: Any, smtp: tuple[int, Inbox]) -> None:
    """No call from the test: the scheduler runs the monitor, checks the rule, and its delivery
    job sends the mail."""
    port, inbox = smtp
    url = f"sqlite:///{tmp_path / 'worker.db'}"
    every_second = {"window": {"size": 100}, "min_samples": 20, "schedule": {"every": 1}}
    model = spec([{"name": "drift-now", "kind": "drift"}], every_second)
    db = make_db(url, model)
    db.post(records(datetime.now(UTC) - timedelta(minutes=1), 100, seconds=30, shift=2.5))
    settings = Settings(
        database_url=url,
        smtp_host="127.0.0.1",
        smtp_port=port,
        leader_poll_seconds=0.2,
        alert_delivery_seconds=1,
    )
    with Worker(settings, db.engine, db.sessions, ReferenceCache()):
        deadline = time.monotonic() + 60  # a deadline for a hung test, not a speed requirement
        while not inbox.messages and time.monotonic() < deadline:
            time.sleep(0.1)
    assert len(inbox.messages) == 1 and "FIRING" in inbox.messages[0]["Subject"]


def test_a_window_without_data_neither_resolves_nor_breaks_the_streak(
    db_url: str, smtp: tuple[int, Inbox]
) -> None:
    port, inbox = smtp
    rule = {"name": "drift-2", "kind": "drift", "consecutive": 2, "renotify_seconds": None}
    db = make_db(db_url, spec([rule]))
    _stream(db, shifted_minutes={0, 2, 3}, minutes=4)
    with db.sessions() as session:  # minute 1 lost its telemetry: an empty window
        session.execute(delete(TelemetryRecord).where(TelemetryRecord.record_id.like("m1-%")))
        session.execute(
            delete(TelemetryBatch).where(
                TelemetryBatch.first_ts >= T0 + timedelta(minutes=1),
                TelemetryBatch.first_ts < T0 + timedelta(minutes=2),
            )
        )
        session.commit()
    settings = Settings(database_url=db_url, smtp_host="127.0.0.1", smtp_port=port)
    alerting = Alerting(settings, db.sessions)
    for minute in (1, 2, 3):
        _cycle(db, alerting, settings, minute)
    # windows 0 (drift), 1 (no data), 2 (drift): two drifted windows with a verdict in a row
    assert [(a.state, a.rule) for a in _alerts(db)] == [("firing", "drift-2")]
    _cycle(db, alerting, settings, 4)
    assert [a.state for a in _alerts(db)] == ["firing"] and len(inbox.messages) == 1


def test_a_resolution_waits_for_its_firing_notice_in_backoff(
    db_url: str, webhook: tuple[str, type[_Receiver]]
) -> None:
    url, receiver = webhook
    receiver.answers[:] = [503]
    db = make_db(db_url, spec([{"name": "drift-1", "kind": "drift"}]))
    _stream(db, shifted_minutes={0}, minutes=2)
    settings = Settings(
        database_url=db_url, webhook_url=url, webhook_secret="s3cret", alert_retry_seconds=600
    )
    alerting = Alerting(settings, db.sessions)
    _cycle(db, alerting, settings, 1)  # fires; its notice gets a 503 and waits 10 minutes
    _cycle(db, alerting, settings, 2)  # resolves before the retry: the RESOLVED waits too
    assert [b["state"] for b in receiver.bodies] == ["firing"]
    later = T0 + timedelta(minutes=12)
    assert deliver_due(db.sessions, channels_from(settings), settings, later) == 2
    # in order, never a RESOLVED before its FIRING
    assert [b["state"] for b in receiver.bodies] == ["firing", "firing", "resolved"]


def test_an_alert_whose_rule_was_removed_resolves(db_url: str) -> None:
    db = make_db(db_url, spec([{"name": "drift-1", "kind": "drift"}]))
    _stream(db, shifted_minutes={0, 1}, minutes=2)
    settings = Settings(database_url=db_url)
    alerting = Alerting(settings, db.sessions)
    _cycle(db, alerting, settings, 1)
    assert [a.state for a in _alerts(db)] == ["firing"]
    with db.sessions() as session:
        registered, _ = upsert_model(session, spec([]))
    db.registered = registered
    _cycle(db, alerting, settings, 2)
    (alert,) = _alerts(db)
    assert alert.state == "resolved" and "removed" in alert.summary
