"""``tidewatch db``: the schema and retention (on the database)."""

from __future__ import annotations

import typer

from monitor.cli.common import (
    ConfigOption,
    console,
    engine_of,
    settings_of,
)

group = typer.Typer(help="Database schema and retention.", no_args_is_help=True)


@group.command("upgrade")
def db_upgrade(config: ConfigOption = None) -> None:
    """Bring the database schema up to date (safe to run from several processes at once)."""
    from monitor.db.migrate import current_revision

    engine = engine_of(settings_of(config), migrate=True)
    console.print(f"database at revision {current_revision(engine)}")


@group.command("purge")
def db_purge(config: ConfigOption = None) -> None:
    """Delete telemetry older than the retention period now."""
    from monitor.db.engine import make_sessionmaker
    from monitor.scheduling.retention import purge_expired

    settings = settings_of(config)
    removed = purge_expired(make_sessionmaker(engine_of(settings)), settings.retention_days)
    console.print(f"purged {removed} telemetry batches older than {settings.retention_days} days")
