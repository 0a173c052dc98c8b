"""Purging telemetry older than the retention period."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session, sessionmaker

from monitor.db.telemetry import purge

log = logging.getLogger("tidewatch.retention")


def purge_expired(sessions: sessionmaker[Session], retention_days: float, **chunks: int) -> int:
    """Purge telemetry and labels older than ``retention_days``; returns batches removed.

    The purge commits chunk by chunk (see `monitor.db.telemetry.purge`), so ingest goes on
    while it runs; ``chunks`` passes chunk sizes through (``batches_per_chunk`` and so on).
    """
    cutoff = datetime.now(UTC) - timedelta(days=retention_days)
    started = time.monotonic()
    with sessions() as session:
        removed = purge(session, cutoff, **chunks)
    if removed:
        log.info(
            "purged %d telemetry batches older than %s in %.1f s",
            removed,
            cutoff.isoformat(),
            time.monotonic() - started,
        )
    return removed


async def purge_periodically(
    sessions: sessionmaker[Session], retention_days: float, interval: float
) -> None:
    """Background task of `tidewatch serve`; a failing purge is logged and tried again later."""
    while True:
        try:
            await run_in_threadpool(purge_expired, sessions, retention_days)
        except Exception:
            log.exception("telemetry purge failed; retrying in %.0f s", interval)
        await asyncio.sleep(interval)
