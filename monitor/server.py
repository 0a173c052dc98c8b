"""Running the service with uvicorn, in the foreground or in a background thread."""

from __future__ import annotations

import gc
import logging
import socket
import sys
import threading
import time
from typing import TYPE_CHECKING

import uvicorn

from monitor.api.loading import LoadInBackground
from monitor.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger("tidewatch.server")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def serve(settings: Settings) -> None:
    """`tidewatch serve`: one process, blocking until interrupted.

    The port opens at once and answers /healthz; the API loads in a thread meanwhile (see
    monitor.api.loading), then the report's libraries (Evidently) load in another.
    """

    def build() -> FastAPI:
        from monitor.app import create_app

        app = create_app(settings)
        freeze_long_lived()
        threading.Thread(target=warm_report, name="tidewatch-warm-report", daemon=True).start()
        return app

    def stop() -> None:
        server.should_exit = True

    loading = LoadInBackground(build, on_failure=stop)
    config = uvicorn.Config(
        loading,
        host=settings.host,
        port=settings.port,
        log_config=None,  # uvicorn logs through Tidewatch's handler (observability.logs)
        timeout_graceful_shutdown=30,
        timeout_keep_alive=settings.keep_alive_seconds,
    )
    server = uvicorn.Server(config)
    server.run()
    if loading.failed:
        sys.exit(1)


def freeze_long_lived() -> None:
    """Keep the garbage collector off the objects that live as long as the process.

    torch, SQLAlchemy and friends leave ~300,000 long-lived objects (a full collection of them
    takes ~150 ms here); every full collection triggered by a parsed batch would walk them all.
    Freezing them keeps the collector on what requests allocate: in benchmarks/ingest.py this
    took PostgreSQL ingest from about 14k to 22k records/s.
    """
    gc.collect()
    gc.freeze()


def warm_report() -> None:
    """Import the report's libraries now, so that the first report request does not pay it."""
    from monitor.reporting.report import warm_up

    started = time.monotonic()
    warm_up()
    freeze_long_lived()
    log.debug("report libraries loaded in %.1f s", time.monotonic() - started)


class BackgroundServer:
    """The real HTTP service on loopback in a thread (demo and tests).

    >>> # with BackgroundServer(settings) as server: httpx.get(server.url + "/healthz")
    """

    def __init__(self, settings: Settings) -> None:
        if settings.port == 0:
            settings = settings.model_copy(update={"port": free_port(settings.host)})
        from monitor.app import create_app

        self.settings = settings
        self.app = create_app(settings)
        config = uvicorn.Config(
            self.app,
            host=settings.host,
            port=settings.port,
            log_config=None,
            log_level="warning",
            lifespan="on",
            timeout_keep_alive=settings.keep_alive_seconds,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, name="tidewatch-server", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.port}"

    def start(self, timeout: float = 30.0) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the Tidewatch server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
