"""What the commands print: the demo only its own lines, tables within 80 columns (all columns
with --wide), validation errors in Tidewatch's words, logs on stderr in the format asked for."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor.cli import app
from monitor.cli.alerts import ALERT_COLUMNS
from monitor.cli.detection import RESULT_COLUMNS, STATUS_COLUMNS
from monitor.cli.keys import KEY_COLUMNS
from monitor.cli.models import MODEL_COLUMNS
from monitor.cli.tables import Column
from monitor.db import keys
from monitor.db.tables import Alert
from monitor.spec.model import ModelSpec
from tests.monitor.monitoring_helpers import CLASSES, T0, make_db, records

TIDEWATCH = Path(sys.executable).with_name("tidewatch")
# a log record as Python's default format, ours, or uvicorn's would print it
LOG_LINE = re.compile(r"^(\S+ )?(\d{4}-\d\d-\d\d[ T]\S+ )?(DEBUG|INFO|WARNING|ERROR|CRITICAL)\b")
LIBRARIES = ("alembic", "apscheduler", "httpx", "httpcore", "uvicorn", "sqlalchemy", "frouros")
LONG_MODEL = "phytoplankton-classifier-north-sea"
LONG_RULE = "brightness-drift-3-runs"


def test_the_demo_prints_its_progress_and_table_and_nothing_else(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDEWATCH_LOG")}
    done = subprocess.run(
        [str(TIDEWATCH), "demo", "--records", "400", "--workdir", str(tmp_path / "demo")],
        env={**env, "COLUMNS": "80"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # where every log line would go
    lines = done.stdout.splitlines()
    assert "verdict: DRIFT" in done.stdout and "Where to look next:" in done.stdout
    assert [line for line in lines if LOG_LINE.match(line)] == []
    assert [line for line in lines if any(name in line.lower() for name in LIBRARIES)] == []
    assert max(len(line) for line in lines) <= 80
    assert "prediction.confidence" in done.stdout  # a whole feature name, not "prediction.co…"


@pytest.fixture
def populated(tmp_path: Path) -> Path:
    """A settings file for a database with a long-named model, two alerts and a run."""
    url = f"sqlite:///{tmp_path / 'tw.db'}"
    spec = ModelSpec.model_validate(
        {
            "name": LONG_MODEL,
            "version": "2026.11.3",
            "features": [{"name": "x", "kind": "numeric"}, {"name": "y", "kind": "numeric"}],
            "output": {"task": "classification", "classes": CLASSES},
            "monitors": [{"name": "drift-hourly", "min_samples": 20}],
        }
    )
    db = make_db(url, spec)
    db.post(records(T0, 100, seconds=100, shift=2.0))
    now = datetime.now(UTC)
    with db.sessions() as session:
        for state, rule in (("firing", LONG_RULE), ("resolved", "accuracy-floor")):
            session.add(
                Alert(
                    model_id=db.registered.model.id,
                    version="2026.11.3",
                    rule=rule,
                    kind="drift",
                    severity="critical",
                    state=state,
                    summary="5 of 11 features drifted in 3 consecutive runs: brightness, "
                    "contrast, sharpness, area, esd",
                    started_at=now,
                    acknowledged_at=now,
                    acknowledged_by="jane.doe@example.org",
                    silenced_until=now + timedelta(hours=4),
                )
            )
        session.commit()
        description = "the phytoplankton imaging module on the research vessel"
        keys.create_key(
            session, [f"ingest:{LONG_MODEL}"], description, expires_at=now + timedelta(days=30)
        )
    config = tmp_path / "tidewatch.toml"
    config.write_text(f'database_url = "{url}"\ndevice = "cpu"\n')
    return config


def _run(columns: int, *args: str) -> str:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    return result.stdout


def _headers(table: str) -> list[str]:
    line = next(line for line in table.splitlines() if line.startswith("┃"))
    return [header.strip() for header in line.strip("┃").split("┃")]


@pytest.mark.parametrize(
    ("command", "columns"),
    [
        (["alerts", "list"], ALERT_COLUMNS),
        (["models", "list"], MODEL_COLUMNS),
        (["status"], STATUS_COLUMNS),
        (["detect", LONG_MODEL], RESULT_COLUMNS),
        (["keys", "list"], KEY_COLUMNS[:-1]),
        (["keys", "list", "--all"], KEY_COLUMNS),
    ],
    ids=["alerts list", "models list", "status", "detect", "keys list", "keys list --all"],
)
def test_tables_fit_80_columns_and_wide_shows_every_column(
    populated: Path, command: list[str], columns: list[Column]
) -> None:
    narrow = _run(80, *command, "-c", str(populated))
    assert max(len(line) for line in narrow.splitlines()) <= 80, narrow
    assert LONG_MODEL in narrow or command[0] == "detect"  # names are whole, on one line
    shown = _headers(narrow)
    hidden = len(columns) - len(shown)
    assert hidden == 0 or f"{hidden} more column" in narrow
    wide = _run(80, *command, "--wide", "-c", str(populated))
    assert max(len(line) for line in wide.splitlines()) <= 80, wide
    roomy = _run(240, *command, "--wide", "-c", str(populated))
    assert _headers(roomy) == [column.header for column in columns]
    assert "with --wide" not in roomy and "with --wide" not in wide


def test_alerts_list_keeps_the_identifying_columns_at_80(populated: Path) -> None:
    narrow = _run(80, "alerts", "list", "-c", str(populated))
    header = next(line for line in narrow.splitlines() if "model" in line)
    assert [h.strip() for h in header.strip("┃ ").split("┃")][:4] == [
        "id",
        "model",
        "rule",
        "state",
    ]
    assert "more columns with --wide" in narrow
    roomy = _run(240, "alerts", "list", "-c", str(populated))
    assert "acked by jane.doe@example.org" in roomy and "with --wide" not in roomy


def test_validation_errors_are_tidewatchs_own_words(tmp_path: Path) -> None:
    bad_settings = tmp_path / "bad.toml"
    bad_settings.write_text('port = "eighty"\n')
    result = CliRunner().invoke(app, ["status", "-c", str(bad_settings)])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "invalid settings: port: Input should be a valid integer" in text
    bad_spec = tmp_path / "model.json"
    bad_spec.write_text(
        json.dumps(
            {
                "name": "m",
                "features": [{"name": "a", "kind": "numberic"}],
                "output": {"task": "classification", "classes": ["a", "b"]},
            }
        )
    )
    config = tmp_path / "ok.toml"
    config.write_text(f'database_url = "sqlite:///{tmp_path / "t.db"}"\n')
    created = CliRunner().invoke(app, ["models", "create", str(bad_spec), "-c", str(config)])
    assert created.exit_code == 2
    assert "features[0].kind: Input should be" in " ".join(created.output.split())
    monitors = tmp_path / "monitors.toml"
    monitors.write_text('[[models]]\nname = "m"\n[[models.monitors]]\nname = 3\n')
    applied = CliRunner().invoke(app, ["monitors", "apply", str(monitors), "-c", str(config)])
    assert applied.exit_code != 0 and "models[0].monitors[0].name" in applied.output
    for output in (result.output, created.output, applied.output):
        assert "http" not in output and "pydantic" not in output and "[type=" not in output


def test_logs_go_to_stderr_as_json_when_asked(populated: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["--log-level", "info", "detect", LONG_MODEL, "-c", str(populated)],
        env={"COLUMNS": "80", "TIDEWATCH_LOG_FORMAT": "json"},
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(text) for text in result.stderr.splitlines()]  # each one JSON
    (line,) = [line for line in lines if line["logger"] == "tidewatch.runs"]
    # the populated alerts' rules are not in the spec: this check resolves them, and says so;
    # the RESOLVED notice of the silenced one is held back, and that is said too
    assert {(x["message"], x["model"]) for x in lines if x is not line} == {
        ("alert resolved", LONG_MODEL),
        ("alert suppressed", LONG_MODEL),
    }
    assert line["logger"] == "tidewatch.runs" and line["model"] == LONG_MODEL
    assert line["monitor"] == "drift-hourly" and line["trigger"] == "manual"
    assert "drift" in result.stdout and "{" not in result.stdout  # the table stays on stdout
    quiet = CliRunner().invoke(app, ["detect", LONG_MODEL, "-c", str(populated)])
    assert quiet.exit_code == 0 and quiet.stderr == ""  # a command logs only warnings
