"""Log lines: text and JSON formats, libraries quiet, and the one line per run, per alert change
and per delivery, captured from real runs (the worker's from a real ``tidewatch worker``)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from monitor.alerting.delivery import channels_from, deliver_due
from monitor.alerting.lifecycle import Alerting, acknowledge
from monitor.db.tables import Alert, DetectionResult, DetectionRun
from monitor.observability.logs import configure, fields
from monitor.runs.monitoring import run_due
from monitor.runs.pipeline import ReferenceCache
from monitor.settings import Settings
from monitor.spec.model import ModelSpec
from tests.conftest import Inbox
from tests.monitor.monitoring_helpers import CLASSES, T0, make_db, records

MINUTE = {"type": "tumbling", "by": "time", "seconds": 60}
TIDEWATCH = Path(sys.executable).with_name("tidewatch")


def spec(monitors: list[dict[str, Any]], alerts: Sequence[dict[str, Any]] = ()) -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "name": "plankton",
            "features": [{"name": "x", "kind": "numeric"}, {"name": "y", "kind": "numeric"}],
            "output": {"task": "classification", "classes": CLASSES},
            "monitors": monitors,
            "alerts": list(alerts),
            "alert_recipients": ["owner@example.org"],
        }
    )


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line parsed: a line that is not one JSON object fails the test."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_text_and_json_lines_carry_the_fields(capsys: pytest.CaptureFixture[str]) -> None:
    log = logging.getLogger("tidewatch.test")
    configure("info", "text")
    log.info("run finished", extra=fields(model="plankton", drifted=["x", "y"], window="a b"))
    text = capsys.readouterr().err.strip()
    assert text.endswith(
        ' INFO tidewatch.test: run finished model=plankton drifted=x,y window="a b"'
    )
    configure("info", "json")
    log.info("run finished", extra=fields(model="plankton", drifted=["x", "y"], level="no"))
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    run, failed = json_lines(capsys.readouterr().err)
    assert run["level"] == "INFO"  # a field cannot overwrite the record's own keys
    assert {k: run[k] for k in ("logger", "message", "model", "drifted")} == {
        "logger": "tidewatch.test",
        "message": "run finished",
        "model": "plankton",
        "drifted": ["x", "y"],
    }
    assert datetime.fromisoformat(run["time"]).tzinfo is not None
    assert failed["level"] == "ERROR" and "ValueError: boom" in failed["exception"]


def test_libraries_log_only_warnings_unless_debugging(capsys: pytest.CaptureFixture[str]) -> None:
    # what frouros does when imported: basicConfig(level=INFO), which shows every library's INFO
    leftover = logging.StreamHandler()
    leftover.setFormatter(logging.Formatter(logging.BASIC_FORMAT))
    logging.getLogger().addHandler(leftover)
    configure("info", "json")
    assert leftover not in logging.getLogger().handlers
    logging.getLogger("apscheduler.executors.default").info("Running job")
    logging.getLogger("alembic.runtime.migration").info("Context impl SQLiteImpl.")
    logging.getLogger("httpx").warning("a library's warning")
    logging.getLogger("tidewatch.scheduler").info("ours")
    logging.getLogger("uvicorn.error").info("Uvicorn running on http://127.0.0.1:8000")
    shown = [(line["logger"], line["message"]) for line in json_lines(capsys.readouterr().err)]
    assert shown == [
        ("httpx", "a library's warning"),
        ("tidewatch.scheduler", "ours"),
        ("uvicorn.error", "Uvicorn running on http://127.0.0.1:8000"),
    ]
    configure("warning", "json")
    logging.getLogger("tidewatch.scheduler").info("not now")
    assert capsys.readouterr().err == ""
    configure("debug", "json")
    logging.getLogger("alembic.runtime.migration").info("Running upgrade")
    logging.getLogger("sqlalchemy.engine.Engine").info("SELECT 1")
    logging.getLogger("tidewatch.scheduler").debug("details")
    shown = [line["message"] for line in json_lines(capsys.readouterr().err)]
    assert shown == ["Running upgrade", "details"]


def _run_lines(text: str) -> list[dict[str, Any]]:
    return [line for line in json_lines(text) if line["logger"] == "tidewatch.runs"]


def test_a_detection_run_logs_one_line_with_its_facts(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = make_db(db_url, spec([{"name": "drift", "window": MINUTE, "min_samples": 20}]))
    for minute, shift in enumerate([0.0, 2.5, 0.0]):
        db.post(
            records(
                T0 + timedelta(minutes=minute),
                60,
                seconds=60,
                shift=shift,
                seed=minute,
                prefix=f"m{minute}-",
            )
        )
    configure("info", "json")
    monitor = db.registered.spec.monitors[0]
    runs = run_due(
        db.sessions, db.registered, monitor, ReferenceCache(), now=T0 + timedelta(minutes=3)
    )
    lines = _run_lines(capsys.readouterr().err)
    assert len(runs) == 3 and [line["run"] for line in lines] == [run.id for run in runs]
    with db.sessions() as session:
        for run, line in zip(runs, lines, strict=True):
            drifted = set(
                session.scalars(
                    select(DetectionResult.feature).where(
                        DetectionResult.run_id == run.id, DetectionResult.drift.is_(True)
                    )
                )
            )
            stored = session.get(DetectionRun, run.id)
            assert stored is not None and stored.finished_at is not None
            assert line["message"] == "run finished" and line["level"] == "INFO"
            assert line["model"] == "plankton" and line["monitor"] == "drift"
            assert line["window"] == stored.window_key and line["status"] == stored.status
            assert line["trigger"] == "schedule" and line["records"] == stored.n_current
            assert set(line["drifted"]) == drifted and line["n_drifted"] == len(drifted)
            seconds = (stored.finished_at - stored.started_at).total_seconds()
            assert line["seconds"] == pytest.approx(seconds, abs=1e-3)
    assert "x" in lines[1]["drifted"] and lines[0]["drifted"] == []  # the shifted minute


def test_a_sliding_run_names_its_window_by_its_edges(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = make_db(f"sqlite:///{tmp_path / 'db'}", spec([{"name": "drift", "min_samples": 20}]))
    db.post(records(T0, 100, seconds=100))
    configure("info", "text")
    (run,) = run_due(db.sessions, db.registered, db.registered.spec.monitors[0], ReferenceCache())
    (line,) = capsys.readouterr().err.splitlines()
    assert run.window_start is not None and run.window_end is not None
    window = f"{run.window_start.isoformat()}/{run.window_end.isoformat()}"
    assert f" window={window} status={run.status} records=100 " in line


def test_alert_changes_and_deliveries_are_logged(
    db_url: str, smtp: tuple[int, Inbox], capsys: pytest.CaptureFixture[str]
) -> None:
    port, inbox = smtp
    rule = {"name": "drift-now", "kind": "drift", "consecutive": 1, "renotify_seconds": None}
    db = make_db(db_url, spec([{"name": "drift", "window": MINUTE, "min_samples": 20}], [rule]))
    for minute, shift in enumerate([0.0, 2.5, 0.0]):
        db.post(
            records(
                T0 + timedelta(minutes=minute),
                60,
                seconds=60,
                shift=shift,
                seed=minute,
                prefix=f"m{minute}-",
            )
        )
    settings = Settings(database_url=db_url, smtp_host="127.0.0.1", smtp_port=port)
    alerting, cache = Alerting(settings, db.sessions), ReferenceCache()
    monitor = db.registered.spec.monitors[0]
    configure("info", "json")
    for minute in (2, 3):  # window 1 (shifted) closes at 2 and fires, window 2 resolves it
        now = T0 + timedelta(minutes=minute)
        alerting.clock = lambda now=now: now  # type: ignore[misc]
        alerting.after_runs(
            db.registered, "drift", run_due(db.sessions, db.registered, monitor, cache, now=now)
        )
        deliver_due(db.sessions, channels_from(settings), settings, now)
        if minute == 2:
            with db.sessions() as session:
                (alert,) = session.scalars(select(Alert))
                acknowledge(session, alert, "jane")
    lines = json_lines(capsys.readouterr().err)
    changes = [line for line in lines if line["logger"] == "tidewatch.alerting"]
    assert [c["message"] for c in changes] == [
        "alert fired",
        "alert acknowledged",
        "alert resolved",
    ]
    assert {(c["alert"], c["model"], c["rule"], c["severity"]) for c in changes} == {
        (alert.id, "plankton", "drift-now", alert.severity)
    }
    assert changes[1]["detail"] == "jane" and changes[2]["state"] == "resolved"
    deliveries = [line for line in lines if line["logger"] == "tidewatch.delivery"]
    assert len(inbox.messages) == 2
    assert [(d["channel"], d["alert"], d["outcome"], d["state"]) for d in deliveries] == [
        ("email", alert.id, "sent", "firing"),
        ("email", alert.id, "sent", "resolved"),
    ]
    assert all(d["message"] == "delivery sent" and d["model"] == "plankton" for d in deliveries)


def test_the_worker_logs_one_line_per_run_and_no_scheduler_chatter(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'worker.db'}"
    monitor = {
        "name": "drift",
        "window": {"size": 100},
        "min_samples": 20,
        "schedule": {"every": 1},
    }
    db = make_db(url, spec([monitor]))
    db.post(records(datetime.now(UTC) - timedelta(minutes=1), 150, seconds=50))
    env = {
        **os.environ,
        "TIDEWATCH_DATABASE_URL": url,
        "TIDEWATCH_METRICS_PORT": "0",
        "TIDEWATCH_DEVICE": "cpu",
        "TIDEWATCH_LEADER_POLL_SECONDS": "0.2",
        "TIDEWATCH_LOG_FORMAT": "json",
    }
    err = tmp_path / "worker.err"
    with err.open("w") as stderr:
        worker = subprocess.Popen(
            [str(TIDEWATCH), "worker"], env=env, stdout=subprocess.DEVNULL, stderr=stderr
        )
        try:
            deadline = time.monotonic() + 120  # a hung worker, not a speed requirement
            while _scheduled(db.sessions) < 3:
                assert worker.poll() is None, err.read_text()
                assert time.monotonic() < deadline, "no three scheduled runs in 120 s"
                time.sleep(0.2)
        finally:
            worker.send_signal(signal.SIGTERM)  # the worker stops at SIGTERM, as in a container
            worker.wait(60)
    lines = json_lines(err.read_text())
    with db.sessions() as session:
        ids = set(session.scalars(select(DetectionRun.id)))
    assert sorted(line["run"] for line in _run_lines(err.read_text())) == sorted(ids)
    chatter = [
        line
        for line in lines
        if not line["logger"].startswith("tidewatch.") and line["level"] in ("DEBUG", "INFO")
    ]
    assert chatter == []


def _scheduled(sessions: Any) -> int:
    with sessions() as session:
        return len(list(session.scalars(select(DetectionRun.id))))


@pytest.mark.parametrize(
    ("argv", "env", "level"),
    [
        (["--log-level", "debug", "serve"], {}, logging.DEBUG),
        (["serve"], {"TIDEWATCH_LOG_LEVEL": "error"}, logging.ERROR),
        (["serve"], {}, logging.INFO),
    ],
    ids=["option", "environment", "setting's default"],
)
def test_serve_logs_at_the_level_asked_for(
    argv: list[str],
    env: dict[str, str],
    level: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``tidewatch --log-level debug serve`` once fell back to the settings' level: the option
    was looked up in click's context, which typer's own copy of click never fills."""
    from typer.testing import CliRunner

    import monitor.server
    from monitor.cli import app

    seen: list[int] = []
    monkeypatch.setattr(
        monitor.server, "serve", lambda settings: seen.append(logging.getLogger("tidewatch").level)
    )
    for name, value in {"TIDEWATCH_DATABASE_URL": f"sqlite:///{tmp_path}/t.db", **env}.items():
        monkeypatch.setenv(name, value)
    try:
        result = CliRunner().invoke(app, argv)
    finally:
        configure("warning")
    assert result.exit_code == 0, result.output
    assert seen == [level]
