"""Start-up cost and migrations of the command line.

Commands that compute nothing import no heavy library (checked through ``sys.modules`` in a
fresh interpreter), and only ``serve``, ``worker`` and ``db upgrade`` migrate: every other
command stops with a message when the schema is behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from sqlalchemy import text
from typer.testing import CliRunner

from monitor.cli import app
from monitor.db import keys
from monitor.db.engine import make_engine, make_sessionmaker
from monitor.db.migrate import head_revision, upgrade
from monitor.db.models import upsert_model
from monitor.db.revision import head, known_revisions
from monitor.server import BackgroundServer, free_port
from monitor.settings import Settings
from monitor.spec.model import ModelSpec
from tests.conftest import SPEC

HEAVY = ["authlib", "evidently", "pandas", "scipy", "sklearn", "torch"]
# a stored model whose monitors have detector parameters and a streaming detector: reading it
# back must not build them
STORED_SPEC = {
    **SPEC,
    "monitors": [
        {
            "name": "drift",
            "window": {"type": "tumbling", "by": "time", "seconds": 3600},
            "detectors": {"numeric": {"name": "psi", "params": {"n_bins": 20}}},
            "performance": {"streaming": {"name": "adwin", "params": {"delta": 0.01}}},
        }
    ],
}

# Runs each command in turn in one fresh interpreter, through the `tidewatch` entry point, and
# records its exit code and which heavy packages are loaded once it is done.
PROBE = """
import json, sys
from monitor.cli import main
heavy, commands, found = json.loads(sys.argv[1]), json.loads(sys.argv[2]), []
for args in commands:
    sys.argv = ["tidewatch", *args]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    found.append([args, code, sorted({m.split(".")[0] for m in sys.modules} & set(heavy))])
print("PROBE " + json.dumps(found))
"""

# `models list` then `status` in one fresh interpreter, then which of the modules given it loaded
LIST_PROBE = """
import json, sys
from monitor.cli import main
config, modules = sys.argv[1], json.loads(sys.argv[2])
for args in (["models", "list", "-c", config], ["status", "-c", config]):
    sys.argv = ["tidewatch", *args]
    try:
        main()
    except SystemExit as exc:
        assert not exc.code, exc.code
