"""Escalation with real servers on loopback (SMTP by aiosmtpd, PostgreSQL and SQLite): a firing
alert that gets materially worse mails again at once, says what got worse and links the
latest run; an equal window mails nothing; an acknowledged alert mails again only when its
severity rises. And the rules that decide "worse", on hand-made notices."""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import select

from alerts.rules import AlertRule
from collectors.wire import Record
from monitor.alerting.delivery import channels_from, deliver_due
from monitor.alerting.escalation import Standing, worse
from monitor.alerting.lifecycle import Alerting, acknowledge
from monitor.data.from_records import records_to_table
from monitor.db.engine import make_engine, make_sessionmaker
from monitor.db.migrate import upgrade
from monitor.db.models import upsert_model
from monitor.db.references import save_reference
from monitor.db.tables import Alert, AlertEvent, DetectionRun
from monitor.runs.monitoring import run_due
from monitor.runs.pipeline import ReferenceCache
from monitor.settings import Settings
from monitor.spec.model import ModelSpec
from tests.conftest import Inbox
from tests.monitor.monitoring_helpers import CLASSES, T0, Db

FEATURES = [f"f{i}" for i in range(6)]
MINUTE = {"type": "tumbling", "by": "time", "seconds": 60}


def _spec(rule: dict[str, object]) -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "name": "plankton",
            "features": [{"name": f, "kind": "numeric"} for f in FEATURES],
            "output": {"task": "classification", "classes": CLASSES},
            "monitors": [{"name": "drift", "window": MINUTE, "min_samples": 20}],
            "alerts": [rule],
            "alert_recipients": ["owner@example.org"],
        }
    )


def _records(
    start: datetime, shifted: set[str], prefix: str, seed: int, n: int = 60, diatoms: float = 0.5
) -> list[Record]:
    """``n`` records over a minute; ``shifted`` features move by 3 standard deviations and
    ``diatoms`` is the predicted class mix (the inputs do not decide it)."""
    rng = np.random.default_rng(seed)
    return [
        Record(
            id=f"{prefix}{i}",
            timestamp=start + timedelta(seconds=60 * i / n),
            features={f: rng.normal(3.0 if f in shifted else 0.0, 1.0) for f in FEATURES},
            prediction={"label": CLASSES[int(rng.random() < diatoms)], "probabilities": [0.5, 0.5]},
        )
        for i in range(n)
    ]


def _db(url: str, model: ModelSpec) -> Db:
    engine = make_engine(url)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        registered, _ = upsert_model(session, model)
        reference = _records(T0 - timedelta(days=1), set(), "ref", 99, n=400)
        save_reference(session, registered, records_to_table(reference, model))
    return Db(engine, sessions, registered)


