"""Reference uploads (JSON, CSV, Parquet) and delayed labels."""

from __future__ import annotations

import io
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from tests.conftest import make_key, record

REF = "/api/v1/models/plankton/reference"
CSV = (
    "brightness,site,emb_0,emb_1,emb_2,prediction,proba_copepod,proba_diatom\n"
    "0.5,a,0.1,0.2,0.3,copepod,0.9,0.1\n"
    "0.6,b,0.1,0.2,0.4,diatom,0.2,0.8\n"
    "0.7,a,0.0,0.2,0.3,,0.7,0.3\n"
)


def test_reference_as_json(
    client: TestClient, admin: dict[str, str], model: dict[str, Any]
) -> None:
    records = [record(i) for i in range(5)]
    for r in records:
        del r["id"]  # ids are optional in a reference
    response = client.post(REF, json={"records": records}, headers=admin)
    assert response.status_code == 200, response.text
    assert response.json()["rows"] == 5
    assert client.get("/api/v1/models/plankton", headers=admin).json()["reference_rows"] == 5


def test_reference_as_csv_and_replaced(
    client: TestClient, admin: dict[str, str], model: dict[str, Any]
) -> None:
    response = client.post(REF, content=CSV, headers={**admin, "Content-Type": "text/csv"})
    assert response.status_code == 200, response.text
    assert response.json()["rows"] == 3
    again = client.post(
        REF, content=CSV + "0.8,b,0,0,0,diatom,0.1,0.9\n", params={"format": "csv"}, headers=admin
    )
    assert again.json()["rows"] == 4
    assert client.get("/api/v1/models/plankton", headers=admin).json()["reference_rows"] == 4


