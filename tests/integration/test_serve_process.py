"""`tidewatch serve` as a real process on PostgreSQL, as an operator would run it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from monitor.server import free_port
from tests.conftest import SPEC, record

pytestmark = pytest.mark.integration


def test_serve_migrates_ingests_and_answers_probes(pg_url: str, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "TIDEWATCH_DATABASE_URL": pg_url, "TIDEWATCH_PORT": str(port)}
    bin_dir = Path(sys.executable).parent
    key = subprocess.run(
        [str(bin_dir / "tidewatch"), "keys", "create", "--scope", "admin"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    proc = subprocess.Popen([str(bin_dir / "tidewatch"), "serve"], env=env, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            pytest.fail("tidewatch serve did not become ready")
        headers = {"Authorization": f"Bearer {key}"}
        assert httpx.post(f"{url}/api/v1/models", json=SPEC, headers=headers).status_code == 200
        answer = httpx.post(
            f"{url}/api/v1/models/plankton/telemetry",
            json={"records": [record(i) for i in range(50)]},
            headers=headers,
        )
        assert answer.json() == {"accepted": 50, "duplicates": 0}
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status says why it ended
    assert proc.returncode in (0, -15), err.decode()[-2000:]
    assert "Application shutdown complete" in err.decode()
