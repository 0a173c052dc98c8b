"""ASGI middleware for FastAPI and Starlette model services: predictions become telemetry.

It copies (never changes) the JSON request and response of the routes it watches and, once the
response has been sent, hands them to ``client.log``; nothing in it can fail a request. Bodies
over ``max_body`` bytes are not recorded.

    app.add_middleware(TidewatchMiddleware, client=client, paths=("/predict",))
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from typing import Any

from collectors.adapters import from_mapping
from collectors.client import TelemetryClient

log = logging.getLogger("tidewatch.collectors")
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def default_features(request: Any) -> Mapping[str, Any]:
    """The request's top-level numbers, strings and lists of numbers."""
    if not isinstance(request, Mapping):
        return {}
    return {
        k: v
        for k, v in request.items()
        if isinstance(v, (int, float, str))
        or (isinstance(v, list) and all(isinstance(x, (int, float)) for x in v))
    }


def default_prediction(response: Any) -> Mapping[str, Any] | None:
    return from_mapping(response) if isinstance(response, Mapping) else None


class TidewatchMiddleware:
    """Log watched JSON routes' inputs and outputs as telemetry (see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        client: TelemetryClient,
        paths: Sequence[str] = ("/predict",),
        methods: Sequence[str] = ("POST",),
        features: Callable[[Any], Mapping[str, Any]] = default_features,
        prediction: Callable[[Any], Mapping[str, Any] | None] = default_prediction,
        max_body: int = 1 << 20,
    ) -> None:
        self.app = app
        self.client = client
        self.paths = tuple(paths)
        self.methods = tuple(m.upper() for m in methods)
        self.features = features
        self.prediction = prediction
        self.max_body = max_body
        self.errors = 0
        self._last_error_log = -math.inf  # monotonic time starts at boot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method", "").upper() not in self.methods
            or not scope.get("path", "").startswith(self.paths)
        ):
            await self.app(scope, receive, send)
            return
        request_body = bytearray()
        response_body = bytearray()
        status = 0

        async def receive_copy() -> Message:
            message = await receive()
            if message["type"] == "http.request" and len(request_body) <= self.max_body:
                request_body.extend(message.get("body", b""))
            return message

        async def send_copy(message: Message) -> None:
            nonlocal status
            await send(message)  # the caller's response first, untouched
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                if len(response_body) <= self.max_body:
                    response_body.extend(message.get("body", b""))
                if not message.get("more_body", False):
                    self._record(status, bytes(request_body), bytes(response_body))

        await self.app(scope, receive_copy, send_copy)

    def _record(self, status: int, request: bytes, response: bytes) -> None:
        if status >= 400 or len(request) > self.max_body or len(response) > self.max_body:
            return
        try:
            inputs, outputs = json.loads(request or b"null"), json.loads(response or b"null")
            self.client.log(self.features(inputs), self.prediction(outputs))
        except Exception as exc:  # monitoring must never fail a prediction
            self.errors += 1
            if time.monotonic() - self._last_error_log > 60:
                self._last_error_log = time.monotonic()
                log.warning("could not record a prediction for Tidewatch: %r", exc)
