"""Liveness and readiness probes (no key needed)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from monitor.api.deps import StateDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(state: StateDep) -> JSONResponse:
    """The database answers; 503 otherwise, so a load balancer stops sending traffic."""
    try:
        with state.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means "not ready"
        return JSONResponse({"status": "unavailable", "detail": str(exc)[:200]}, status_code=503)
    return JSONResponse({"status": "ready"})
