"""Ingest metrics for the telemetry and labels routes, as plain ASGI middleware.

Measured around the whole request (reading, validating and committing the batch). The model
label is the path's model name only when the request got past authentication and the model
lookup; a 401, 403 or 404 counts under ``model=""``, so nobody can grow the label set by
posting to made-up names.
"""

from __future__ import annotations

import re
import time
from typing import Any

from monitor.observability.service import INGEST_SECONDS, REJECTED

_PATH = re.compile(r"^/api/v1/models/([^/]+)/(?:telemetry|labels)$")
_ANONYMOUS = (401, 403, 404)


class IngestMetrics:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        match = _PATH.match(scope.get("path", "")) if scope["type"] == "http" else None
        if match is None or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        seen: dict[str, int] = {}

        async def sending(message: Any) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
            await send(message)

        start = time.perf_counter()
        try:
            await self.app(scope, receive, sending)
        finally:
            status = seen.get("status", 500)
            model = "" if status in _ANONYMOUS else match.group(1)
            INGEST_SECONDS.labels(model).observe(time.perf_counter() - start)
            if 400 <= status < 500:
                REJECTED.labels(model, str(status)).inc()
