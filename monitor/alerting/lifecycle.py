"""The alert lifecycle: rules checked after every run, alerts fired, re-notified and resolved.

One alert per rule and model while it fires (a partial unique index backs this up when two
processes check at once). A notification is never sent from here: it is written to the outbox
(``alert_outbox``) in the transaction that changes the alert, one row per channel, and
:mod:`monitor.alerting.delivery` sends it later. So a slow or broken channel never holds up
detection, and a crash between the change and the send loses nothing (at least once).

A firing alert that gets materially worse notifies at once (:mod:`.escalation`), each notice
saying what got worse since the last one. Acknowledging an alert stops its re-notifications
until it resolves, and its escalations too unless its severity rises; silencing it stops every
notification of it until the silence ends. Everything that happens to an alert is kept in
``alert_events``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from alerts.rules import AlertRule, RunFacts, Verdict, check, check_telemetry
from monitor.alerting import escalation
from monitor.alerting.notices import notification
from monitor.db.models import RegisteredModel, list_models
from monitor.db.tables import (
    Alert,
    AlertEvent,
    DetectionResult,
    DetectionRun,
    Model,
    OutboxMessage,
    PerformanceResult,
    QualityResult,
    TelemetryBatch,
)
from monitor.observability.logs import fields
from monitor.settings import Settings
from monitor.vocabulary import NO_VERDICT

log = logging.getLogger("tidewatch.alerting")


def configured_channels(settings: Settings) -> list[str]:
    """The channels this deployment has set up."""
    found = []
    if settings.smtp_host:
        found.append("email")
    if settings.webhook_url:
        found.append("webhook")
    if settings.alertmanager_url:
        found.append("alertmanager")
    return found


def run_facts(session: Session, version_id: int, monitor: str, limit: int) -> list[RunFacts]:
    """The monitor's latest ``limit`` live runs with a verdict, newest first (backfills and
    runs without a verdict do not count)."""
    runs = list(
        session.scalars(
            select(DetectionRun)
            .where(
                DetectionRun.model_version_id == version_id,
                DetectionRun.monitor == monitor,
                DetectionRun.trigger != "backfill",
                DetectionRun.status.not_in(sorted(NO_VERDICT)),
            )
            .order_by(DetectionRun.id.desc())
            .limit(limit)
        )
    )
    ids = [r.id for r in runs]
    drifted: dict[int, set[str]] = {i: set() for i in ids}
    for run_id, feature in session.execute(
        select(DetectionResult.run_id, DetectionResult.feature).where(
            DetectionResult.run_id.in_(ids), DetectionResult.drift.is_(True)
        )
    ):
        drifted[run_id].add(feature)
    problems: dict[int, set[str]] = {i: set() for i in ids}
    for run_id, feature, name in session.execute(
        select(QualityResult.run_id, QualityResult.feature, QualityResult.check).where(
            QualityResult.run_id.in_(ids), QualityResult.problem.is_(True)
        )
    ):
        problems[run_id].add(f"{feature}:{name}")
    metrics: dict[int, dict[str, float]] = {i: {} for i in ids}
    for run_id, metric, value in session.execute(
        select(PerformanceResult.run_id, PerformanceResult.metric, PerformanceResult.value).where(
            PerformanceResult.run_id.in_(ids), PerformanceResult.value.is_not(None)
        )
    ):
        if value is not None:
            metrics[run_id][metric] = float(value)
    return [
        RunFacts(
            r.id,
            r.status,
            r.finished_at,
            frozenset(drifted[r.id]),
            metrics[r.id],
            frozenset(problems[r.id]),
        )
        for r in runs
    ]


def _event(session: Session, alert: Alert, event: str, detail: str = "") -> None:
    """Keep what happened to ``alert`` in its history, and log it as ``alert <event>``."""
    session.add(AlertEvent(alert_id=alert.id, event=event, detail=detail, at=datetime.now(UTC)))
    model = session.get(Model, alert.model_id)
    # an alert that reaches nobody is a setup problem worth a warning
    level = logging.WARNING if event == "undelivered" else logging.INFO
    facts = fields(
        alert=alert.id,
        model=model and model.name,
        rule=alert.rule,
        severity=alert.severity,
        state=alert.state,
        detail=detail,
    )
    log.log(level, "alert %s", event, extra=facts)


class NotFiring(ValueError):
    """Only a firing alert can be acknowledged."""


def acknowledge(session: Session, alert: Alert, by: str = "") -> None:
    """No more re-notifications of ``alert`` until it resolves (committed)."""
    if alert.state != "firing":
        raise NotFiring(f"alert {alert.id} is {alert.state}; only a firing alert is acknowledged")
    alert.acknowledged_at, alert.acknowledged_by = datetime.now(UTC), by or None
    _event(session, alert, "acknowledged", by)
    session.commit()


def silence(session: Session, alert: Alert, seconds: float | None) -> None:
    """No notification of ``alert`` for ``seconds`` (None: end the silence now; committed)."""
    if seconds is None:
        alert.silenced_until = None
        _event(session, alert, "unsilenced")
    else:
        alert.silenced_until = datetime.now(UTC) + timedelta(seconds=seconds)
        _event(session, alert, "silenced", f"until {alert.silenced_until.isoformat()}")
    session.commit()


class Alerting:
    """Checks a model's rules and keeps its alerts; one per process, like the scheduler."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.clock = clock

    # -- when to check -----------------------------------------------------------------------
    def after_runs(
        self, registered: RegisteredModel, monitor: str, runs: list[DetectionRun]
    ) -> None:
        """Check the rules on this monitor's runs. Never raises: alerting must not stop
        detection (a failed check is logged and done again after the next run)."""
        if not runs:
            return
        try:
            self.check_model(registered, monitor)
            self.resolve_orphans(registered)
        except Exception:
            log.exception("alert rules of %s/%s failed", registered.spec.name, monitor)

    def resolve_orphans(self, registered: RegisteredModel) -> None:
        """Resolve firing alerts whose rule is no longer in the model's spec, with the same
        RESOLVED notice as any resolution (on every configured channel: the rule that chose
        its channels is gone)."""
        rules = {r.name for r in registered.spec.alerts}
        with self.sessions() as session:
            orphans = list(
                session.scalars(
                    select(Alert)
                    .where(
                        Alert.model_id == registered.model.id,
                        Alert.state == "firing",
                        Alert.rule.not_in(rules) if rules else Alert.id.is_not(None),
                    )
                    .with_for_update()  # `monitors apply` and the worker resolve it once
                )
            )
            now = self.clock()
            for alert in orphans:
                alert.state, alert.resolved_at = "resolved", now
                alert.summary = f"rule {alert.rule!r} was removed from the model"
                _event(session, alert, "resolved", alert.summary)
                gone = AlertRule.model_construct(
                    name=alert.rule, kind=alert.kind, severity=alert.severity
                )
                verdict = Verdict(False, alert.summary, alert.run_id)
                self._notify(session, registered, gone, alert, verdict, now)
            session.commit()

    def check_model(self, registered: RegisteredModel, monitor: str) -> None:
        spec = registered.spec
        first = spec.monitors[0].name if spec.monitors else None
        for rule in spec.alerts:
            if rule.kind == "no_telemetry" or (rule.monitor or first) != monitor:
                continue
            with self.sessions() as session:
                facts = run_facts(session, registered.version.id, monitor, rule.consecutive)
                self._apply(session, registered, rule, check(rule, facts))

    def check_telemetry(self) -> None:
        """The ``no_telemetry`` rules of every model (the scheduler calls this every minute)."""
        now = self.clock()
        with self.sessions() as session:
            models = list_models(session)
        for registered in models:
            rules = [r for r in registered.spec.alerts if r.kind == "no_telemetry"]
            if not rules:
                continue
            with self.sessions() as session:
                last = session.scalar(
                    select(func.max(TelemetryBatch.received_at)).where(
                        TelemetryBatch.model_version_id == registered.version.id
                    )
                )
                if last is not None and last.tzinfo is None:
                    last = last.replace(tzinfo=UTC)
                for rule in rules:
                    try:
                        self._apply(session, registered, rule, check_telemetry(rule, last, now))
                    except Exception:
                        log.exception("rule %s of %s failed", rule.name, registered.spec.name)
                        session.rollback()

    # -- the lifecycle -----------------------------------------------------------------------
    def _apply(
        self,
        session: Session,
        registered: RegisteredModel,
        rule: AlertRule,
        verdict: Verdict | None,
    ) -> None:
        if verdict is None:
            return
        now = self.clock()
        alert = session.scalar(
            select(Alert)
            .where(
                Alert.model_id == registered.model.id,
                Alert.rule == rule.name,
                Alert.state == "firing",
            )
            # a scheduled run and a manual one checking at once resolve (or remind) once
            .with_for_update()
        )
        now_standing = escalation.standing(session, rule, verdict) if verdict.firing else None
        if verdict.firing and alert is None:
            assert now_standing is not None
            alert = Alert(
                model_id=registered.model.id,
                version=registered.spec.version,
                rule=rule.name,
                kind=rule.kind,
                severity=now_standing.severity,
                state="firing",
                summary=verdict.summary,
                started_at=now,
                run_id=verdict.run_id,
            )
            session.add(alert)
            try:
                session.flush()
            except IntegrityError:
                session.rollback()  # another process fired it a moment ago: theirs stands
                return
            _event(session, alert, "fired", verdict.summary)
            self._notify(session, registered, rule, alert, verdict, now)
        elif verdict.firing and alert is not None:
            assert now_standing is not None
            # the latest run, so every notice (and its report link) shows the latest window
            alert.summary, alert.run_id = verdict.summary, verdict.run_id or alert.run_id
            notices = escalation.notices(session, alert.id)
            # without a factor only the growths never count; the rest is still said when due
            factor = rule.escalate_factor or math.inf
            changes = escalation.worse(notices, now_standing, factor)
            rose = escalation.severity_rose(notices, now_standing)
            if rose:
                alert.severity = now_standing.severity
            silenced = alert.silenced_until is not None and alert.silenced_until > now
            # Acknowledged: somebody is on it, so more of the same problem (features, share,
            # statistics) waits; a higher severity is a different call (maybe another on-call
            # route) and still notifies. Silenced: nothing is tried, so a silence is not
            # spammed with "suppressed"; the first check after it compares with the last notice
            # that went out.
            escalate = (
                bool(changes)
                and rule.escalate_factor is not None
                and not silenced
                and (rose or alert.acknowledged_at is None)
            )
            due = (
                rule.renotify_seconds is not None
                and alert.acknowledged_at is None
                and alert.last_notified_at is not None
                and now - alert.last_notified_at >= timedelta(seconds=rule.renotify_seconds)
            )
            if escalate or due:
                what = "; ".join(changes) or verdict.summary
                _event(session, alert, "escalated" if escalate else "renotified", what)
                self._notify(session, registered, rule, alert, verdict, now, changes)
        elif not verdict.firing and alert is not None:
            alert.state, alert.resolved_at = "resolved", now
            alert.summary, alert.run_id = verdict.summary, verdict.run_id or alert.run_id
            _event(session, alert, "resolved", verdict.summary)
            self._notify(session, registered, rule, alert, verdict, now)
        session.commit()

    def _notify(
        self,
        session: Session,
        registered: RegisteredModel,
        rule: AlertRule,
        alert: Alert,
        verdict: Verdict,
        now: datetime,
        changes: list[str] | None = None,
    ) -> None:
        # counted as notified even when nothing goes out, so a silenced or undeliverable
        # alert is reminded about once per interval, not at every check
        alert.last_notified_at = now
        if alert.silenced_until is not None and alert.silenced_until > now:
            _event(session, alert, "suppressed", f"silenced until {alert.silenced_until}")
            return
        channels = [
            c
            for c in configured_channels(self.settings)
            if rule.channels is None or c in rule.channels
        ]
        if "email" in channels and not registered.spec.alert_recipients:
            channels.remove("email")
        if not channels:
            _event(session, alert, "undelivered", "no channel configured")
            return
        note = notification(
            session, self.settings, registered, rule, alert, verdict, now=now, changes=changes
        )
        for channel in channels:
            session.add(
                OutboxMessage(
                    alert_id=alert.id,
                    channel=channel,
                    payload=note.to_json(),
                    state="pending",
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                )
            )
