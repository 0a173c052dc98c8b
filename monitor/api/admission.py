"""Admission control: beyond ``max_in_flight`` requests at once, answer 503 at once.

A request that waits for a database connection behind hundreds of others would time out at
the client anyway, after holding a socket and memory for that long. Shedding it immediately,
with ``Retry-After``, keeps the accepted requests fast and lets clients (the collectors client
honours the header) come back when there is room. The probes and ``/metrics`` are never shed:
an orchestrator must see the process alive, and an operator must see the load.

A plain ASGI middleware (no per-request task, no body buffering): the check is one integer
comparison on the event loop.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

# never shed: liveness, readiness and the metrics an operator needs most under load
UNSHED = frozenset({"/healthz", "/readyz", "/metrics"})


class AdmissionControl:
    def __init__(self, app: ASGIApp, *, max_in_flight: int, retry_after: int = 1) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.retry_after = retry_after
        self.in_flight = 0
        self.shed = 0  # requests answered 503 since start (read by tests and /metrics)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNSHED:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            self.shed += 1
            await _drain(receive)
            await self._overloaded(send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1

    async def _overloaded(self, send: Send) -> None:
        body = json.dumps(
            {
                "detail": f"Tidewatch is at its limit of {self.max_in_flight} requests at once; "
                f"retry after {self.retry_after} s"
            }
        ).encode()
        headers: list[Any] = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(self.retry_after).encode()),
        ]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})


# a refused body is read (and dropped) up to this much; a larger one gets its answer mid-body
DRAIN_LIMIT = 32 * 2**20


async def _drain(receive: Receive) -> None:
    """Read the refused request's body before answering.

    A server that answers and closes while the client is still sending makes the client see a
    connection reset instead of the 503 and its Retry-After. Chunks are discarded as they come.
    """
    drained = 0
    while drained <= DRAIN_LIMIT:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return
        drained += len(message.get("body", b""))
