"""``GET /metrics``: Prometheus text format, no key (scrapers rarely carry one)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from monitor.api.deps import StateDep
from monitor.observability.registry import CONTENT_TYPE_LATEST

router = APIRouter(tags=["health"])


@router.get("/metrics", include_in_schema=False)
async def get_metrics(state: StateDep) -> Response:
    body = await run_in_threadpool(state.exposition.render)  # reads the database
    return Response(body, media_type=CONTENT_TYPE_LATEST)
