"""Schema migrations with Alembic, safe when several processes start at once.

PostgreSQL: a session-level advisory lock serialises concurrent upgrades. SQLite: an exclusive
file lock next to the database file does the same.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

MIGRATIONS = Path(__file__).parent / "migrations"
# An arbitrary constant: the advisory-lock key that means "Tidewatch migrations".
_ADVISORY_KEY = 0x7469646577617463


def _config(connection: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _ADVISORY_KEY})
            conn.commit()
            try:
                yield conn
            finally:
                conn.rollback()
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _ADVISORY_KEY})
                conn.commit()
        return
    database = engine.url.database
    lock_path = Path(f"{database}.migrate.lock") if database and database != ":memory:" else None
    with contextlib.ExitStack() as stack:
        if lock_path is not None:
            handle = stack.enter_context(lock_path.open("a"))
            fcntl.flock(handle, fcntl.LOCK_EX)
        conn = stack.enter_context(engine.connect())
        yield conn


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision``; a no-op when it is already there."""
    with _migration_lock(engine) as conn:
        command.upgrade(_config(conn), revision)
        conn.commit()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(cfg).get_current_head()
