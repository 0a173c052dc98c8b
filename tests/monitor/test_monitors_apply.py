"""``tidewatch monitors apply`` shows the difference first, removes nothing without
``--prune``, changes nothing with ``--dry-run``; a pruned rule's firing alert resolves with a
RESOLVED e-mail (a real SMTP server on loopback)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from typer.testing import CliRunner

from monitor.alerting.delivery import channels_from, deliver_due
from monitor.alerting.lifecycle import Alerting
from monitor.cli import app
from monitor.db.models import get_model
from monitor.db.tables import Alert
from monitor.runs.monitoring import run_due
from monitor.runs.pipeline import ReferenceCache
from monitor.settings import Settings
from monitor.spec.model import ModelSpec
from tests.conftest import Inbox
from tests.monitor.monitoring_helpers import CLASSES, T0, Db, make_db, records

runner = CliRunner()
MINUTE = {"type": "tumbling", "by": "time", "seconds": 60}

STORED: dict[str, Any] = {
    "name": "plankton",
    "features": [{"name": "x", "kind": "numeric"}, {"name": "y", "kind": "numeric"}],
    "output": {"task": "classification", "classes": CLASSES},
    "monitors": [
        {"name": "drift", "window": MINUTE, "min_samples": 20},
        {"name": "hourly", "window": {**MINUTE, "seconds": 3600}, "min_samples": 20},
    ],
    "alerts": [
        {"name": "drift-1", "kind": "drift", "monitor": "drift", "renotify_seconds": None},
        {"name": "hourly-3", "kind": "drift", "monitor": "hourly", "consecutive": 3},
    ],
    "alert_recipients": ["owner@example.org"],
}

# names only "drift" (with a new minimum) and a new rule: "hourly" and both old rules are
# left out
FILE = """
[[models]]
name = "plankton"

[[models.monitors]]
name = "drift"
window = { type = "tumbling", by = "time", seconds = 60 }
min_samples = 30

[[models.alerts]]
name = "drift-2"
kind = "drift"
monitor = "drift"
consecutive = 2
"""


def invoke(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def stored(db: Db) -> ModelSpec:
    with db.sessions() as session:
        registered = get_model(session, "plankton")
    assert registered is not None
    return registered.spec


def setup(tmp_path: Path, db_url: str, smtp_port: int = 25) -> tuple[Path, Path, Db]:
    config = tmp_path / "tidewatch.toml"
    config.write_text(
        f'database_url = "{db_url}"\ndevice = "cpu"\n'
        f'smtp_host = "127.0.0.1"\nsmtp_port = {smtp_port}\n'
    )
    file = tmp_path / "monitors.toml"
    file.write_text(FILE)
    return config, file, make_db(db_url, ModelSpec.model_validate(STORED))


def test_apply_keeps_what_the_file_leaves_out_and_names_each_change(
    tmp_path: Path, db_url: str
) -> None:
    config, file, db = setup(tmp_path, db_url)
    out = invoke("monitors", "apply", str(file), "-c", str(config))
    assert "~ monitor drift: min_samples changed" in out
    assert "= monitor hourly: not in the file, kept (--prune removes it)" in out
    assert "+ alert rule drift-2: added" in out
    assert "= alert rule drift-1: not in the file, kept" in out
    assert "= alert rule hourly-3: not in the file, kept" in out
    assert "3 not in the file kept; --prune removes them." in out
    assert "plankton: monitors updated" in out
    spec = stored(db)
    assert [m.name for m in spec.monitors] == ["drift", "hourly"]
    assert spec.monitors[0].min_samples == 30
    assert sorted(r.name for r in spec.alerts) == ["drift-1", "drift-2", "hourly-3"]
    # applied again: nothing left to change
    again = invoke("monitors", "apply", str(file), "-c", str(config))
    assert "monitors updated" not in again and "~" not in again and "+" not in again


def test_dry_run_shows_the_difference_and_changes_nothing(tmp_path: Path, db_url: str) -> None:
    config, file, db = setup(tmp_path, db_url)
    before = stored(db)
    out = invoke("monitors", "apply", str(file), "--prune", "--dry-run", "-c", str(config))
    assert "- monitor hourly: removed" in out
    assert "- alert rule drift-1: removed" in out and "- alert rule hourly-3: removed" in out
    assert "+ alert rule drift-2: added" in out
    assert "Dry run: nothing changed." in out and "monitors updated" not in out
    assert stored(db) == before


def test_prune_removes_and_the_removed_rules_alert_resolves_with_an_email(
    tmp_path: Path, db_url: str, smtp: tuple[int, Inbox]
) -> None:
    port, inbox = smtp
    config, file, db = setup(tmp_path, db_url, port)
    db.post(records(T0, 60, seconds=60, shift=2.5, prefix="m0-"))
    settings = Settings(database_url=db_url, smtp_host="127.0.0.1", smtp_port=port)
    alerting = Alerting(settings, db.sessions, clock=lambda: T0 + timedelta(minutes=1))
    monitor = db.registered.spec.monitors[0]
    runs = run_due(
        db.sessions, db.registered, monitor, ReferenceCache(), now=T0 + timedelta(minutes=1)
    )
    alerting.after_runs(db.registered, monitor.name, runs)
    deliver_due(db.sessions, channels_from(settings), settings)
    assert ["FIRING" in m["Subject"] for m in inbox.messages] == [True]

    out = invoke("monitors", "apply", str(file), "--prune", "-c", str(config))
    assert "- monitor hourly: removed" in out and "- alert rule drift-1: removed" in out
    spec = stored(db)
    assert [m.name for m in spec.monitors] == ["drift"]
    assert [r.name for r in spec.alerts] == ["drift-2"]
    with db.sessions() as session:
        (alert,) = session.scalars(select(Alert))
    assert (alert.rule, alert.state) == ("drift-1", "resolved")
    deliver_due(db.sessions, channels_from(settings), settings)
    _, resolved = inbox.messages
    assert "RESOLVED" in resolved["Subject"] and resolved["To"] == "owner@example.org"
    text = resolved.get_body(preferencelist=("plain",))
    assert text is not None and "rule 'drift-1' was removed" in text.get_content()
