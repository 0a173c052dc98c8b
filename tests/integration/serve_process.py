"""``tidewatch serve`` as a real process, as an operator runs it (shared by integration tests)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from monitor.server import free_port

BIN = Path(sys.executable).parent


@dataclass
class ServeProcess:
    url: str
    env: dict[str, str]
    proc: subprocess.Popen[bytes]

    def cli(self, *args: str) -> str:
        """Run another ``tidewatch`` command against the same database and settings."""
        done = subprocess.run(
            [str(BIN / "tidewatch"), *args], env=self.env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout.strip()


@contextmanager
def tidewatch_serve(
    database_url: str, log: Path, extra_env: dict[str, str] | None = None
) -> Iterator[ServeProcess]:
    """Start ``tidewatch serve`` on a free port, wait until ``/readyz`` answers, stop it after."""
    port = free_port()
    env = {
        **os.environ,
        "TIDEWATCH_DATABASE_URL": database_url,
        "TIDEWATCH_PORT": str(port),
        **(extra_env or {}),
    }
    with log.open("wb") as out:
        proc = subprocess.Popen([str(BIN / "tidewatch"), "serve"], env=env, stderr=out)
    server = ServeProcess(f"http://127.0.0.1:{port}", env, proc)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"tidewatch serve exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{server.url}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"tidewatch serve did not become ready: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield server
    finally:
        proc.terminate()
        proc.wait(timeout=30)
