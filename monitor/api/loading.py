"""What ``tidewatch serve`` runs: ``/healthz`` at once, the API as soon as it has loaded.

Building the API imports the detectors and their libraries (torch, scipy, scikit-learn): many
seconds on a small machine, during which a liveness probe would get no answer and might restart
the process. So ``serve`` binds its port with this small ASGI application first. It answers
``/healthz`` itself (the process is up) and ``/readyz`` with 503 (not ready yet), builds the
real application in a thread, runs that application's lifespan (migrations, scheduler, purge),
and from then on hands every request to it. Any other request that arrives while loading waits
for it. When loading fails, the error is logged and ``on_failure`` runs (``serve`` stops the
server and exits with status 1), as a failed start did before.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.types import Receive, Scope, Send

log = logging.getLogger("tidewatch.server")


class LoadInBackground:
    def __init__(self, build: Callable[[], FastAPI], on_failure: Callable[[], None]) -> None:
        self.build = build
        self.on_failure = on_failure
        self.app: FastAPI | None = None
        self.failed = False
        self._done = asyncio.Event()  # loaded, or failed
        self._stop = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if self.app is None and scope["type"] == "http" and scope["path"] == "/healthz":
            await _answer(send, 200, {"status": "ok"})
            return
        if self.app is None and scope["type"] == "http" and scope["path"] == "/readyz":
            await _answer(send, 503, {"status": "starting"})
            return
        await self._done.wait()
        if self.app is not None:
            await self.app(scope, receive, send)
        elif scope["type"] == "http":
            await _answer(send, 503, {"detail": "Tidewatch failed to start (see its log)"})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        await receive()  # lifespan.startup: the port opens now, the API loads meanwhile
        running = asyncio.create_task(self._run())
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        self._stop.set()
        await running
        await send({"type": "lifespan.shutdown.complete"})

    async def _run(self) -> None:
        started = time.monotonic()
        try:
            app = await asyncio.to_thread(self.build)
            lifespan = app.router.lifespan_context(app)
            await lifespan.__aenter__()
        except Exception:
            log.exception("Tidewatch could not start")
            self.failed = True
            self._done.set()
            self.on_failure()
            return
        self.app = app
        self._done.set()
        log.info("Tidewatch API ready after %.1f s", time.monotonic() - started)
        await self._stop.wait()
        await lifespan.__aexit__(None, None, None)


async def _answer(send: Send, status: int, body: dict[str, Any]) -> None:
    content = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(content))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})
