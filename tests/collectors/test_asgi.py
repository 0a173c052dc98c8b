"""The ASGI middleware in a FastAPI model service, posting to a real Tidewatch server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient

from collectors import TelemetryClient
from collectors.asgi import TidewatchMiddleware
from monitor.db import keys
from monitor.server import BackgroundServer
from monitor.settings import Settings
from tests.conftest import SPEC


@pytest.fixture
def tidewatch(tmp_path: Path) -> Iterator[tuple[str, str]]:
    with BackgroundServer(Settings(database_url=f"sqlite:///{tmp_path}/a.db", port=0)) as srv:
        with srv.app.state.tidewatch.sessions() as session:
            admin = keys.create_key(session, ["admin"])
        httpx.post(
            f"{srv.url}/api/v1/models", json=SPEC, headers={"Authorization": f"Bearer {admin}"}
        ).raise_for_status()
        yield srv.url, admin


def model_service(client: TelemetryClient, **options: Any) -> FastAPI:
    service = FastAPI()

    @service.post("/predict")
    def predict(body: dict[str, Any]) -> dict[str, Any]:
        if body.get("brightness", 0) < 0:
            raise HTTPException(422, "negative brightness")
        p = min(1.0, max(0.0, float(body["brightness"])))
        return {"label": "copepod" if p > 0.5 else "diatom", "probabilities": [p, 1 - p]}

    @service.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    service.add_middleware(TidewatchMiddleware, client=client, **options)
    return service


def stored(url: str, admin: str) -> int:
    answer = httpx.get(
        f"{url}/api/v1/models/plankton", headers={"Authorization": f"Bearer {admin}"}
    )
    count: int = answer.json()["records"]
    return count


def test_predictions_become_telemetry_and_responses_are_untouched(
    tidewatch: tuple[str, str], tmp_path: Path
) -> None:
    url, admin = tidewatch
    client = TelemetryClient(url, "plankton", admin, flush_interval=0.05, spool_dir=tmp_path / "s")
    with TestClient(model_service(client)) as http:
        for i in range(20):
            body = {"brightness": i / 20, "site": "a", "emb": [0.1, 0.2, 0.3]}
            answer = http.post("/predict", json=body)
            assert answer.status_code == 200
            assert answer.json()["probabilities"] == [i / 20, 1 - i / 20]
        assert http.post("/predict", json={"brightness": -1}).status_code == 422  # not recorded
        assert http.get("/health").json() == {"status": "ok"}  # not watched
    assert client.close(timeout=30)
    assert client.stats["sent"] == 20
    assert stored(url, admin) == 20


def test_a_broken_feature_function_never_fails_the_request(
    tidewatch: tuple[str, str], tmp_path: Path
) -> None:
    url, admin = tidewatch
    client = TelemetryClient(url, "plankton", admin, flush_interval=0.05, spool_dir=tmp_path / "s")

    def broken(_: Any) -> dict[str, Any]:
        raise RuntimeError("a bug in the module's feature code")

    service = model_service(client, features=broken)
    with TestClient(service) as http:
        answer = http.post("/predict", json={"brightness": 0.9, "site": "a", "emb": [0, 0, 0]})
        assert answer.status_code == 200
        assert answer.json() == {"label": "copepod", "probabilities": [0.9, 1 - 0.9]}
    middleware = service.middleware_stack
    while not isinstance(middleware, TidewatchMiddleware):
        middleware = middleware.app  # type: ignore[union-attr]
    assert middleware.errors == 1
    client.close(timeout=5)
    assert stored(url, admin) == 0
