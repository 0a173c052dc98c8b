"""Records that arrive after their window was computed: counted on the run, shown on the
status (API and CLI), and gone once a backfill recomputes the window (SQLite and PostgreSQL)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from monitor.app import create_app
from monitor.cli import app
from monitor.cycle import note_late_records
from monitor.db import keys
from monitor.db.tables import DetectionRun
from monitor.runs import late
from monitor.runs.late import count_late_records
from monitor.runs.monitoring import backfill, run_due
from monitor.runs.pipeline import ReferenceCache
from monitor.runs.status import model_statuses
from monitor.settings import Settings
from tests.monitor.monitoring_helpers import T0, Db, make_db, records, spec

MINUTE = {"type": "tumbling", "by": "time", "seconds": 60}


def _runs(db: Db) -> dict[datetime, DetectionRun]:
    with db.sessions() as session:
        return {r.window_start: r for r in session.scalars(select(DetectionRun))}


def _count(db: Db, monitor: Any) -> int:
    # "now" past the settling time of every batch posted so far (received at the real time)
    return count_late_records(
        db.sessions, db.registered, monitor, now=datetime.now(UTC) + late.SETTLE
    )


def _computed_with_late_records(db_url: str) -> tuple[Db, Any]:
    """Two computed one-minute windows, then 30 late records for the first, and a batch
    of 20 straddling both (10 each), and 40 for the third window, not computed yet."""
    db = make_db(db_url, spec([{"window": MINUTE, "min_samples": 20}]))
    monitor = db.registered.spec.monitors[0]
    db.post(records(T0, 100, seconds=60, prefix="a"))
    db.post(records(T0 + timedelta(seconds=60), 50, seconds=60, prefix="b"))
    cache = ReferenceCache()
    assert (
        len(run_due(db.sessions, db.registered, monitor, cache, now=T0 + timedelta(seconds=130)))
        == 2
    )
    assert _count(db, monitor) == 0  # everything so far arrived before the runs
    db.post(records(T0 + timedelta(seconds=10), 30, seconds=40, prefix="late"))
    db.post(records(T0 + timedelta(seconds=50), 20, seconds=20, prefix="span"))
    db.post(records(T0 + timedelta(seconds=120), 40, seconds=60, prefix="c"))
    return db, monitor


def test_late_records_are_counted_once_shown_and_recomputed_by_a_backfill(db_url: str) -> None:
    db, monitor = _computed_with_late_records(db_url)
    assert _count(db, monitor) == 50
    assert _count(db, monitor) == 0  # each batch is counted once
    runs = _runs(db)
    first, second = runs[T0], runs[T0 + timedelta(seconds=60)]
    assert (first.late_records, first.n_current) == (40, 100)
    assert (second.late_records, second.n_current) == (10, 50)

    (status,) = model_statuses(db.sessions())
    (drift,) = status.monitors
    assert (drift.late_records, drift.late_windows) == (50, 2)
    assert (drift.late_from, drift.late_to) == (T0, T0 + timedelta(seconds=120))

    now = T0 + timedelta(seconds=190)
    redone = backfill(
        db.sessions,
        db.registered,
        monitor,
        ReferenceCache(),
        T0,
        T0 + timedelta(seconds=120),
        now=now,
    )
    assert [(r.n_current, r.late_records) for r in redone] == [(140, 0), (60, 0)]
    assert _count(db, monitor) == 0  # the new runs hold those records
    (status,) = model_statuses(db.sessions())
    assert status.monitors[0].late_records == 0 and status.monitors[0].late_from is None
    # the third window was not computed when its records came: they were never late
    (third,) = run_due(db.sessions, db.registered, monitor, ReferenceCache(), now=now)
    assert third.n_current == 40 and third.late_records == 0


def test_the_status_names_late_windows_in_the_api_and_the_cli(db_url: str, tmp_path: Path) -> None:
    db, monitor = _computed_with_late_records(db_url)
    _count(db, monitor)
    settings = Settings(database_url=db_url, device="cpu", scheduler=False)
    with TestClient(create_app(settings)) as api:
        with api.app.state.tidewatch.sessions() as session:  # type: ignore[attr-defined]
            key = keys.create_key(session, ["read"])
        answer = api.get(
            "/api/v1/models/plankton/status", headers={"Authorization": f"Bearer {key}"}
        )
        assert answer.status_code == 200, answer.text
        (drift,) = answer.json()["monitors"]
        assert drift["late_records"] == 50 and drift["late_windows"] == 2
        assert datetime.fromisoformat(drift["late_from"]) == T0
        assert datetime.fromisoformat(drift["late_to"]) == T0 + timedelta(seconds=120)
    config = tmp_path / "tidewatch.toml"
    config.write_text(f'database_url = "{db_url}"\ndevice = "cpu"\n')
    result = CliRunner().invoke(app, ["status", "plankton", "--config", str(config)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # the terminal may wrap the line
    assert "plankton / drift: 50 records arrived after their window was computed" in text
    assert (
        "`tidewatch backfill plankton --monitor drift "
        "--from 2026-11-01T00:00:00 --to 2026-11-01T00:02:00`"
    ) in text


def test_a_monitor_cycle_counts_and_logs_late_records(
    db_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    db, monitor = _computed_with_late_records(db_url)
    monkeypatch.setattr(late, "SETTLE", timedelta(0))  # the batches above count at once
    with caplog.at_level(logging.WARNING, logger="tidewatch.monitoring"):
        note_late_records(db.sessions, db.registered, monitor)
    assert "plankton/drift: 50 records arrived after their window was computed" in caplog.text
    assert sum(r.late_records for r in _runs(db).values()) == 50
