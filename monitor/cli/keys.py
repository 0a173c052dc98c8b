"""``tidewatch keys``: API keys (on the database)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from monitor.cli.common import (
    ConfigOption,
    console,
    engine_of,
    parse_when,
    settings_of,
)
from monitor.cli.tables import Column, WideOption, fitted

group = typer.Typer(help="API keys.", no_args_is_help=True)

_DURATION = re.compile(r"^(\d+)([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """``90m``, ``12h``, ``30d`` or ``8w``."""
    match = _DURATION.match(text.strip())
    if match is None or int(match[1]) == 0:
        raise typer.BadParameter(f"{text!r}: use a number and a unit, as in 90m, 12h, 30d or 8w")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


def _expiry(expires_in: str | None, expires: str | None) -> datetime | None:
    if expires_in is not None and expires is not None:
        raise typer.BadParameter("give --expires-in or --expires, not both")
    if expires_in is not None:
        return datetime.now(UTC) + parse_duration(expires_in)
    return None if expires is None else parse_when(expires)


def _when(moment: datetime | None) -> str:
    # to the minute: last use is recorded at that resolution, and the table stays narrow
    return "-" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


@group.command("create")
def keys_create(
    scope: Annotated[
        list[str],
        typer.Option("--scope", "-s", help="admin, read or ingest:<model> (a registered model)"),
    ],
    description: Annotated[str, typer.Option(help="who or what uses the key")] = "",
    expires_in: Annotated[
        str | None, typer.Option("--expires-in", help="valid for 90m, 12h, 30d, 8w, ...")
    ] = None,
    expires: Annotated[
        str | None,
        typer.Option(help="valid until this UTC time or date (2027-01-31 means its 00:00)"),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Create an API key; it is printed once and stored only as a hash."""
    from monitor.db import keys
    from monitor.db.engine import make_sessionmaker

    expires_at = _expiry(expires_in, expires)
    try:
        keys.validate_scopes(scope)
    except ValueError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    with make_sessionmaker(engine_of(settings_of(config)))() as session:
        try:
            key = keys.create_key(session, scope, description, expires_at=expires_at)
        except ValueError as exc:
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(2) from None
    typer.echo(key)  # alone on standard output, for scripts: KEY=$(tidewatch keys create ...)
    if expires_at is not None:
        typer.echo(f"expires {_when(expires_at)} UTC", err=True)


@group.command("list")
def keys_list(
    show_all: Annotated[bool, typer.Option("--all", help="revoked keys too")] = False,
    wide: WideOption = False,
    config: ConfigOption = None,
) -> None:
    """The keys: prefix, scopes, description and times (UTC). Never the key nor its hash."""
    from monitor.db import keys
    from monitor.db.engine import make_sessionmaker

    rows = []
    now = datetime.now(UTC)
    with make_sessionmaker(engine_of(settings_of(config)))() as session:
        for row in keys.list_keys(session, include_revoked=show_all):
            expires = _when(row.expires_at)
            if keys.has_expired(row, now):
                expires = f"[red]{expires} (expired)[/]"
            cells = [str(row.id), row.prefix, row.scopes, row.description or "-"]
            cells += [_when(row.created_at), _when(row.last_used_at), expires]
            rows.append([*cells, *([_when(row.revoked_at)] if show_all else [])])
    columns = KEY_COLUMNS if show_all else KEY_COLUMNS[:-1]
    console.print(fitted(console, columns, rows, wide=wide, title="API keys (UTC)"))


# at 80 columns what a key is and may do comes first, then when it expires
KEY_COLUMNS = [
    Column("id", justify="right"),
    Column("prefix"),
    Column("scopes", wrap=True),
    Column("description", drop=3, wrap=True),
    Column("created", drop=4),
    Column("last used", drop=2),
    Column("expires", drop=1),
    Column("revoked", drop=2),
]


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