def test_reference_as_parquet_with_list_column(
    client: TestClient, admin: dict[str, str], model: dict[str, Any]
) -> None:
    table = pa.table(
        {
            "brightness": [0.1, 0.2],
            "site": ["a", "b"],
            "emb": [[0.0, 1.0, 2.0], [1.0, 1.0, 1.0]],
            "proba_copepod": [0.4, 0.9],
            "proba_diatom": [0.6, 0.1],
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink)
    response = client.post(
        REF,
        content=sink.getvalue(),
        headers={**admin, "Content-Type": "application/vnd.apache.parquet"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["rows"] == 2


BAD_REFERENCES = [
    ("missing column", "site,emb_0,emb_1,emb_2\na,0,0,0\n", "text/csv", 422, "brightness"),
    (
        "text in numeric column",
        "brightness,site,emb_0,emb_1,emb_2\nx,a,0,0,0\n",
        "text/csv",
        422,
        "brightness",
    ),
    # CSV readers take "nan" and empty cells for missing values; infinity is refused
    (
        "infinite value",
        "brightness,site,emb_0,emb_1,emb_2\ninf,a,0,0,0\n",
        "text/csv",
        422,
        "brightness",
    ),
    ("missing vector part", "brightness,site,emb_0,emb_1\n1,a,0,0\n", "text/csv", 422, "emb"),
    (
        "unknown class",
        "brightness,site,emb_0,emb_1,emb_2,prediction\n1,a,0,0,0,whale\n",
        "text/csv",
        422,
        "prediction",
    ),
    ("garbage parquet", "not parquet", "application/vnd.apache.parquet", 422, ""),
    ("unknown content type", "x", "image/png", 415, ""),
    ("malformed json", "{", "application/json", 422, "could not read the json file"),
    ("empty csv", "brightness,site,emb_0,emb_1,emb_2\n", "text/csv", 422, ""),
]


@pytest.mark.parametrize(
    ("body", "ctype", "status", "needle"),
    [b[1:] for b in BAD_REFERENCES],
    ids=[b[0] for b in BAD_REFERENCES],
)
def test_bad_references_are_refused_and_keep_the_old_one(
    client: TestClient,
    admin: dict[str, str],
    model: dict[str, Any],
    body: str,
    ctype: str,
    status: int,
    needle: str,
) -> None:
    assert (
        client.post(REF, content=CSV, headers={**admin, "Content-Type": "text/csv"}).status_code
        == 200
    )
    response = client.post(REF, content=body, headers={**admin, "Content-Type": ctype})
    assert response.status_code == status, response.text
    assert needle in response.text
    assert client.get("/api/v1/models/plankton", headers=admin).json()["reference_rows"] == 3


def test_reference_needs_admin(client: TestClient, model: dict[str, Any]) -> None:
    ingest = make_key(client, "ingest:plankton")
    response = client.post(REF, content=CSV, headers={**ingest, "Content-Type": "text/csv"})
    assert response.status_code == 403


def test_reference_size_limit(db_url: str) -> None:
    from monitor.app import create_app
    from monitor.settings import Settings
    from tests.conftest import SPEC

    app = create_app(Settings(database_url=db_url, max_reference_bytes=1024))
    with TestClient(app) as client:
        admin = make_key(client, "admin")
        client.post("/api/v1/models", json=SPEC, headers=admin)
        big = CSV + "0.5,a,0.1,0.2,0.3,copepod,0.9,0.1\n" * 50
        response = client.post(REF, content=big, headers={**admin, "Content-Type": "text/csv"})
        assert response.status_code == 413


LABELS = "/api/v1/models/plankton/labels"


def test_labels_join_records_by_id(
    client: TestClient, admin: dict[str, str], model: dict[str, Any]
) -> None:
    client.post(
        "/api/v1/models/plankton/telemetry",
        json={"records": [record(i) for i in range(3)]},
        headers=admin,
    )
    ingest = make_key(client, "ingest:plankton")
    body = {
        "labels": [
            {"id": "r0", "label": "diatom"},
            {"id": "r1", "label": "copepod"},
            {"id": "later", "label": "diatom"},
        ]
    }
    response = client.post(LABELS, json=body, headers=ingest)
    assert response.status_code == 200, response.text
    assert response.json() == {"stored": 3, "matched": 2}
    # a corrected label replaces the earlier one rather than adding a second
    fixed = client.post(LABELS, json={"labels": [{"id": "r0", "label": "copepod"}]}, headers=ingest)
    assert fixed.json() == {"stored": 1, "matched": 1}
    from sqlalchemy import select

    from monitor.db.tables import Label

    with client.app.state.tidewatch.sessions() as session:  # type: ignore[attr-defined]
        rows = {r.record_id: r.label for r in session.scalars(select(Label))}
    assert rows == {"r0": "copepod", "r1": "copepod", "later": "diatom"}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b'{"labels": [', 400),
        (b'{"labels": []}', 422),
        (b'{"labels": [{"id": "r0", "label": "whale"}]}', 422),
        (b'{"labels": [{"label": "diatom"}]}', 422),
        (b'{"labels": [{"id": "r0", "label": "diatom", "colour": 1}]}', 422),
    ],
    ids=["malformed", "empty", "unknown class", "no id", "unknown field"],
)
def test_bad_labels_are_refused(
    client: TestClient, admin: dict[str, str], model: dict[str, Any], body: bytes, status: int
) -> None:
    response = client.post(
        LABELS, content=body, headers={**admin, "Content-Type": "application/json"}
    )
    assert response.status_code == status, response.text
    from sqlalchemy import func, select

    from monitor.db.tables import Label

    with client.app.state.tidewatch.sessions() as session:  # type: ignore[attr-defined]
        assert session.scalar(select(func.count()).select_from(Label)) == 0


def test_labels_need_ingest_scope_and_known_model(
    client: TestClient, model: dict[str, Any]
) -> None:
    body = {"labels": [{"id": "r0", "label": "diatom"}]}
    assert client.post(LABELS, json=body).status_code == 401
    assert client.post(LABELS, json=body, headers=make_key(client, "read")).status_code == 403
    assert (
        client.post(
            "/api/v1/models/x/labels", json=body, headers=make_key(client, "admin")
        ).status_code
        == 404
    )
