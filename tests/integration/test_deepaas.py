"""A real ``deepaas-run`` serving a tiny torch image classifier that one line made monitored,
posting to a real ``tidewatch serve`` process on loopback."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from collectors.image import FEATURES, describe
from monitor.db.engine import make_engine, make_sessionmaker
from monitor.db.models import get_model
from monitor.db.telemetry import load_window
from monitor.server import free_port
from monitor.spec.model import WindowSpec
from tests.conftest import service_missing
from tests.integration.serve_process import ServeProcess, tidewatch_serve

pytestmark = pytest.mark.integration
MODULE_DIR = Path(__file__).parent / "deepaas_module"
SPEC = {
    "name": "plankton",
    "features": [{"name": f"image.{n}", "kind": "numeric"} for n in FEATURES],
    "output": {"task": "classification", "classes": ["copepod", "diatom"]},
}
sys.path.insert(0, str(MODULE_DIR))
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # webargs on distutils
    from tw_deepaas_test.api import probabilities  # the module's own network


def deepaas_run() -> str:
    found = shutil.which("deepaas-run", path=str(Path(sys.executable).parent))
    if found is None:
        service_missing("deepaas-run", "the deepaas package is not installed")
        raise AssertionError  # service_missing fails or skips
    return found


@pytest.fixture
def tidewatch(tmp_path: Path) -> Iterator[tuple[ServeProcess, str, str]]:
    with tidewatch_serve(f"sqlite:///{tmp_path}/d.db", tmp_path / "serve.log") as server:
        admin = server.cli("keys", "create", "--scope", "admin")
        httpx.post(
            f"{server.url}/api/v1/models", json=SPEC, headers={"Authorization": f"Bearer {admin}"}
        ).raise_for_status()
        ingest = server.cli("keys", "create", "--scope", "ingest:plankton")
        yield server, admin, ingest


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


def png(red: int, size: tuple[int, int] = (24, 32)) -> bytes:
    """A picture whose red channel is ``red`` over a fixed noise pattern in green and blue."""
    rng = np.random.default_rng(red)
    pixels = rng.integers(0, 120, size=(*size, 3), dtype=np.uint8)
    pixels[..., 0] = red
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def predict(url: str, image: bytes) -> dict[str, object]:
    answer = httpx.post(
        f"{url}/v2/models/twtest/predict/",
        files={"image": ("sample.png", image, "image/png")},
        headers={"Accept": "application/json"},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "OK"
    predictions: dict[str, object] = body["predictions"]  # DEEPaaS' envelope
    return predictions


def test_deepaas_image_predictions_arrive_in_tidewatch(
    tidewatch: tuple[ServeProcess, str, str], tmp_path: Path
) -> None:
    server, admin, ingest = tidewatch
    env = {
        "TIDEWATCH_URL": server.url,
        "TIDEWATCH_KEY": ingest,
        "TIDEWATCH_MODEL": "plankton",
        "TIDEWATCH_SPOOL_DIR": str(tmp_path / "spool"),
    }
    proc, deepaas = start_deepaas(env, tmp_path)
    try:
        images = [png(red) for red in range(0, 240, 20)]
        answers = [predict(deepaas, image) for image in images]
        for image, answer in zip(images, answers, strict=True):
            expected = probabilities(image)
            assert answer["probabilities"] == pytest.approx(expected, abs=1e-6)
            assert answer["label"] == ("copepod" if expected[0] >= expected[1] else "diatom")
        assert {a["label"] for a in answers} == {"copepod", "diatom"}  # both classes seen
        deadline = time.monotonic() + 60  # the worker's client sends within its flush interval
        while stored(server.url, admin) < len(images) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert stored(server.url, admin) == len(images)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    engine = make_engine(server.env["TIDEWATCH_DATABASE_URL"])
    with make_sessionmaker(engine)() as session:
        registered = get_model(session, "plankton")
        assert registered is not None
        table = load_window(session, registered, WindowSpec(size=100))
    engine.dispose()
    assert table is not None
    rows = table.to_pylist()
    by_brightness = {round(row["f.image.brightness"], 9): row for row in rows}
    for image, answer in zip(images, answers, strict=True):
        stats = describe(image)  # the image statistics, computed here from the same bytes
        row = by_brightness[round(stats["brightness"], 9)]
        for name in FEATURES:
            assert row[f"f.image.{name}"] == pytest.approx(stats[name], rel=1e-9, abs=1e-12)
        assert row["p.label"] == answer["label"]


def test_a_dead_tidewatch_never_breaks_a_prediction(tmp_path: Path) -> None:
    env = {
        "TIDEWATCH_URL": f"http://127.0.0.1:{free_port()}",  # nobody listens
        "TIDEWATCH_KEY": "tw_nobody",
        "TIDEWATCH_MODEL": "plankton",
        "TIDEWATCH_SPOOL_DIR": str(tmp_path / "spool"),
    }
    proc, deepaas = start_deepaas(env, tmp_path)
    try:
        image = png(200)
        answer = predict(deepaas, image)
        assert answer == {"label": "copepod", "probabilities": probabilities(image)}  # unchanged
    finally:
        proc.terminate()
        proc.wait(timeout=30)
