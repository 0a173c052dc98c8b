"""What every command group shares: the console, the settings option, the database engine and
the formats of times and numbers."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from monitor.settings import Settings, load_settings
from monitor.spec.errors import describe

if TYPE_CHECKING:  # the database commands never load httpx, nor rich's progress bars
    import httpx
    from rich.progress import Progress, ProgressColumn

console = Console()

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML settings file", envvar="TIDEWATCH_CONFIG"),
]

# the commands that talk to a running service, as a module would
DEFAULT_URL = "http://127.0.0.1:8000"
UrlOption = Annotated[str, typer.Option("--url", envvar="TIDEWATCH_URL", help="Tidewatch base URL")]
KeyOption = Annotated[
    str, typer.Option("--key", envvar="TIDEWATCH_KEY", help="API key (admin or ingest:<model>)")
]


def unreachable(url: str, exc: Exception) -> NoReturn:
    console.print(
        f"[red]could not reach Tidewatch at {url}: {exc}[/]\n"
        "Is `tidewatch serve` running there? Set the address with --url or TIDEWATCH_URL."
    )
    raise typer.Exit(1)


def refused(response: httpx.Response) -> NoReturn:
    console.print(f"[red]refused ({response.status_code}):[/] {response.text}")
    raise typer.Exit(1)


def progress_bar(*columns: str | ProgressColumn) -> Progress:
    """A progress bar on the console: the task's description, the bar, then ``columns``."""
    from rich.progress import BarColumn, Progress

    return Progress(
        "[progress.description]{task.description}", BarColumn(), *columns, console=console
    )


def settings_of(config: Path | None, **overrides: Any) -> Settings:
    try:
        return load_settings(config, **{k: v for k, v in overrides.items() if v is not None})
    except (ValidationError, FileNotFoundError, tomllib.TOMLDecodeError) as exc:
        reason = describe(exc) if isinstance(exc, ValidationError) else str(exc)
        console.print("[red]invalid settings:[/]", escape(reason))
        raise typer.Exit(2) from None


def engine_of(settings: Settings, *, migrate: bool = False) -> Any:
    """The database's engine. Only ``db upgrade`` and ``worker`` migrate (``serve`` does at
    start); any other command stops with a message when the schema is not the newest."""
    from sqlalchemy.exc import OperationalError

    from monitor.db.engine import make_engine
    from monitor.db.revision import SchemaNotCurrent, require_current

    engine = make_engine(settings.database_url)
    if migrate:
        from monitor.db.migrate import upgrade

        upgrade(engine)
        return engine
    try:
        require_current(engine)
    except (SchemaNotCurrent, OperationalError) as exc:
        engine.dispose()
        where = engine.url.render_as_string(hide_password=True)
        reason = (
            str(exc) if isinstance(exc, SchemaNotCurrent) else f"cannot read {where}: {exc.orig}"
        )
        console.print(f"[red]{escape(reason)}[/]")
        raise typer.Exit(1) from None
    return engine


def parse_when(text: str) -> datetime:
    """An ISO 8601 time (UTC when it names no zone) or a date."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not an ISO 8601 time such as 2026-11-01T00:00"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def show_time(moment: datetime | None) -> str:
    return "-" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def show_number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"
