"""``tidewatch keys``: API keys (on the database)."""

from __future__ import annotations

from typing import Annotated

import typer

from monitor.cli.common import (
    ConfigOption,
    console,
    engine_of,
    settings_of,
)

group = typer.Typer(help="API keys.", no_args_is_help=True)


@group.command("create")
def keys_create(
    scope: Annotated[
        list[str], typer.Option("--scope", "-s", help="admin, read or ingest:<model>")
    ],
    description: Annotated[str, typer.Option(help="who or what uses the key")] = "",
    config: ConfigOption = None,
) -> None:
    """Create an API key; it is printed once and stored only as a hash."""
    from monitor.db import keys
    from monitor.db.engine import make_sessionmaker

    try:
        keys.validate_scopes(scope)
    except ValueError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    with make_sessionmaker(engine_of(settings_of(config)))() as session:
        key = keys.create_key(session, scope, description)
    typer.echo(key)


@group.command("revoke")
def keys_revoke(
    prefix: Annotated[str, typer.Argument(help="the key's first 10 characters")],
    config: ConfigOption = None,
) -> None:
    """Revoke keys by their prefix."""
    from monitor.db import keys
    from monitor.db.engine import make_sessionmaker

    with make_sessionmaker(engine_of(settings_of(config)))() as session:
        n = keys.revoke(session, prefix)
    console.print(f"revoked {n} key(s)")
