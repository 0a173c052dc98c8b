"""A real ``deepaas-run`` serving a test module that one line made monitored, posting to a real
``tidewatch serve`` on loopback."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from monitor import keys
from monitor.db.models import get_model
from monitor.db.telemetry import load_window
from monitor.schema import WindowSpec
from monitor.server import BackgroundServer, free_port
from monitor.settings import Settings
from tests.conftest import service_missing

pytestmark = pytest.mark.integration
MODULE_DIR = Path(__file__).parent / "deepaas_module"
SPEC = {
    "name": "plankton",
    "features": [{"name": n, "kind": "numeric"} for n in ("x1", "x2", "x3")],
    "output": {"task": "classification", "classes": ["copepod", "diatom"]},
}


def deepaas_run() -> str:
    found = shutil.which("deepaas-run", path=str(Path(sys.executable).parent))
    if found is None:
        service_missing("deepaas-run", "the deepaas package is not installed")
        raise AssertionError  # service_missing fails or skips
    return found


@pytest.fixture
def tidewatch(tmp_path: Path) -> Iterator[tuple[BackgroundServer, str, str]]:
    with BackgroundServer(Settings(database_url=f"sqlite:///{tmp_path}/d.db", port=0)) as srv:
        with srv.app.state.tidewatch.sessions() as session:
            admin = keys.create_key(session, ["admin"])
            ingest = keys.create_key(session, ["ingest:plankton"])
        httpx.post(
            f"{srv.url}/api/v1/models", json=SPEC, headers={"Authorization": f"Bearer {admin}"}
        ).raise_for_status()
        yield srv, admin, ingest


def start_deepaas(env: dict[str, str], tmp_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log = (tmp_path / "deepaas.log").open("wb")
    proc = subprocess.Popen(
        [deepaas_run(), "--listen-ip", "127.0.0.1", "--listen-port", str(port), "--nowarm"],
        env={**os.environ, **env, "PYTHONPATH": f"{MODULE_DIR}{os.pathsep}{os.getcwd()}"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"deepaas-run exited: {(tmp_path / 'deepaas.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/v2/models/").status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"deepaas-run did not answer: {(tmp_path / 'deepaas.log').read_text()[-2000:]}")


def stored(url: str, admin: str) -> int:
    answer = httpx.get(
        f"{url}/api/v1/models/plankton", headers={"Authorization": f"Bearer {admin}"}
    )
    count: int = answer.json()["records"]
    return count


def predict(url: str, x: tuple[float, float, float]) -> dict[str, object]:
    params = {"x1": x[0], "x2": x[1], "x3": x[2]}
    answer = httpx.post(f"{url}/v2/models/twtest/predict/", params=params, timeout=60)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "OK"
    predictions: dict[str, object] = body["predictions"]  # DEEPaaS' envelope
    return predictions


def test_deepaas_predictions_arrive_in_tidewatch(
    tidewatch: tuple[BackgroundServer, str, str], tmp_path: Path
) -> None:
    server, admin, ingest = tidewatch
    url = server.url
    env = {
        "TIDEWATCH_URL": url,
        "TIDEWATCH_KEY": ingest,
        "TIDEWATCH_MODEL": "plankton",
        "TIDEWATCH_SPOOL_DIR": str(tmp_path / "spool"),
    }
    proc, deepaas = start_deepaas(env, tmp_path)
    try:
        inputs = [(i / 10, 1 - i / 10, 0.5) for i in range(12)]
        answers = [predict(deepaas, x) for x in inputs]
        z = 1.5 * inputs[0][0] - 2.0 * inputs[0][1] + 0.25
        assert answers[0]["label"] == "diatom" and math.isclose(
            answers[0]["probabilities"][0],  # type: ignore[index]
            1 / (1 + math.exp(-z)),
        )
        deadline = time.monotonic() + 60  # the worker's client sends within its flush interval
        while stored(url, admin) < len(inputs) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert stored(url, admin) == len(inputs)
        with server.app.state.tidewatch.sessions() as session:
            registered = get_model(session, "plankton")
            assert registered is not None
            table = load_window(session, registered, WindowSpec(size=100))
        assert table is not None
        by_input = dict(
            zip(table.column("f.x1").to_pylist(), table.column("p.label").to_pylist(), strict=True)
        )
        expected = {x[0]: a["label"] for x, a in zip(inputs, answers, strict=True)}
        assert by_input == expected  # the right inputs with the predicted labels
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_dead_tidewatch_never_breaks_a_prediction(tmp_path: Path) -> None:
    env = {
        "TIDEWATCH_URL": f"http://127.0.0.1:{free_port()}",  # nobody listens
        "TIDEWATCH_KEY": "tw_nobody",
        "TIDEWATCH_MODEL": "plankton",
        "TIDEWATCH_SPOOL_DIR": str(tmp_path / "spool"),
    }
    proc, deepaas = start_deepaas(env, tmp_path)
    try:
        answer = predict(deepaas, (1.0, 0.0, 0.0))
        p = 1 / (1 + math.exp(-(1.5 + 0.0 + 0.0)))
        assert answer == {"label": "copepod", "probabilities": [p, 1 - p]}  # unchanged
    finally:
        proc.terminate()
        proc.wait(timeout=30)