print("LOADED " + json.dumps([m for m in modules if m in sys.modules]))
"""

runner = CliRunner()


def test_commands_that_compute_nothing_import_no_heavy_library(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tw.db'}"
    config = tmp_path / "tidewatch.toml"
    config.write_text(f'database_url = "{url}"\n')
    spec = tmp_path / "model.json"
    spec.write_text(json.dumps({**SPEC, "name": "krill"}))
    monitors = tmp_path / "monitors.toml"
    monitors.write_text('[[models]]\nname = "krill"\n\n[[models.monitors]]\nname = "hourly"\n')
    reference = tmp_path / "ref.csv"
    rows = np.random.default_rng(0).normal(size=200)
    reference.write_text(
        "brightness,site,emb_0,emb_1,emb_2\n" + "".join(f"{v:.4f},a,0.1,0.2,0.3\n" for v in rows)
    )
    engine = make_engine(url)
    upgrade(engine)
    with make_sessionmaker(engine)() as session:
        upsert_model(session, ModelSpec.model_validate(STORED_SPEC))
        admin = keys.create_key(session, ["admin"])
    engine.dispose()
    c = ["-c", str(config)]
    with BackgroundServer(Settings(database_url=url, port=0, scheduler=False)) as server:
        commands = [
            ["--help"],
            ["db", "upgrade", *c],
            ["models", "create", str(spec), *c],
            ["models", "list", *c],
            ["monitors", "apply", str(monitors), *c],
            ["monitors", "show", "plankton", *c],
            ["keys", "create", "--scope", "read", *c],
            ["keys", "list", *c],
            ["keys", "revoke", "tw_nothing", *c],
            ["status", *c],
            ["alerts", "list", *c],
            ["reference", "upload", "krill", str(reference), "--url", server.url, "--key", admin],
        ]
        done = subprocess.run(
            [sys.executable, "-c", PROBE, json.dumps(HEAVY), json.dumps(commands)],
            capture_output=True,
            text=True,
            timeout=240,
            env={**os.environ, "COLUMNS": "200"},
        )
    line = next((x for x in done.stdout.splitlines() if x.startswith("PROBE ")), None)
    assert line is not None, done.stdout + done.stderr
    results = json.loads(line.removeprefix("PROBE "))
    assert [args for args, _, _ in results] == commands
    for args, code, heavy in results:
        assert (code, heavy) == (0, []), f"tidewatch {' '.join(args)}\n{done.stdout}"
    assert "200 rows stored" in done.stdout  # the upload did reach the service


def test_models_list_and_status_read_the_stored_spec_without_validating_it(
    tmp_path: Path,
) -> None:
    # names, task, feature count and monitor names come from the stored spec's JSON: the spec's
    # pydantic models (with the alert rules they load) stay out of both commands, and on SQLite
    # so does SQLAlchemy's PostgreSQL dialect (the partial indexes no longer name it)
    url = f"sqlite:///{tmp_path / 'tw.db'}"
    config = tmp_path / "tidewatch.toml"
    config.write_text(f'database_url = "{url}"\n')
    engine = make_engine(url)
    upgrade(engine)
    with make_sessionmaker(engine)() as session:
        upsert_model(session, ModelSpec.model_validate(STORED_SPEC))
    engine.dispose()
    # the ORM too: both read the Core tables of monitor.db.schema on a connection
    lazy = [
        "monitor.spec.model",
        "alerts.rules",
        "sqlalchemy.dialects.postgresql",
        "sqlalchemy.orm",
        "monitor.db.tables",
        # the root imports the module of the command run, no other (monitor.cli.COMMANDS)
        "monitor.cli.alerts",
        "monitor.cli.keys",
        "monitor.cli.service",
        "monitor.cli.collect",
    ]
    done = subprocess.run(
        [sys.executable, "-c", LIST_PROBE, str(config), json.dumps(lazy)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "LOADED []" in done.stdout, done.stdout
    listed, status = done.stdout.split("scheduler")[0].split("┏")[1:]
    cells = [cell.strip() for cell in listed.splitlines()[3].split("│")[1:5]]
    assert cells == ["plankton", "1", "classification", "3"]
    assert "drift: no data" in status


def test_the_root_names_every_command_of_every_module() -> None:
    # the root loads a command from its module when it is run (monitor.cli.COMMANDS): a group
    # or command a module defines but the table forgets would be missing from the command line
    import importlib
    import pkgutil

    import typer

    import monitor.cli

    defined = set()
    for info in pkgutil.iter_modules(monitor.cli.__path__):
        module = importlib.import_module(f"monitor.cli.{info.name}")
        if isinstance(getattr(module, "group", None), typer.Typer):
            defined.add((module.__name__, "group"))
        defined |= {(module.__name__, f.__name__) for f in getattr(module, "COMMANDS", [])}
    assert defined == set(monitor.cli.COMMANDS.values())
    for name in monitor.cli.COMMANDS:
        assert monitor.cli.load(name).name == name


def test_revisions_read_without_alembic_agree_with_alembic() -> None:
    assert head() == head_revision()
    assert known_revisions() == sorted(known_revisions()) and head() in known_revisions()


def test_commands_other_than_upgrade_refuse_a_database_that_is_behind(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tw.db'}"
    config = tmp_path / "tidewatch.toml"
    config.write_text(f'database_url = "{url}"\n')
    c = ["-c", str(config)]

    def refused(*args: str) -> str:
        result = runner.invoke(app, [*args, *c], env={"COLUMNS": "200"})
        assert result.exit_code == 1, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert "Traceback" not in result.output
        return " ".join(result.output.split())

    # a new database: nothing there yet, and nothing created by the refusal
    out = refused("status")
    assert f"is at nothing yet (a new database), this Tidewatch needs {head()}" in out
    assert "run `tidewatch db upgrade`" in out
    engine = make_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM sqlite_master")).scalar() == 0

    # an older schema: every database command names it, none migrates
    older = known_revisions()[-2]
    upgrade(engine, older)
    for args in (["models", "list"], ["keys", "create", "--scope", "admin"], ["alerts", "list"]):
        out = refused(*args)
        assert f"is at {older}, this Tidewatch needs {head()}: run `tidewatch db upgrade`" in out
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == older

    # `db upgrade` brings it up to date, then the others work
    assert f"database at revision {head()}" in runner.invoke(app, ["db", "upgrade", *c]).output
    listed = runner.invoke(app, ["models", "list", *c])
    assert listed.exit_code == 0, listed.output

    # a schema newer than this Tidewatch knows is not "behind": upgrading would not help
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'ffff'"))
    out = refused("status")
    assert "is at ffff, newer than this Tidewatch knows" in out
    assert "db upgrade" not in out
    engine.dispose()


def test_a_database_that_cannot_be_reached_is_named_without_a_traceback(tmp_path: Path) -> None:
    config = tmp_path / "tidewatch.toml"
    config.write_text(f'database_url = "postgresql://tw@127.0.0.1:{free_port()}/none"\n')
    result = runner.invoke(app, ["status", "-c", str(config)], env={"COLUMNS": "200"})
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert "cannot read postgresql+psycopg://tw@127.0.0.1:" in result.output
    assert "Connection refused" in result.output
