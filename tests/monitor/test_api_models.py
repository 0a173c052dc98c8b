"""Registering models: validation when created, versions, scopes."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import SPEC, make_key


def test_create_read_update(client: TestClient, admin: dict[str, str]) -> None:
    created = client.post("/api/v1/models", json=SPEC, headers=admin)
    assert created.status_code == 200
    assert created.json()["created"] is True
    spec = copy.deepcopy(SPEC)
    spec["description"] = "now with a description"
    spec["monitors"][0]["alpha"] = 0.01
    updated = client.post("/api/v1/models", json=spec, headers=admin)
    assert updated.json()["created"] is False
    reader = make_key(client, "read")
    one = client.get("/api/v1/models/plankton", headers=reader).json()
    assert one["spec"]["description"] == "now with a description"
    assert one["spec"]["monitors"][0]["alpha"] == 0.01
    assert [m["name"] for m in client.get("/api/v1/models", headers=reader).json()] == ["plankton"]


def test_schema_change_needs_new_version(client: TestClient, admin: dict[str, str]) -> None:
    client.post("/api/v1/models", json=SPEC, headers=admin)
    spec = copy.deepcopy(SPEC)
    spec["features"].append({"name": "depth", "kind": "numeric"})
    conflict = client.post("/api/v1/models", json=spec, headers=admin)
    assert conflict.status_code == 409
    assert "new version" in conflict.json()["detail"]
    spec["version"] = "2"
    assert client.post("/api/v1/models", json=spec, headers=admin).status_code == 200
    current = client.get("/api/v1/models/plankton", headers=admin).json()
    assert current["version"] == "2"


def _with(**changes: Any) -> dict[str, Any]:
    spec = copy.deepcopy(SPEC)
    for path, value in changes.items():
        target: Any = spec
        keys = path.split("__")
        for k in keys[:-1]:
            target = target[int(k)] if k.isdigit() else target[k]
        target[keys[-1]] = value
    return spec


BAD_SPECS = [
    ("bad name", _with(name="has space"), "name"),
    ("no features", _with(features=[]), "features"),
    ("unknown kind", _with(features__0__kind="image"), "features[0].kind"),
    ("vector without dim", _with(features__2__dim=None), "features[2]"),
    ("duplicate feature", _with(features=[SPEC["features"][0]] * 2), "body"),
    ("classifier without classes", _with(output={"task": "classification"}), "output"),
    ("unknown task", _with(output={"task": "ranking"}), "output.task"),
    ("unknown detector", _with(monitors=[{"detectors": {"numeric": "magic"}}]), "monitors[0]"),
    ("detector on wrong kind", _with(monitors=[{"detectors": {"numeric": "chi2"}}]), "monitors[0]"),
    (
        "unknown detector parameter",
        _with(monitors=[{"detectors": {"numeric": {"name": "psi", "params": {"bins": 5}}}}]),
        "monitors[0]",
    ),
    (
        "bad detector parameter value",
        _with(monitors=[{"detectors": {"numeric": {"name": "psi", "params": {"n_bins": 1}}}}]),
        "monitors[0]",
    ),
    ("unknown column kind", _with(monitors=[{"detectors": {"image": "ks"}}]), "monitors[0]"),
    ("unknown correction", _with(monitors=[{"correction": "holm-ish"}]), "monitors[0]"),
    ("alpha out of range", _with(monitors=[{"alpha": 1.5}]), "monitors[0].alpha"),
    (
        "time window without seconds",
        _with(monitors=[{"window": {"by": "time"}}]),
        "monitors[0].window",
    ),
    ("monitor on unknown feature", _with(monitors=[{"features": ["depth"]}]), "body"),
]


@pytest.mark.parametrize(
    ("spec", "field"), [b[1:] for b in BAD_SPECS], ids=[b[0] for b in BAD_SPECS]
)
def test_invalid_specs_are_refused_when_created(
    client: TestClient, admin: dict[str, str], spec: dict[str, Any], field: str
) -> None:
    response = client.post("/api/v1/models", json=spec, headers=admin)
    assert response.status_code == 422, response.text
    assert any(d["loc"].startswith(field) for d in response.json()["detail"]), response.json()
    assert client.get("/api/v1/models", headers=admin).json() == []


def test_only_admin_registers_and_read_scope_reads(
    client: TestClient, model: dict[str, Any]
) -> None:
    reader = make_key(client, "read")
    ingest = make_key(client, "ingest:plankton")
    assert client.post("/api/v1/models", json=SPEC, headers=reader).status_code == 403
    assert client.post("/api/v1/models", json=SPEC, headers=ingest).status_code == 403
    assert client.get("/api/v1/models", headers=ingest).status_code == 403
    assert client.get("/api/v1/models", headers=reader).status_code == 200
    assert client.get("/api/v1/models/unknown", headers=reader).status_code == 404


def test_malformed_spec_json_is_400(client: TestClient, admin: dict[str, str]) -> None:
    response = client.post(
        "/api/v1/models", content=b"{name:", headers={**admin, "Content-Type": "application/json"}
    )
    assert response.status_code == 400


def test_concurrent_first_registration_creates_one_model(
    client: TestClient, admin: dict[str, str]
) -> None:
    import threading

    statuses: list[int] = []

    def post() -> None:
        statuses.append(client.post("/api/v1/models", json=SPEC, headers=admin).status_code)

    threads = [threading.Thread(target=post) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 4
    assert [m["name"] for m in client.get("/api/v1/models", headers=admin).json()] == ["plankton"]
