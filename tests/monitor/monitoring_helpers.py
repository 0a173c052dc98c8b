"""A database with one registered model, telemetry at chosen times, and a clock tests move."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from collectors.wire import Label as WireLabel
from collectors.wire import Record
from monitor.data.from_records import records_to_table
from monitor.db.engine import make_engine, make_sessionmaker
from monitor.db.migrate import upgrade
from monitor.db.models import RegisteredModel, upsert_model
from monitor.db.references import save_reference
from monitor.db.telemetry import ingest, save_labels
from monitor.spec.model import ModelSpec

T0 = datetime(2026, 11, 1, tzinfo=UTC)  # a window edge for every window length used here
CLASSES = ["copepod", "diatom"]


class Clock:
    """A controllable "now": starts at ``start`` and moves only when told."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def spec(monitors: list[dict[str, Any]], name: str = "plankton") -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "name": name,
            "features": [{"name": "x", "kind": "numeric"}, {"name": "y", "kind": "numeric"}],
            "output": {"task": "classification", "classes": CLASSES},
            "monitors": monitors,
        }
    )


@dataclass
class Db:
    engine: Engine
    sessions: sessionmaker[Session]
    registered: RegisteredModel

    def post(self, records: list[Record]) -> int:
        table = records_to_table(records, self.registered.spec)
        return ingest(self.sessions, self.engine, self.registered, table).accepted

    def label(self, pairs: list[tuple[str, str]]) -> None:
        save_labels(
            self.sessions,
            self.engine,
            self.registered,
            [WireLabel(id=rid, label=label) for rid, label in pairs],
        )


def records(
    start: datetime,
    n: int,
    *,
    seconds: float,
    shift: float = 0.0,
    prefix: str = "r",
    seed: int = 0,
) -> list[Record]:
    """``n`` records spread evenly over ``seconds`` from ``start``; ``shift`` moves ``x``."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        x, y = rng.normal(shift, 1.0), rng.normal(0.0, 1.0)
        label = CLASSES[int(x > 0)]
        p = 0.9 if label == CLASSES[1] else 0.1
        out.append(
            Record(
                id=f"{prefix}{i}",
                timestamp=start + timedelta(seconds=seconds * i / n),
                features={"x": x, "y": y},
                prediction={"label": label, "probabilities": [1 - p, p]},
            )
        )
    return out


def make_db(url: str, model: ModelSpec, reference_rows: int = 400) -> Db:
    engine = make_engine(url)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        registered, _ = upsert_model(session, model)
        reference = records_to_table(
            records(T0 - timedelta(days=1), reference_rows, seconds=3600, prefix="ref", seed=99),
            model,
        )
        save_reference(session, registered, reference)
    return Db(engine, sessions, registered)
