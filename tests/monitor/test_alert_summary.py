"""The e-mail of a real drift alert: its summary line names every drifted feature its table
lists, ``prediction.label`` included (seven of them: the summary once stopped at five)."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import select

from alerts.email import render_email
from alerts.notification import Notification
from collectors.wire import Record
from monitor.alerting.lifecycle import Alerting
from monitor.data.from_records import records_to_table
from monitor.db.engine import make_engine, make_sessionmaker
from monitor.db.migrate import upgrade
from monitor.db.models import upsert_model
from monitor.db.references import save_reference
from monitor.db.tables import OutboxMessage
from monitor.db.telemetry import ingest
from monitor.runs.monitoring import run_due
from monitor.runs.pipeline import ReferenceCache
from monitor.settings import Settings
from monitor.spec.model import ModelSpec
from tests.monitor.monitoring_helpers import CLASSES, T0

FEATURES = ["area", "brightness", "contrast", "eccentricity", "height", "width"]


def window(start: datetime, n: int, shift: float, prefix: str, seed: int) -> list[Record]:
    """Six numeric features; the predicted label follows ``area``."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        values = {name: float(rng.normal(shift, 1.0)) for name in FEATURES}
        label = CLASSES[int(values["area"] > 0)]
        p = 0.9 if label == CLASSES[1] else 0.1
        out.append(
            Record(
                id=f"{prefix}{i}",
                timestamp=start + timedelta(seconds=i),
                features=values,
                prediction={"label": label, "probabilities": [1 - p, p]},
            )
        )
    return out


def test_the_summary_names_every_drifted_feature_of_the_table(db_url: str) -> None:
    spec = ModelSpec.model_validate(
        {
            "name": "plankton",
            "features": [{"name": name, "kind": "numeric"} for name in FEATURES],
            "output": {"task": "classification", "classes": CLASSES},
            "monitors": [
                {
                    "name": "drift",
                    "window": {"type": "tumbling", "by": "time", "seconds": 60},
                    "min_samples": 20,
                }
            ],
            "alerts": [{"name": "drift-1", "kind": "drift"}],
            "alert_recipients": ["owner@example.org"],
        }
    )
    engine = make_engine(db_url)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        registered, _ = upsert_model(session, spec)
        reference = window(T0 - timedelta(days=1), 400, 0.0, "ref", 99)
        save_reference(session, registered, records_to_table(reference, spec))
    # every feature shifts, and with ``area`` the predicted label
    current = records_to_table(window(T0, 60, 2.5, "m", 1), spec)
    ingest(sessions, engine, registered, current)
    settings = Settings(database_url=db_url, smtp_host="127.0.0.1")
    now = T0 + timedelta(minutes=1)
    alerting = Alerting(settings, sessions, clock=lambda: now)
    monitor = registered.spec.monitors[0]
    runs = run_due(sessions, registered, monitor, ReferenceCache(), now=now)
    alerting.after_runs(registered, monitor.name, runs)
    with sessions() as session:
        (payload,) = session.scalars(select(OutboxMessage.payload))
    note = Notification.from_json(payload)
    table = [d.feature for d in note.drifted]
    assert set(FEATURES) | {"prediction.label"} <= set(table)
    text = render_email(note, "tidewatch@example.org").get_body(preferencelist=("plain",))
    assert text is not None
    (summary,) = [line for line in text.get_content().splitlines() if line.startswith("WARNING:")]
    named = summary.rpartition(": ")[2].split(", ")
    assert sorted(named) == sorted(table), summary