def test_a_firing_alert_that_gets_worse_mails_again_and_links_the_latest_run(
    db_url: str, smtp: tuple[int, Inbox], caplog: pytest.LogCaptureFixture
) -> None:
    port, inbox = smtp
    # critical once 3 in 4 tested features drifted (6 inputs and 3 prediction features)
    rule = {"name": "drift-now", "kind": "drift", "consecutive": 1, "critical_share": 0.75}
    db = _db(db_url, _spec(rule))
    strong = set(FEATURES[:5])
    windows = [
        ({"f0"}, 0.5),  # 0: mild, one feature: fires
        (strong, 0.5),  # 1: most features: escalates
        (strong, 0.5),  # 2: equal: nothing
        (set(FEATURES), 0.5),  # 3 (acknowledged): one more feature, same severity: nothing
        (set(FEATURES), 0.9),  # 4: the class mix too: critical, mails despite the ack
    ]
    for minute, (shifted, diatoms) in enumerate(windows):
        start = T0 + timedelta(minutes=minute)
        db.post(_records(start, shifted, f"m{minute}-", minute, diatoms=diatoms))
    settings = Settings(
        database_url=db_url,
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_sender="tidewatch@example.org",
        public_url="http://tidewatch.example.org",
        report_link_secret="link-secret",
    )
    alerting, cache = Alerting(settings, db.sessions), ReferenceCache()
    monitor = db.registered.spec.monitors[0]
    sent_after = []
    caplog.set_level(logging.INFO, logger="tidewatch.alerting")
    for minute in range(1, len(windows) + 1):
        now = T0 + timedelta(minutes=minute)
        alerting.clock = lambda now=now: now  # type: ignore[misc]
        runs = run_due(db.sessions, db.registered, monitor, cache, now=now)
        alerting.after_runs(db.registered, monitor.name, runs)
        deliver_due(db.sessions, channels_from(settings), settings, now)
        sent_after.append(len(inbox.messages))
        if minute == 3:
            with db.sessions() as session:
                acknowledge(session, session.scalars(select(Alert)).one(), "jane")
    assert sent_after == [1, 2, 2, 2, 3]

    with db.sessions() as session:
        runs = list(session.scalars(select(DetectionRun).order_by(DetectionRun.window_start)))
        alert = session.scalars(select(Alert)).one()
        events = [
            (e.event, e.detail) for e in session.scalars(select(AlertEvent).order_by(AlertEvent.id))
        ]
    assert [r.status for r in runs] == ["drift"] * len(windows)
    shares = [r.drifted_share for r in runs]
    assert shares[0] is not None and shares[1] is not None and shares[4] is not None
    assert shares[4] >= 0.75 > shares[3]  # only the last window is critical

    fired, escalated, critical = inbox.messages
    assert fired["Subject"] == "[Tidewatch] FIRING warning: drift on plankton v1"
    assert escalated["Subject"] == "[Tidewatch] FIRING warning, worse: drift on plankton v1"
    text = _text(escalated)
    found = re.search(
        r"Worse since the last notice: (\d+) more features drifted \(([^)]*)\), (.*)\.", text
    )
    assert found is not None, text
    # the new features most drifted first, as the table lists them
    assert int(found[1]) == len(strong) - 1
    assert set(found[2].split(", ")) == strong - {"f0"}
    share, _, joint = found[3].partition(", ")
    assert share == f"drifted share {shares[0]:.0%} -> {shares[1]:.0%}"
    # the joint test over the numeric features (the default monitor's) grew too, and says so
    assert joint == "" or joint.startswith("numeric features together (joint test) statistic")
    # every notice links the run it is about: the strong window, not the mild one that fired
    assert _linked_run(fired) == runs[0].id
    assert _linked_run(escalated) == runs[1].id
    assert "Worse since" not in _text(fired)

    # acknowledged at minute 3: window 3's new feature waited; the critical window did not
    assert critical["Subject"] == "[Tidewatch] FIRING critical, worse: drift on plankton v1"
    assert "severity warning -> critical" in _text(critical)
    assert "f5" in _text(critical)  # what got worse since the last notice, the wait included
    assert _linked_run(critical) == runs[4].id
    assert alert.severity == "critical" and alert.state == "firing"
    assert alert.run_id == runs[4].id
    assert [event for event, _ in events] == ["fired", "escalated", "acknowledged", "escalated"]
    assert events[1][1].startswith(f"{len(strong) - 1} more features drifted")
    logged = [r for r in caplog.records if r.name == "tidewatch.alerting"]
    assert [r.getMessage() for r in logged].count("alert escalated") == 2


def _text(message: object) -> str:
    body = message.get_body(preferencelist=("plain",))  # type: ignore[attr-defined]
    assert body is not None
    return str(body.get_content())


def _linked_run(message: object) -> int:
    html = message.get_body(preferencelist=("html",)).get_content()  # type: ignore[attr-defined]
    found = re.search(r"report\?run=(\d+)", html)
    assert found is not None, html
    return int(found[1])


def _standing(severity: str = "warning", share: float | None = 0.2, **drifted: float) -> Standing:
    return Standing(severity, dict(drifted), share)


def test_worse_counts_only_material_changes_against_every_earlier_notice() -> None:
    fired = _standing(share=0.2, a=0.4)
    assert worse([], _standing(share=0.9, a=0.9, b=0.9), 1.5) == []  # nothing noticed yet
    assert worse([fired], _standing(share=0.25, a=0.5), 1.5) == []  # grown, not by 1.5
    assert worse([fired], _standing(share=0.35, a=0.7), 1.5) == [
        "drifted share 20% -> 35%",
        "a statistic 0.4 -> 0.7",
    ]
    assert worse([fired], _standing("critical", share=0.2, a=0.4), 1.5) == [
        "severity warning -> critical"
    ]
    # a feature that swings out and back in was noticed before: not new
    swung = [fired, _standing(share=0.2, b=0.4)]
    assert worse(swung, _standing(share=0.2, a=0.4), 1.5) == []
    assert worse(swung, _standing(share=0.2, a=0.4, c=0.3, d=0.3), 1.5) == [
        "2 more features drifted (c, d)"
    ]


