"""Delivering the outbox: every pending notification, at least once, each channel on its own.

The scheduler's leader calls :func:`deliver_due` every ``alert_delivery_seconds``. Each
channel's messages are sent by its own thread, oldest first, one locked row per transaction; a
channel's round ends at its first retryable failure, so an SMTP server that hangs costs one
timeout per round and never holds the webhook or Alertmanager for longer. An alert's notices
leave in order on each channel: a RESOLVED waits until its FIRING was sent or failed.

A failure the channel calls retryable (a connection error, a 5xx, 429) is tried again after
``alert_retry_seconds`` doubled per attempt (capped at an hour), up to ``alert_max_attempts``;
a permanent one (a 4xx, a refused recipient) fails at once. Every outcome is stored on the
message and counted in ``tidewatch_alert_deliveries_total{channel, outcome}`` (sent, retried,
failed).

A message is marked sent only after the channel accepted it; a process that dies in between
sends it again (at least once: receivers deduplicate on the alert id and state).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased, sessionmaker

from alerts.channel import Channel, DeliveryError
from alerts.notification import Notification
from monitor.db.models import list_models
from monitor.db.tables import Alert, Model, OutboxMessage
from monitor.observability.logs import fields
from monitor.observability.service import ALERT_DELIVERIES
from monitor.settings import Settings

log = logging.getLogger("tidewatch.delivery")
BATCH = 50
MAX_DELAY = timedelta(hours=1)


def channels_from(settings: Settings) -> dict[str, Channel]:
    """The channels the settings configure, by name."""
    from alerts.alertmanager import AlertmanagerChannel
    from alerts.email import SmtpChannel
    from alerts.webhook import WebhookChannel

    channels: dict[str, Channel] = {}
    if settings.smtp_host:
        channels["email"] = SmtpChannel(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.smtp_sender,
            starttls=settings.smtp_starttls,
            ssl=settings.smtp_ssl,
            username=settings.smtp_username,
            password=settings.smtp_password,
        )
    if settings.webhook_url:
        if not settings.webhook_secret:
            raise ValueError("webhook_url is set but webhook_secret is not: webhooks are signed")
        channels["webhook"] = WebhookChannel(
            url=settings.webhook_url, secret=settings.webhook_secret
        )
    if settings.alertmanager_url:
        channels["alertmanager"] = AlertmanagerChannel(url=settings.alertmanager_url)
    return channels


def _claim(session: Session, channel: str, now: datetime, after: int) -> OutboxMessage | None:
    """The oldest due message of the channel, locked until this transaction ends."""
    older = aliased(OutboxMessage)
    waiting_behind = (
        select(older.id)
        .where(
            older.alert_id == OutboxMessage.alert_id,
            older.channel == OutboxMessage.channel,
            older.state == "pending",
            older.id < OutboxMessage.id,
        )
        .exists()
    )
    query = (
        select(OutboxMessage)
        .where(
            OutboxMessage.channel == channel,
            OutboxMessage.state == "pending",
            OutboxMessage.next_attempt_at <= now,
            OutboxMessage.id > after,
            # an alert's notices go out in order: a RESOLVED waits for its FIRING's retries
            ~waiting_behind,
        )
        .order_by(OutboxMessage.id)
        .limit(1)
    )
    if session.get_bind().dialect.name == "postgresql":
        # held while the message is sent: a second deliverer (a leader that has not noticed it
        # lost the lock) skips it instead of sending it too
        query = query.with_for_update(skip_locked=True)
    return session.scalar(query)


def _deliver_channel(
    sessions: sessionmaker[Session],
    name: str,
    channel: Channel,
    settings: Settings,
    now: datetime,
) -> int:
    """Up to ``BATCH`` messages, one transaction each. The first retryable failure ends the
    round for this channel: a server that is down would fail (and time out) for every message."""
    sent, last = 0, 0
    for _ in range(BATCH):
        with sessions() as session:
            message = _claim(session, name, now, last)
            if message is None:
                return sent
            last = message.id
            message.attempts += 1
            retry, note = False, None
            try:
                note = Notification.from_json(message.payload)
                channel.send(note)
            except Exception as exc:
                retryable = exc.retryable if isinstance(exc, DeliveryError) else True
                message.last_error = f"{type(exc).__name__}: {exc}"[:2000]
                if retryable and message.attempts < settings.alert_max_attempts:
                    delay = timedelta(seconds=settings.alert_retry_seconds) * 2 ** (
                        message.attempts - 1
                    )
                    message.next_attempt_at = now + min(delay, MAX_DELAY)
                    retry = True
                else:
                    message.state = "failed"
            else:
                message.state, message.sent_at = "sent", datetime.now(UTC)
                message.last_error = None
                sent += 1
            session.commit()  # each outcome is kept before the next message is tried
            _outcome(name, message, "retried" if retry else message.state, note)
        if retry:
            break
    return sent


def _outcome(channel: str, message: OutboxMessage, outcome: str, note: Notification | None) -> None:
    """Count and log one attempt: ``delivery sent`` (INFO), ``retried`` (WARNING) or
    ``failed`` (ERROR), with the channel, the alert and its model, the message, the error."""
    ALERT_DELIVERIES.labels(channel, outcome).inc()
    level = {"sent": logging.INFO, "retried": logging.WARNING}.get(outcome, logging.ERROR)
    facts = fields(
        channel=channel,
        alert=message.alert_id,
        model=note and note.model,
        rule=note and note.rule,
        state=note and note.state,
        delivery=message.id,
        outcome=outcome,
        attempts=message.attempts,
        error=message.last_error,
    )
    log.log(level, "delivery %s", outcome, extra=facts)


def deliver_due(
    sessions: sessionmaker[Session],
    channels: Mapping[str, Channel],
    settings: Settings,
    now: datetime | None = None,
) -> int:
    """Send what is due on every channel at once; returns how many were sent."""
    now = now or datetime.now(UTC)
    if not channels:
        return 0
    with ThreadPoolExecutor(len(channels), thread_name_prefix="tidewatch-deliver") as pool:
        futures = [
            pool.submit(_deliver_channel, sessions, name, channel, settings, now)
            for name, channel in channels.items()
        ]
    total = 0
    for future in futures:
        try:
            total += future.result()
        except Exception:
            log.exception("alert delivery failed")  # the database, not a channel: next round
    return total


def refresh_alertmanager(sessions: sessionmaker[Session], channel: Channel) -> int:
    """Post every firing alert to Alertmanager again; returns how many were posted.

    Every firing alert, whether or not Alertmanager ever got it: one that fired before
    ``alertmanager_url`` was set reaches it at the next refresh. Each is posted as its latest
    notification on any channel, with the alert's current summary (an alert that reached no
    channel is described from its row); alerts whose rule leaves Alertmanager out of its
    ``channels`` are not posted, nor silenced ones (silenced here means no notification
    anywhere). Alertmanager considers an alert resolved when it has not been posted for its
    ``resolve_timeout`` (5 minutes by default); the scheduler calls this every minute so that an
    alert stays active exactly as long as it fires here. Failures are logged: the next minute
    tries again.
    """
    notes = _firing_notifications(sessions, datetime.now(UTC))
    sent = 0
    for note in notes:
        try:
            channel.send(note)
            sent += 1
        except Exception as exc:
            log.warning("refreshing alert %d in Alertmanager failed: %s", note.alert_id, exc)
    return sent


def _firing_notifications(sessions: sessionmaker[Session], now: datetime) -> list[Notification]:
    with sessions() as session:
        firing = session.execute(
            select(Alert, Model.name)
            .join(Model, Model.id == Alert.model_id)
            .where(
                Alert.state == "firing",
                (Alert.silenced_until.is_(None)) | (Alert.silenced_until <= now),
            )
            .order_by(Alert.id)
        ).all()
        latest = select(func.max(OutboxMessage.id)).group_by(OutboxMessage.alert_id)
        payloads = {
            alert_id: payload
            for alert_id, payload in session.execute(
                select(OutboxMessage.alert_id, OutboxMessage.payload).where(
                    OutboxMessage.alert_id.in_([a.id for a, _ in firing]),
                    OutboxMessage.id.in_(latest.scalar_subquery()),
                )
            )
        }
        channels = {
            (m.model.id, rule.name): rule.channels
            for m in list_models(session)
            for rule in m.spec.alerts
        }
    notes = []
    for alert, model in firing:
        wanted = channels.get((alert.model_id, alert.rule))
        if wanted is not None and "alertmanager" not in wanted:
            continue
        if alert.id in payloads:
            note = Notification.from_json(payloads[alert.id])
            notes.append(replace(note, state="firing", summary=alert.summary or note.summary))
        else:
            notes.append(
                Notification(
                    alert_id=alert.id,
                    rule=alert.rule,
                    kind=alert.kind,
                    model=model,
                    version=alert.version,
                    severity="critical" if alert.severity == "critical" else "warning",
                    state="firing",
                    summary=alert.summary,
                    started_at=alert.started_at,
                    run_id=alert.run_id,
                )
            )
    return notes
