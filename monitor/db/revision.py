"""Which schema revision a database is at and which this Tidewatch needs, without Alembic.

Only ``serve``, ``worker`` and ``db upgrade`` migrate (``monitor.db.migrate``); every other
command checks the revision here and stops with a message when it is not the newest. Importing
Alembic to read one row would cost a command line more than the rest of its work, so the
revisions are read from the migration files' names (``0007_key_expiry.py`` is revision
``0007``; a test holds them to Alembic's own reading) and the database's from Alembic's table.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, inspect, text

VERSIONS = Path(__file__).parent / "migrations" / "versions"
VERSION_TABLE = "alembic_version"  # Alembic's default, which env.py keeps


class SchemaNotCurrent(Exception):
    """The database's schema is older (or newer) than this Tidewatch's; the message says what
    to do."""


def known_revisions() -> list[str]:
    """Every revision of this Tidewatch, oldest first."""
    return sorted(p.name.split("_", 1)[0] for p in VERSIONS.glob("[0-9]*_*.py"))


def head() -> str:
    """The newest revision: the one this Tidewatch needs."""
    return known_revisions()[-1]


def current(engine: Engine) -> str | None:
    """The database's revision; None for a database Tidewatch never migrated."""
    with engine.connect() as conn:
        if not inspect(conn).has_table(VERSION_TABLE):
            return None
        found: str | None = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
        return found


def require_current(engine: Engine) -> None:
    """Raise :class:`SchemaNotCurrent` unless the database is at :func:`head`."""
    at, needed = current(engine), head()
    if at == needed:
        return
    where = engine.url.render_as_string(hide_password=True)
    if at is not None and at not in known_revisions():
        raise SchemaNotCurrent(
            f"the database schema at {where} is at {at}, newer than this Tidewatch knows "
            f"(it needs {needed}): use the Tidewatch version that migrated it"
        )
    shown = at or "nothing yet (a new database)"
    raise SchemaNotCurrent(
        f"the database schema at {where} is at {shown}, this Tidewatch needs {needed}: "
        "run `tidewatch db upgrade`"
    )
