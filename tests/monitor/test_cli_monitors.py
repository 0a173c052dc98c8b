"""The monitor commands: monitors apply/show, detect on tumbling windows, backfill, status,
reference promote."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from monitor.cli import app
from monitor.db import keys
from monitor.db.tables import DetectionRun
from monitor.server import BackgroundServer
from monitor.settings import Settings
from tests.monitor.monitoring_helpers import T0, Db, make_db, records, spec

runner = CliRunner()


@pytest.fixture
def setup(tmp_path: Path, db_url: str) -> tuple[Path, Db]:
    config = tmp_path / "tidewatch.toml"
    config.write_text(f'database_url = "{db_url}"\ndevice = "cpu"\n')
    db = make_db(db_url, spec([{"name": "drift"}]))
    db.post(records(T0, 240, seconds=240, prefix="a"))  # four calm minutes
    db.post(records(T0 + timedelta(minutes=4), 120, seconds=120, shift=2.5, prefix="b"))
    return config, db


def invoke(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


MONITOR_FILE = """
[[models]]
name = "plankton"

[[models.monitors]]
name = "minutely"
window = { type = "tumbling", by = "time", seconds = 60 }
schedule = { every = 60 }
min_samples = 20
"""


def _away_from_a_minute_boundary(margin: float = 20.0) -> None:
    """The minutely monitor's next window closes at the next minute of the wall clock: two
    ``detect`` calls straddling it see different due windows (the second an empty new one).
    Start them where that boundary is at least ``margin`` seconds away."""
    left = 60.0 - time.time() % 60.0
    if left < margin:
        time.sleep(left + 0.5)


def test_monitors_apply_show_detect_backfill_status(setup: tuple[Path, Db], tmp_path: Path) -> None:
    config, db = setup
    file = tmp_path / "monitors.toml"
    file.write_text(MONITOR_FILE)
    # --prune: the file's monitor replaces the model's "drift" monitor
    out = invoke("monitors", "apply", str(file), "--prune", "-c", str(config))
    assert "plankton: monitors updated" in out and "- monitor drift: removed" in out
    (shown,) = json.loads(invoke("monitors", "show", "plankton", "-c", str(config)))
    assert shown["name"] == "minutely" and shown["window"]["seconds"] == 60

    # the windows of T0 .. T0+6 min are long closed: detect computes all six, oldest first,
    # and one "no data" run for the month since
    _away_from_a_minute_boundary()
    out = invoke("detect", "plankton", "-c", str(config))
    assert out.count("minutely: drift") == 2
    assert out.count("minutely: ok") + out.count("minutely: warning") == 4
    assert out.count("minutely: insufficient_data") == 1
    assert "no window is due" in invoke("detect", "plankton", "-c", str(config))
    status = invoke("status", "-c", str(config))
    # the last month had no telemetry: the model has no data now
    assert "plankton" in status and "no data" in status and "no leader has run yet" in status

    out = invoke(
        "backfill",
        "plankton",
        "--from",
        T0.isoformat(),
        "--to",
        (T0 + timedelta(minutes=6)).isoformat(),
        "-c",
        str(config),
    )
    assert "6/6 windows" in out  # the progress bar's last state
    assert "minutely" in out
    with db.sessions() as session:
        runs = list(session.scalars(select(DetectionRun)))
    # the six windows replaced in place; the live "no data" run after them stays
    assert len(runs) == 7
    assert sorted(r.trigger for r in runs) == ["backfill"] * 6 + ["manual"]
    assert [r.status for r in runs].count("drift") == 2


def test_bad_monitor_files_and_arguments_are_refused(
    setup: tuple[Path, Db], tmp_path: Path
) -> None:
    config, _ = setup
    bad = tmp_path / "bad.toml"
    bad.write_text(MONITOR_FILE.replace("schedule = { every = 60 }", 'schedule = { cron = "x" }'))
    assert "invalid cron expression" in invoke(
        "monitors", "apply", str(bad), "-c", str(config), code=2
    )
    unknown = tmp_path / "unknown.toml"
    unknown.write_text(MONITOR_FILE.replace('name = "plankton"', 'name = "krill"'))
    assert "unknown model 'krill'" in invoke(
        "monitors", "apply", str(unknown), "-c", str(config), code=2
    )
    out = invoke(
        "backfill",
        "plankton",
        "--from",
        "2026-02-01",
        "--to",
        "2026-01-01",
        "-c",
        str(config),
        code=2,
    )
    assert "--from must be before --to" in out
    assert "ISO 8601" in invoke("backfill", "plankton", "--from", "soon", "--to", "later", code=2)
    assert "unknown model" in invoke("status", "krill", "-c", str(config), code=1)


def test_reference_promote(setup: tuple[Path, Db], db_url: str) -> None:
    """``reference promote`` talks to the service over HTTP, like ``reference upload``."""
    _, db = setup
    with db.sessions() as session:
        key = keys.create_key(session, ["admin"])
    # the test's records are months old: keep them from the start-up purge
    settings = Settings(database_url=db_url, port=0, scheduler=False, retention_days=3650)
    with BackgroundServer(settings) as server:
        where = ["--url", server.url, "--key", key]
        out = invoke(
            "reference",
            "promote",
            "plankton",
            "--from",
            (T0 + timedelta(minutes=4)).isoformat(),
            "--to",
            (T0 + timedelta(minutes=6)).isoformat(),
            *where,
        )
        assert "120 production records" in out
        out = invoke(
            "reference",
            "promote",
            "plankton",
            "--from",
            "2030-01-01",
            "--to",
            "2030-01-02",
            *where,
            code=1,
        )
        assert "no telemetry" in out
        out = invoke(
            "reference",
            "promote",
            "plankton",
            "--from",
            "2030-01-01",
            "--to",
            "2030-01-02",
            "--url",
            server.url,
            "--key",
            "tw_wrong",
            code=1,
        )
        assert "401" in out
    out = invoke(
        "reference",
        "promote",
        "plankton",
        "--from",
        "2030-01-01",
        "--to",
        "2030-01-02",
        *where,
        code=1,
    )
    assert "could not reach Tidewatch" in out and "TIDEWATCH_URL" in out
