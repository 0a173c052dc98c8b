"""`tidewatch serve` as a real process on PostgreSQL, as an operator would run it."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import SPEC, record
from tests.integration.serve_process import tidewatch_serve

pytestmark = pytest.mark.integration


def test_serve_migrates_ingests_and_answers_probes(pg_url: str, tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    with tidewatch_serve(pg_url, log) as server:
        key = server.cli("keys", "create", "--scope", "admin")
        headers = {"Authorization": f"Bearer {key}"}
        created = httpx.post(f"{server.url}/api/v1/models", json=SPEC, headers=headers)
        assert created.status_code == 200
        answer = httpx.post(
            f"{server.url}/api/v1/models/plankton/telemetry",
            json={"records": [record(i) for i in range(50)]},
            headers=headers,
        )
        assert answer.json() == {"accepted": 50, "duplicates": 0, "ignored_features": {}}
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status says why it ended
    assert server.proc.returncode in (0, -15), log.read_text()[-2000:]
    assert "Application shutdown complete" in log.read_text()
