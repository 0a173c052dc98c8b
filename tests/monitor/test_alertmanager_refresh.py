"""Every firing alert reaches a real Alertmanager at the next refresh, also one that fired
before ``alertmanager_url`` was set; a rule that leaves Alertmanager out of its channels stays
out."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from monitor.alerting.delivery import channels_from, refresh_alertmanager
from monitor.alerting.lifecycle import Alerting
from monitor.db.models import upsert_model
from monitor.runs.monitoring import run_due
from monitor.runs.pipeline import ReferenceCache
from monitor.settings import Settings
from monitor.spec.model import ModelSpec
from tests.monitor.monitoring_helpers import CLASSES, T0, make_db, records


@pytest.mark.integration
def test_an_alert_fired_before_alertmanager_was_set_reaches_it(
    db_url: str, alertmanager: str
) -> None:
    spec = ModelSpec.model_validate(
        {
            "name": "plankton",
            "features": [{"name": "x", "kind": "numeric"}, {"name": "y", "kind": "numeric"}],
            "output": {"task": "classification", "classes": CLASSES},
            "monitors": [
                {
                    "name": "drift",
                    "window": {"type": "tumbling", "by": "time", "seconds": 60},
                    "min_samples": 20,
                }
            ],
            "alerts": [
                {"name": "drift-1", "kind": "drift", "severity": "critical"},
                {"name": "mail-only", "kind": "drift", "channels": ["email"]},
            ],
        }
    )
    db = make_db(db_url, spec)
    db.post(records(T0, 60, seconds=60, shift=2.5))
    # no channel at all when it fires: the alert reaches nobody ("undelivered")
    before = Settings(database_url=db_url)
    alerting = Alerting(before, db.sessions, clock=lambda: T0 + timedelta(minutes=1))
    monitor = db.registered.spec.monitors[0]
    runs = run_due(
        db.sessions, db.registered, monitor, ReferenceCache(), now=T0 + timedelta(minutes=1)
    )
    alerting.after_runs(db.registered, monitor.name, runs)

    def shown() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = httpx.get(f"{alertmanager}/api/v2/alerts").json()
        return [a for a in found if a["labels"].get("model") == "plankton"]

    assert shown() == []
    after = Settings(database_url=db_url, alertmanager_url=alertmanager)
    assert refresh_alertmanager(db.sessions, channels_from(after)["alertmanager"]) == 1
    (alert,) = shown()
    assert alert["status"]["state"] == "active"
    assert alert["labels"]["alertname"] == "TidewatchDrift"
    assert alert["labels"]["rule"] == "drift-1" and alert["labels"]["severity"] == "critical"
    assert "drift" in alert["annotations"]["summary"]

    # the mail-only rule opens its channels to Alertmanager: posted at the next refresh too
    opened = spec.model_copy(
        update={"alerts": [spec.alerts[0], spec.alerts[1].model_copy(update={"channels": None})]}
    )
    with db.sessions() as session:
        upsert_model(session, opened)
    assert refresh_alertmanager(db.sessions, channels_from(after)["alertmanager"]) == 2
    assert sorted(a["labels"]["rule"] for a in shown()) == ["drift-1", "mail-only"]
