"""One real ``tidewatch serve`` process for a benchmark: started, ready, with an admin key."""

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

BIN = Path(sys.executable).parent


@dataclass
class Served:
    url: str
    proc: subprocess.Popen[bytes]
    key: str  # an admin key


@contextmanager
def tidewatch_serve(database_url: str, port: int) -> Iterator[Served]:
    """``tidewatch serve`` on ``port`` without the scheduler (benchmarks measure requests)."""
    env = {
        **os.environ,
        "TIDEWATCH_DATABASE_URL": database_url,
        "TIDEWATCH_PORT": str(port),
        "TIDEWATCH_SCHEDULER": "false",
        "DO_NOT_TRACK": "1",
    }
    proc = subprocess.Popen(
        [str(BIN / "tidewatch"), "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        key = subprocess.run(
            [str(BIN / "tidewatch"), "keys", "create", "--scope", "admin"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        yield Served(url, proc, key)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
