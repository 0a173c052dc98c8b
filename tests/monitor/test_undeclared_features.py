"""Undeclared features are left out and counted, not a refused batch (unless the model says so);
a declared feature a record lacks is a missing value. On SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from monitor.db import telemetry
from monitor.db.models import get_model
from monitor.spec.model import MonitorConfig
from tests.conftest import SPEC, record

URL = "/api/v1/models/plankton/telemetry"


def _stored(client: TestClient) -> Any:
    state = client.app.state.tidewatch  # type: ignore[attr-defined]
    with state.sessions() as session:
        registered = get_model(session, "plankton")
        assert registered is not None
        window = MonitorConfig.model_validate({"window": {"by": "count", "size": 100}}).window
        return telemetry.load_window(session, registered, window)


def _with_extra(i: int, **extra: Any) -> dict[str, Any]:
    rec = record(i)
    rec["features"].update(extra)
    return rec


def test_undeclared_features_are_left_out_counted_and_named(
    client: TestClient, admin: dict[str, str], model: dict[str, Any]
) -> None:
    batch = {"records": [_with_extra(1, depth=3, glare=0.1), _with_extra(2, depth=4), record(3)]}
    response = client.post(URL, json=batch, headers=admin)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "accepted": 3,
        "duplicates": 0,
        "ignored_features": {"depth": 2, "glare": 1},
    }
    table = _stored(client)
    assert table.num_rows == 3
    assert not any("depth" in name or "glare" in name for name in table.column_names)
    assert table.column("f.brightness").to_pylist() == [0.5, 0.5, 0.5]

    # a batch without undeclared features names none
    clean = client.post(URL, json={"records": [record(4)]}, headers=admin).json()
    assert clean["ignored_features"] == {}

    status = client.get("/api/v1/models/plankton/status", headers=admin).json()
    assert status["ignored_features"] == {"depth": 2, "glare": 1}
    metrics = client.get("/metrics").text
    assert 'tidewatch_ignored_feature_values_total{feature="depth",model="plankton"}' in metrics


def test_a_model_can_refuse_undeclared_features(client: TestClient, admin: dict[str, str]) -> None:
    strict = {**SPEC, "undeclared_features": "refuse"}
    assert client.post("/api/v1/models", json=strict, headers=admin).status_code == 200
    batch = {"records": [record(1), _with_extra(2, depth=3)]}
    response = client.post(URL, json=batch, headers=admin)
    assert response.status_code == 422
    assert "records[1].features.depth" in response.json()["detail"][0]["loc"]
    assert _stored(client) is None  # nothing of the batch was stored
    csv = b"id,brightness,site,emb_0,emb_1,emb_2,depth\nx1,0.5,a,0,0,0,3\n"
    refused = client.post(URL, content=csv, headers={**admin, "Content-Type": "text/csv"})
    assert refused.status_code == 422 and "depth" in refused.text


def test_a_missing_declared_feature_is_a_missing_value(
    client: TestClient, admin: dict[str, str], model: dict[str, Any]
) -> None:
    lacking = record(1)
    del lacking["features"]["brightness"]
    assert client.post(URL, json={"records": [lacking]}, headers=admin).status_code == 200
    # CSV: a column left out is missing in every row; an extra column is counted
    csv = b"id,site,emb_0,emb_1,emb_2,prediction,depth\nx1,a,0,0,0,copepod,3\nx2,b,0,0,0,,4\n"
    response = client.post(URL, content=csv, headers={**admin, "Content-Type": "text/csv"})
    assert response.status_code == 200, response.text
    assert response.json()["ignored_features"] == {"depth": 2}
    table = _stored(client)
    assert table.column("f.brightness").null_count == 3


def test_a_feature_that_forbids_missing_values_still_refuses(
    client: TestClient, admin: dict[str, str]
) -> None:
    features = [
        {**f, "allow_missing": False} if f["name"] == "brightness" else f for f in SPEC["features"]
    ]
    assert client.post(
        "/api/v1/models", json={**SPEC, "features": features}, headers=admin
    ).is_success
    lacking = record(1)
    del lacking["features"]["brightness"]
    response = client.post(URL, json={"records": [lacking]}, headers=admin)
    assert response.status_code == 422
    assert "records[0].features.brightness" in response.text


def test_tidewatch_status_names_them(
    client: TestClient, admin: dict[str, str], model: dict[str, Any], settings: Any
) -> None:
    from typer.testing import CliRunner

    from monitor.cli import app

    batch = {"records": [_with_extra(1, depth=3), _with_extra(2, depth=4)]}
    assert client.post(URL, json=batch, headers=admin).status_code == 200
    shown = CliRunner().invoke(
        app, ["status"], env={"TIDEWATCH_DATABASE_URL": settings.database_url, "COLUMNS": "200"}
    )
    assert shown.exit_code == 0, shown.output
    assert "undeclared features left out of recent telemetry: depth (2 records)" in shown.output