def test_a_feature_grows_on_its_effect_size_when_the_notices_carry_one() -> None:
    def sized(statistic: float, size: float | None) -> Standing:
        effects = {} if size is None else {"a": size}
        return Standing("warning", {"a": statistic}, 0.2, effects=effects)

    fired = sized(0.5, 1.0)  # e.g. the mean moved 1.0 reference sd
    # the effect doubled while the statistic barely moved: worse, said in effect size
    assert worse([fired], sized(0.55, 2.0), 1.5) == ["a effect size 1 -> 2"]
    # the statistic tripled but the effect did not grow by the factor: not worse
    assert worse([fired], sized(1.5, 1.2), 1.5) == []
    # a notice from before effect sizes is compared on the statistic, never across measures
    assert worse([sized(0.5, None)], sized(0.9, 9.0), 1.5) == ["a statistic 0.5 -> 0.9"]


def test_a_performance_alert_escalates_when_its_distance_beyond_the_threshold_grows() -> None:
    before = Standing("warning", {}, None, value=0.8, threshold=0.85)
    assert worse([before], Standing("warning", {}, None, value=0.82, threshold=0.85), 1.5) == []
    assert worse([before], Standing("warning", {}, None, value=0.7, threshold=0.85), 1.5) == [
        "value 0.8 -> 0.7 (threshold 0.85)"
    ]


def test_escalation_fields_belong_to_their_rules() -> None:
    rule = AlertRule(name="d", kind="drift", critical_share=0.5)
    assert rule.escalate_factor == 1.5
    with pytest.raises(ValueError, match="critical_share"):
        AlertRule(name="p", kind="performance", metric="accuracy", below=0.8, critical_share=0.5)
    with pytest.raises(ValueError, match="escalate_factor"):
        AlertRule(name="d", kind="drift", escalate_factor=1.0)


def test_a_silenced_alert_escalates_after_its_silence_and_not_during_it(
    db_url: str, smtp: tuple[int, Inbox]
) -> None:
    port, inbox = smtp
    db = _db(db_url, _spec({"name": "drift-now", "kind": "drift"}))
    strong = set(FEATURES[:5])
    for minute, shifted in enumerate([{"f0"}, strong, strong]):
        db.post(_records(T0 + timedelta(minutes=minute), shifted, f"m{minute}-", minute))
    settings = Settings(database_url=db_url, smtp_host="127.0.0.1", smtp_port=port)
    alerting, cache = Alerting(settings, db.sessions), ReferenceCache()
    monitor = db.registered.spec.monitors[0]
    sent_after = []
    for minute in (1, 2, 3):
        now = T0 + timedelta(minutes=minute)
        alerting.clock = lambda now=now: now  # type: ignore[misc]
        runs = run_due(db.sessions, db.registered, monitor, cache, now=now)
        alerting.after_runs(db.registered, monitor.name, runs)
        deliver_due(db.sessions, channels_from(settings), settings, now)
        sent_after.append(len(inbox.messages))
        if minute == 1:  # silenced after it fired, until between the second and third check
            with db.sessions() as session:
                alert = session.scalars(select(Alert)).one()
                alert.silenced_until = now + timedelta(seconds=90)
                session.commit()
    assert sent_after == [1, 1, 2]
    with db.sessions() as session:
        events = [e.event for e in session.scalars(select(AlertEvent).order_by(AlertEvent.id))]
    assert events == ["fired", "escalated"]  # no "suppressed" at every check of the silence
    assert "more features drifted" in _text(inbox.messages[1])


def test_webhook_and_alertmanager_carry_what_got_worse() -> None:
    from alerts.alertmanager import alert as alertmanager_alert
    from alerts.notification import Notification
    from alerts.webhook import payload

    note = Notification(
        alert_id=1,
        rule="drift-now",
        kind="drift",
        model="plankton",
        version="1",
        severity="warning",
        state="firing",
        summary="drift",
        started_at=T0,
        drifted_share=0.5,
        changes=["2 more features drifted (a, b)", "drifted share 20% -> 50%"],
    )
    body = payload(Notification.from_json(note.to_json()))
    assert body["changes"] == note.changes and body["drifted_share"] == 0.5
    annotations = alertmanager_alert(note)["annotations"]
    assert annotations["changes"] == "2 more features drifted (a, b); drifted share 20% -> 50%"
