"""``tidewatch monitors``: monitor configuration from a file (on the database)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from monitor.cli.common import (
    ConfigOption,
    console,
    engine_of,
    settings_of,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from monitor.settings import Settings

group = typer.Typer(help="Monitor configuration.", no_args_is_help=True)


@group.command("apply")
def monitors_apply(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="TOML or JSON")],
    prune: Annotated[
        bool, typer.Option("--prune", help="Remove monitors and rules the file leaves out.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the difference only; change nothing.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Give models the monitors and alert rules of a file, after showing what changes.

    Validated whole before anything changes. Monitors and rules of a listed model that the
    file leaves out are kept unless --prune is given.
    """
    from monitor.db.engine import make_sessionmaker
    from monitor.spec.monitor_file import apply_monitor_file, plan_monitor_file, read_monitor_file

    settings = settings_of(config)
    try:
        parsed = read_monitor_file(file)  # a wrong file is said first, whatever the database
    except ValueError as exc:
        console.print(f"[red]invalid monitors:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    sessions = make_sessionmaker(engine_of(settings))
    try:
        with sessions() as session:
            plan = plan_monitor_file(session, parsed, prune=prune)
            if not dry_run:
                changed = apply_monitor_file(session, plan)
    except ValueError as exc:
        console.print(f"[red]invalid monitors:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    for entry in parsed.models:
        lines = [c.describe() for c in plan.changes if c.model == entry.name]
        console.print(f"[bold]{entry.name}[/]" + ("" if lines else ": no changes"))
        for line in lines:
            console.print(f"  {escape(line)}", highlight=False)
    kept = sum(c.action == "keep" for c in plan.changes)
    if kept:
        console.print(f"{kept} not in the file kept; --prune removes them.")
    if dry_run:
        console.print("Dry run: nothing changed.")
        return
    for name in changed:
        console.print(f"{name}: monitors updated")
    if prune and changed:
        _resolve_removed_rules(settings, sessions, changed)


def _resolve_removed_rules(
    settings: Settings, sessions: sessionmaker[Session], models: list[str]
) -> None:
    """Firing alerts of removed rules resolve now, with their RESOLVED notice in the outbox
    (the worker sends it), rather than at the model's next run."""
    from monitor.alerting.lifecycle import Alerting
    from monitor.db.models import get_model

    alerting = Alerting(settings, sessions)
    for name in models:
        with sessions() as session:
            registered = get_model(session, name)
        if registered is not None:
            alerting.resolve_orphans(registered)


@group.command("show")
def monitors_show(model: str, config: ConfigOption = None) -> None:
    """MODEL's monitors as JSON."""
    from monitor.db.engine import make_sessionmaker
    from monitor.db.models import get_model

    with make_sessionmaker(engine_of(settings_of(config)))() as session:
        registered = get_model(session, model)
    if registered is None:
        console.print(f"[red]unknown model {model!r}[/]")
        raise typer.Exit(1)
    typer.echo(json.dumps([m.model_dump(mode="json") for m in registered.spec.monitors], indent=2))
