"""Telemetry ingest: accepted batches are stored once, bad ones are refused and write nothing."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import SPEC, make_key, record

URL = "/api/v1/models/plankton/telemetry"


def stored(client: TestClient, admin: dict[str, str]) -> int:
    response = client.get("/api/v1/models/plankton", headers=admin)
    assert response.status_code == 200
    count: int = response.json()["records"]
    return count


def test_batch_is_stored_and_retry_is_not_counted_twice(
    client: TestClient, admin: dict[str, str], model: dict[str, Any]
) -> None:
    batch = {"records": [record(i) for i in range(20)]}
    first = client.post(URL, json=batch, headers=admin)
    assert first.status_code == 200, first.text
    assert first.json() == {"accepted": 20, "duplicates": 0, "ignored_features": {}}
    again = client.post(URL, json=batch, headers=admin)
    assert again.json() == {"accepted": 0, "duplicates": 20, "ignored_features": {}}
    overlap = client.post(URL, json={"records": [record(i) for i in range(15, 30)]}, headers=admin)
    assert overlap.json() == {"accepted": 10, "duplicates": 5, "ignored_features": {}}
    assert stored(client, admin) == 30


def test_concurrent_identical_batches_are_counted_once(
    client: TestClient, admin: dict[str, str], model: dict[str, Any]
) -> None:
    batch = {"records": [record(i) for i in range(200)]}
    answers: list[dict[str, int]] = []

    def post() -> None:
        answers.append(client.post(URL, json=batch, headers=admin).json())

    threads = [threading.Thread(target=post) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(a["accepted"] for a in answers) == 200
    assert sum(a["duplicates"] for a in answers) == 600
    assert stored(client, admin) == 200


def test_ingest_key_is_scoped_to_its_model(
    client: TestClient, admin: dict[str, str], model: dict[str, Any]
) -> None:
    own = make_key(client, "ingest:plankton")
    coral = {**SPEC, "name": "coral"}
    assert client.post("/api/v1/models", json=coral, headers=admin).status_code == 200
    other = make_key(client, "ingest:coral")
    reader = make_key(client, "read")
    batch = {"records": [record(1)]}
    assert client.post(URL, json=batch, headers=own).status_code == 200
    assert client.post(URL, json=batch, headers=other).status_code == 403
    assert client.post(URL, json=batch, headers=reader).status_code == 403
    assert client.post(URL, json=batch).status_code == 401
    assert (
        client.post(URL, json=batch, headers={"Authorization": "Bearer tw_nope"}).status_code == 401
    )
    assert client.post(URL, json=batch, headers={"Authorization": "Basic abc"}).status_code == 401


def test_unknown_model_is_404(client: TestClient, admin: dict[str, str]) -> None:
    response = client.post(
        "/api/v1/models/nothing/telemetry", json={"records": [record(1)]}, headers=admin
    )
    assert response.status_code == 404
    assert "nothing" in response.json()["detail"]


BAD_BODIES: list[tuple[str, bytes, int, str]] = [
    ("malformed json", b'{"records": [', 400, "body"),
    ("not an object", b"[1, 2]", 422, "body"),
    ("empty records", b'{"records": []}', 422, "records"),
    ("unknown top-level field", b'{"records": [{"id": "x"}], "extra": 1}', 422, "extra"),
    ("missing id", json.dumps({"records": [{"features": {}}]}).encode(), 422, "records[0].id"),
    (
        "NaN",
        b'{"records": [{"id": "x", "features": {"brightness": NaN}}]}',
        422,
        "records[0].features.brightness",
    ),
    (
        "infinity",
        b'{"records": [{"id": "x", "features": {"brightness": Infinity}}]}',
        422,
        "records[0].features.brightness",
    ),
    (
        "string for number",
        json.dumps({"records": [record(1, brightness="bright")]}).encode(),
        422,
        "records[0].features.brightness",
    ),
    (
        "bool for number",
        json.dumps({"records": [record(1, brightness=True)]}).encode(),
        422,
        "records[0].features.brightness",
    ),
    (
        "short vector",
        json.dumps({"records": [{"id": "x", "features": {"emb": [1, 2]}}]}).encode(),
        422,
        "records[0].features.emb",
    ),
    (
        "NaN in vector",
        b'{"records": [{"id": "x", "features": {"emb": [1, NaN, 2]}}]}',
        422,
        "records[0].features.emb",
    ),
    (
        "unknown class",
        json.dumps({"records": [{"id": "x", "prediction": {"label": "whale"}}]}).encode(),
        422,
        "records[0].prediction.label",
    ),
    (
        "wrong probability count",
        json.dumps({"records": [{"id": "x", "prediction": {"probabilities": [1.0]}}]}).encode(),
        422,
        "records[0].prediction.probabilities",
    ),
    (
        "probabilities not summing to 1",
        json.dumps(
            {"records": [{"id": "x", "prediction": {"probabilities": [0.2, 0.2]}}]}
        ).encode(),
        422,
        "records[0].prediction.probabilities",
    ),
    (
        "regression value on a classifier",
        json.dumps({"records": [{"id": "x", "prediction": {"value": 3.0}}]}).encode(),
        422,
        "records[0].prediction",
    ),
    (
        "duplicate id in batch",
        json.dumps({"records": [record(1), record(1)]}).encode(),
        422,
        "records[1].id",
    ),
    (
        "bad timestamp",
        json.dumps({"records": [record(1, timestamp="yesterday")]}).encode(),
        422,
        "records[0].timestamp",
    ),
    (
        "sampling rate out of range",
        json.dumps({"records": [record(1)], "sampling_rate": 2}).encode(),
        422,
        "sampling_rate",
    ),
]


@pytest.mark.parametrize(
    ("body", "status", "field"), [b[1:] for b in BAD_BODIES], ids=[b[0] for b in BAD_BODIES]
)
def test_bad_batches_are_refused_naming_the_field_and_write_nothing(
    client: TestClient,
    admin: dict[str, str],
    model: dict[str, Any],
    body: bytes,
    status: int,
    field: str,
) -> None:
    client.post(URL, json={"records": [record(1000)]}, headers=admin)  # accepted earlier
    # a bad batch that also carries a good record must not store that record either
    response = client.post(URL, content=body, headers={**admin, "Content-Type": "application/json"})
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert any(d["loc"].startswith(field) for d in detail), detail
    assert stored(client, admin) == 1


def test_one_bad_record_rejects_the_whole_batch(
    client: TestClient, admin: dict[str, str], model: dict[str, Any]
) -> None:
    records = [record(i) for i in range(10)] + [record(10, brightness=None, site=5)]
    records[5]["features"]["brightness"] = "x"
    response = client.post(URL, json={"records": records}, headers=admin)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == "records[5].features.brightness"
    assert stored(client, admin) == 0


def test_missing_values_are_accepted_as_missing(
    client: TestClient, admin: dict[str, str], model: dict[str, Any]
) -> None:
    rec = {"id": "m", "features": {"brightness": None, "site": None}}
    response = client.post(URL, json={"records": [rec]}, headers=admin)
    assert response.status_code == 200, response.text


def test_oversized_body_is_413_and_limits_hold(db_url: str, tmp_path: Any) -> None:
    from monitor.app import create_app
    from monitor.settings import Settings
    from tests.conftest import SPEC

    app = create_app(Settings(database_url=db_url, max_body_bytes=4096, max_batch_records=5))
    with TestClient(app) as client:
        admin = make_key(client, "admin")
        assert client.post("/api/v1/models", json=SPEC, headers=admin).status_code == 200
        big = client.post(URL, json={"records": [record(i) for i in range(100)]}, headers=admin)
        assert big.status_code == 413
        many = client.post(URL, json={"records": [record(i) for i in range(6)]}, headers=admin)
        assert many.status_code == 413
        assert "limit is 5" in many.json()["detail"]
        ok = client.post(URL, json={"records": [record(i) for i in range(5)]}, headers=admin)
        assert ok.status_code == 200
        assert stored(client, admin) == 5


def test_flat_telemetry_needs_ids_and_a_known_format(
    client: TestClient, admin: dict[str, str], model: dict[str, Any]
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"brightness": [0.1], "site": ["a"]}), sink)
    headers = {**admin, "Content-Type": "application/vnd.apache.parquet"}
    url = "/api/v1/models/plankton/telemetry"
    refused = client.post(url, content=sink.getvalue().to_pybytes(), headers=headers)
    assert refused.status_code == 422 and "'id'" in refused.text
    garbage = client.post(url, content=b"not parquet", headers=headers)
    assert garbage.status_code == 422 and "could not read the parquet body" in garbage.text
    csv = b"id,brightness,site,emb_0,emb_1,emb_2,prediction\nx1,0.5,a,0,0,0,copepod\n"
    accepted = client.post(
        url,
        content=csv,
        headers={**admin, "Content-Type": "text/csv"},
        params={"sampling_rate": 0.5},
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["accepted"] == 1
