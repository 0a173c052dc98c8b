"""``tidewatch serve`` answers /healthz while its API loads, then serves the API; a failed load
stops the process with status 1."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI

from monitor.api.loading import LoadInBackground
from monitor.app import create_app
from monitor.server import free_port
from monitor.settings import Settings


@contextmanager
def running(loading: LoadInBackground) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(loading, port=port, log_level="warning"))
    loading.on_failure = lambda: setattr(server, "should_exit", True)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            assert thread.is_alive(), "uvicorn did not start"
            thread.join(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def test_probes_answer_while_the_api_loads_then_the_api_serves(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'tw.db'}", scheduler=False)
    release, built = threading.Event(), threading.Event()

    def build() -> FastAPI:
        release.wait(60)  # loading takes as long as the test wants
        built.set()
        return create_app(settings)

    loading = LoadInBackground(build, on_failure=lambda: None)
    with running(loading) as url, httpx.Client(base_url=url, timeout=60) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        starting = http.get("/readyz")
        assert (starting.status_code, starting.json()) == (503, {"status": "starting"})
        assert not built.is_set()
        # a request for the API waits for it instead of failing
        answer: list[httpx.Response] = []
        waiting = threading.Thread(target=lambda: answer.append(http.get("/api/v1/models")))
        waiting.start()
        release.set()
        waiting.join(60)
        assert answer[0].status_code == 401  # the real API's answer: a key is needed
        assert http.get("/readyz").json() == {"status": "ready"}  # the real probe, on the db
        assert http.get("/openapi.json").json()["info"]["title"] == "Tidewatch"
    assert not loading.failed


def test_a_failed_start_stops_tidewatch_serve_with_status_1(tmp_path: Path) -> None:
    nothing_there = free_port()  # PostgreSQL is not listening there: the migrations fail
    env = {
        **os.environ,
        "TIDEWATCH_DATABASE_URL": f"postgresql://tidewatch@127.0.0.1:{nothing_there}/none",
        "TIDEWATCH_PORT": str(free_port()),
    }
    done = subprocess.run(
        [str(Path(sys.executable).parent / "tidewatch"), "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Tidewatch could not start" in done.stderr
    assert "Connection refused" in done.stderr or "connection failed" in done.stderr
