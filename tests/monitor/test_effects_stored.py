"""Effect sizes are stored with each drift result and come back through the API, the e-mail, the
webhook and Alertmanager's annotations, equal to values computed by hand from a small fixed data
set (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from alerts.alertmanager import alert as alertmanager_alert
from alerts.notification import Notification
from monitor.alerting.delivery import channels_from, deliver_due
from monitor.app import create_app
from monitor.db.tables import DetectionResult, OutboxMessage
from monitor.settings import Settings
from tests.alerts.receiver import Receiver, webhook_receiver
from tests.conftest import SPEC, Inbox, make_key

WEBHOOK_SECRET = "retrain-me"

COPEPOD = {"label": "copepod", "probabilities": [0.8, 0.2]}
DIATOM = {"label": "diatom", "probabilities": [0.3, 0.7]}


def records(prefix: str, n: int, row: Any) -> list[dict[str, Any]]:
    return [
        {"id": f"{prefix}{i}", "timestamp": f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}Z", **row(i)}
        for i in range(n)
    ]


def reference_row(i: int) -> dict[str, Any]:
    # brightness 0.5 / 0.6 alternating; site a (45) and b (15); emb along x (+-2) and y (+-1);
    # predictions: 45 copepod (confidence 0.8), 15 diatom (0.7)
    emb = [[-2.0, 0, 0], [2.0, 0, 0], [0, -1.0, 0], [0, 1.0, 0]][i % 4]
    return {
        "features": {"brightness": 0.5 + 0.1 * (i % 2), "site": "a" if i < 45 else "b", "emb": emb},
        "prediction": COPEPOD if i < 45 else DIATOM,
    }


def current_row(i: int) -> dict[str, Any]:
    # brightness 0.3 / 0.4; site a (30) and the new flowcam-3 (30); emb moved to (2, 0.5, 0);
    # predictions: 15 copepod, 45 diatom
    return {
        "features": {
            "brightness": 0.3 + 0.1 * (i % 2),
            "site": "a" if i < 30 else "flowcam-3",
            "emb": [2.0, 0.5, 0.0],
        },
        "prediction": COPEPOD if i < 15 else DIATOM,
    }


def check_effects(effects: dict[str, Any]) -> None:
    brightness = effects["brightness"]
    ref_sd = 0.05 * math.sqrt(60 / 59)  # 60 values 0.05 from their mean, ddof=1
    assert brightness["reference"]["mean"] == pytest.approx(0.55)
    assert brightness["reference"]["sd"] == pytest.approx(ref_sd)
    assert brightness["current"]["mean"] == pytest.approx(0.35)
    assert brightness["current"]["p5"] == pytest.approx(0.3)
    assert brightness["current"]["p95"] == pytest.approx(0.4)
    assert brightness["mean_shift_sd"] == pytest.approx(-0.2 / ref_sd)

    site = effects["site"]
    assert site["shares"] == [
        {"category": "flowcam-3", "reference": 0.0, "current": 0.5},
        {"category": "a", "reference": 0.75, "current": 0.5},
        {"category": "b", "reference": 0.25, "current": 0.0},
    ]
    assert (site["new"], site["vanished"]) == (["flowcam-3"], ["b"])
    assert site["total_variation"] == pytest.approx(0.5)

    emb = effects["emb"]  # reference variance 120/59 along x, 30/59 along y, none along z
    assert emb["mean_shift"] == pytest.approx(math.sqrt(4.25))
    assert emb["explained_share"] == pytest.approx(1.0)
    assert [(c["component"], c["variance_share"]) for c in emb["components"]] == [
        (1, pytest.approx(0.8)),
        (2, pytest.approx(0.2)),
    ]
    assert emb["components"][0]["shift_sd"] == pytest.approx(2 / math.sqrt(120 / 59))
    assert emb["components"][1]["shift_sd"] == pytest.approx(0.5 / math.sqrt(30 / 59))

    label = effects["prediction.label"]  # the class mix
    assert label["shares"] == [
        {"category": "copepod", "reference": 0.75, "current": 0.25},
        {"category": "diatom", "reference": 0.25, "current": 0.75},
    ]
    confidence = effects["prediction.confidence"]  # max probability: 0.8 or 0.7
    conf_sd = math.sqrt((15 * 0.075**2 + 45 * 0.025**2) / 59)
    assert confidence["reference"]["mean"] == pytest.approx(0.775)
    assert confidence["current"]["mean"] == pytest.approx(0.725)
    assert confidence["mean_shift_sd"] == pytest.approx(-0.05 / conf_sd)


def test_effects_are_stored_served_and_mailed(db_url: str, smtp: tuple[int, Inbox]) -> None:
    port, inbox = smtp
    with webhook_receiver(WEBHOOK_SECRET) as hook:
        settings = Settings(
            database_url=db_url,
            device="cpu",
            scheduler=False,
            smtp_host="127.0.0.1",
            smtp_port=port,
            webhook_url=hook.url,
            webhook_secret=WEBHOOK_SECRET,
        )
        with TestClient(create_app(settings)) as client:
            check_round_trip(client, settings, inbox, hook)


def check_round_trip(client: TestClient, settings: Settings, inbox: Inbox, hook: Receiver) -> None:
    admin = make_key(client, "admin")
    base = "/api/v1/models/plankton"
    assert client.post("/api/v1/models", json=SPEC, headers=admin).status_code == 200
    rule = {"name": "drift-now", "kind": "drift", "severity": "critical"}
    reply = client.put(
        f"{base}/alerts/rules",
        json={"rules": [rule], "recipients": ["owner@example.org"]},
        headers=admin,
    )
    assert reply.status_code == 200, reply.text
    reply = client.post(
        f"{base}/reference", json={"records": records("r", 60, reference_row)}, headers=admin
    )
    assert reply.status_code == 200, reply.text
    reply = client.post(
        f"{base}/telemetry", json={"records": records("c", 60, current_row)}, headers=admin
    )
    assert reply.status_code == 200, reply.text
    run = client.post(f"{base}/detect", headers=admin).json()[0]
    check_effects({r["feature"]: r["effect"] for r in run["results"]})

    # read back from storage in a new session, and through the results page
    with client.app.state.tidewatch.sessions() as session:  # type: ignore[attr-defined]
        stored = dict(
            session.execute(
                select(DetectionResult.feature, DetectionResult.effect).where(
                    DetectionResult.run_id == run["id"]
                )
            ).all()
        )
    check_effects(stored)
    page = client.get(f"{base}/results", headers=make_key(client, "read")).json()
    served = {r["feature"]: r["effect"] for r in page["runs"][0]["results"]}
    check_effects(served)
    assert served == stored

    # the alert's notice (the e-mail's source) carries the same effects, and the mail says them
    sessions = client.app.state.tidewatch.sessions  # type: ignore[attr-defined]
    with sessions() as session:
        (payload,) = session.scalars(
            select(OutboxMessage.payload).where(OutboxMessage.channel == "email")
        ).all()
    noticed = {d.feature: d.effect for d in Notification.from_json(payload).drifted}
    assert {"brightness", "site", "prediction.label"} <= set(noticed)
    assert all(noticed[f] == stored[f] for f in noticed)
    assert deliver_due(sessions, channels_from(settings), settings) == 2  # e-mail and webhook
    (mail,) = inbox.messages
    text = mail.get_body(preferencelist=("plain",))
    assert text is not None
    said = text.get_content()
    assert "  - brightness: mean 0.55 -> 0.35 (-3.97 sd); ks_weighted_ks," in said  # -0.2 / 0.0504
    assert "  - site: flowcam-3 0% -> 50% (new), a 75% -> 50%, b 25% -> 0% (vanished); " in said
    assert "  - prediction.label: copepod 75% -> 25%, diatom 25% -> 75%; " in said

    # the webhook (signed, verified by the receiver) carries each drifted feature's effect, the
    # same object the API serves
    assert hook.accepted == [True]
    event = json.loads(hook.bodies[0])
    sent = {d["feature"]: d["effect"] for d in event["drifted"]}
    assert {"brightness", "site", "prediction.label"} <= set(sent)
    assert all(sent[f] == served[f] for f in sent)
    check_effects({**served, **sent})  # the sent ones replace the served: hand-computed too
    brightness = sent["brightness"]  # by hand: 0.55 -> 0.35, 0.2 / (0.05 * sqrt(60 / 59)) sd
    assert (brightness["reference"]["mean"], brightness["current"]["mean"]) == (
        pytest.approx(0.55),
        pytest.approx(0.35),
    )
    assert brightness["mean_shift_sd"] == pytest.approx(-3.9665, abs=1e-4)

    # and Alertmanager's annotations say them in words
    note = Notification.from_json(payload)
    said_am = alertmanager_alert(note)["annotations"]["effects"].splitlines()
    assert "brightness: mean 0.55 -> 0.35 (-3.97 sd)" in said_am
    assert "site: flowcam-3 0% -> 50% (new), a 75% -> 50%, b 25% -> 0% (vanished)" in said_am
