"""Purging telemetry older than the retention period."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session, sessionmaker

from monitor.db.telemetry import purge

log = logging.getLogger("tidewatch.retention")


def purge_expired(sessions: sessionmaker[Session], retention_days: float) -> int:
    cutoff = datetime.now(UTC) - timedelta(days=retention_days)
    with sessions() as session:
        removed = purge(session, cutoff)
    if removed:
        log.info("purged %d telemetry batches older than %s", removed, cutoff.isoformat())
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
