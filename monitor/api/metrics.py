"""``GET /metrics``: Prometheus text format, no key (scrapers rarely carry one).

The results are read from the database through an engine of their own (one connection) and on
a thread of their own, so a scrape never waits behind the requests for a connection or a
worker thread: the operator sees the load while it happens.
"""

from __future__ import annotations

import anyio
import anyio.to_thread
from fastapi import APIRouter
from fastapi.responses import Response

from monitor.api.deps import StateDep
from monitor.observability.registry import CONTENT_TYPE_LATEST

router = APIRouter(tags=["health"])


@router.get("/metrics", include_in_schema=False)
async def get_metrics(state: StateDep) -> Response:
    body = await anyio.to_thread.run_sync(state.exposition.render, limiter=state.metrics_limiter)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
