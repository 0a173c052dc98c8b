"""Leader election: of all the processes sharing one database, exactly one schedules monitors.

PostgreSQL: the leader holds a session-level advisory lock on a connection it keeps open. When
the leader dies (even by ``kill -9``) the server ends its session and frees the lock, and the
next follower that tries (every ``poll`` seconds) leads. The leader checks its connection at
each poll and steps down when it is gone, so two leaders overlap for at most one poll; the row
locks and unique window keys of :mod:`monitor.runs.monitoring` keep even that overlap harmless.

SQLite: an exclusive ``flock`` on a file beside the database does the same for processes on one
machine (the only place an SQLite file can be shared). An in-memory database has one process.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, Row, select, text

from monitor.db.schema import scheduler_leaders

if TYPE_CHECKING:  # `tidewatch status` reads the leader without the ORM (current_leader)
    from sqlalchemy.orm import Session, sessionmaker

# An arbitrary constant: the advisory-lock key that means "Tidewatch scheduler".
SCHEDULER_LOCK_KEY = 0x7464776C65616472
ROLE = "scheduler"


def holder_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class LeaderLock:
    """Try to become leader; check that we still are; step down."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._conn: Connection | None = None
        self._file: IO[Any] | None = None
        self.held = False

    def try_acquire(self) -> bool:
        if self.held:
            return True
        if self.engine.dialect.name == "postgresql":
            self.held = self._try_postgres()
        else:
            self.held = self._try_file()
        return self.held

    def _try_postgres(self) -> bool:
        conn = self.engine.connect()
        try:
            got = bool(
                conn.execute(
                    text("SELECT pg_try_advisory_lock(:k)"), {"k": SCHEDULER_LOCK_KEY}
                ).scalar()
            )
            conn.commit()
        except Exception:
            conn.close()
            raise
        if not got:
            conn.close()
            return False
        self._conn = conn
        return True

    def _try_file(self) -> bool:
        database = self.engine.url.database
        if not database or database == ":memory:":
            return True
        handle = Path(f"{database}.scheduler.lock").open("a")  # noqa: SIM115 (held while leading)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._file = handle
        return True

    def still_held(self) -> bool:
        """False when the lock's connection is gone (the server may have given it away)."""
        if not self.held:
            return False
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT 1"))
                self._conn.commit()
            except Exception:
                self.release()
                return False
        return True

    def release(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": SCHEDULER_LOCK_KEY})
                self._conn.commit()
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
        if self._file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
        self.held = False


def announce(sessions: sessionmaker[Session], holder: str, *, acquired: bool) -> None:
    """Write who leads (``acquired``) or that the leader is still alive (a heartbeat)."""
    from monitor.db.tables import SchedulerLeader

    now = datetime.now(UTC)
    with sessions() as session:
        row = session.get(SchedulerLeader, ROLE)
        if row is None:
            row = SchedulerLeader(name=ROLE, holder=holder, acquired_at=now, heartbeat_at=now)
            session.add(row)
        if acquired or row.holder != holder:
            row.holder, row.acquired_at = holder, now
        row.heartbeat_at = now
        session.commit()


def current_leader(session: Connection | Session) -> Row[Any] | None:
    """The ``scheduler_leaders`` row (holder, acquired_at, heartbeat_at); None before any."""
    query = select(scheduler_leaders).where(scheduler_leaders.c.name == ROLE)
    return session.execute(query).first()
