"""``tidewatch monitors``: monitor configuration from a file (on the database)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from monitor.cli.common import (
    ConfigOption,
    console,
    engine_of,
    settings_of,
)

group = typer.Typer(help="Monitor configuration.", no_args_is_help=True)


@group.command("apply")
def monitors_apply(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="TOML or JSON")],
    config: ConfigOption = None,
) -> None:
    """Give models the monitors of a file (validated whole before anything changes)."""
    from monitor.db.engine import make_sessionmaker
    from monitor.spec.monitor_file import apply_monitor_file, read_monitor_file

    try:
        parsed = read_monitor_file(file)
        with make_sessionmaker(engine_of(settings_of(config)))() as session:
            changed = apply_monitor_file(session, parsed)
    except ValueError as exc:
        console.print(f"[red]invalid monitors:[/] {exc}")
        raise typer.Exit(2) from None
    for name in changed:
        console.print(f"{name}: monitors updated")


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
