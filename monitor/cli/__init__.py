"""The ``tidewatch`` command line: one module per command group.

Groups that work on the database (``db``, ``models``, ``keys``, ``monitors``, ``alerts``, and
``detect``/``backfill``/``status``) take ``--config``; groups that talk to a running service
as a module would (``reference``, ``collect``) take ``--url`` and ``--key``.
"""

from __future__ import annotations

import gc
import os

import typer

from monitor.cli import (
    alerts,
    collect,
    dashboards,
    db,
    detection,
    keys,
    logging_options,
    models,
    monitors,
    reference,
    service,
)

app = typer.Typer(help="Tidewatch: monitoring for ML models in production.", no_args_is_help=True)
app.callback()(logging_options.options)  # --log-level and --log-format, before the command
for command in (*service.COMMANDS, *collect.COMMANDS, *detection.COMMANDS):
    app.command()(command)
app.add_typer(db.group, name="db")
app.add_typer(models.group, name="models")
app.add_typer(keys.group, name="keys")
app.add_typer(reference.group, name="reference")
app.add_typer(monitors.group, name="monitors")
app.add_typer(dashboards.group, name="dashboards")
app.add_typer(alerts.group, name="alerts")


def main() -> None:
    os.environ.setdefault("DO_NOT_TRACK", "1")  # library usage telemetry stays off
    # What the imports made (modules, classes, schemas) lives as long as the process: frozen,
    # the cyclic collector stops walking it at each collection and at exit, which was a sixth
    # of a command's start-up (see the README's "Start-up time")
    gc.freeze()
    app()
