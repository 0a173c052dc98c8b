"""Liveness and readiness probes (no key needed).

``/healthz`` runs on the event loop and touches nothing else, so it answers while every worker
thread and database connection is busy. ``/readyz`` says only ready or not: why not (the
driver's error, which names the database host) goes to the log, not to anonymous callers.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from monitor.api.deps import StateDep, in_thread

router = APIRouter(tags=["health"])
log = logging.getLogger("tidewatch.health")


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


def _database_answers(state: StateDep) -> bool:
    try:
        with state.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:  # any driver error means "not ready"
        log.warning("not ready: the database does not answer", exc_info=True)
        return False
    return True


@router.get(
    "/readyz",
    responses={503: {"description": "the database does not answer (details in the log)"}},
)
async def readyz(state: StateDep) -> JSONResponse:
    """The database answers; 503 otherwise, so a load balancer stops sending traffic."""
    if await in_thread(_database_answers, state):
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "unavailable"}, status_code=503)
