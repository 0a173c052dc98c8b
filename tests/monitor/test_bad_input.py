"""Bad input found by probing as an attacker would: each gets a 4xx (never a 500) and changes
nothing, on SQLite and PostgreSQL. Every case here answered 500 (or stored bad rows) before."""

from __future__ import annotations

import io
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from tests.conftest import record

TELEMETRY = "/api/v1/models/plankton/telemetry"


def _stored(client: TestClient, admin: dict[str, str]) -> int:
    answer = client.get("/api/v1/models/plankton", headers=admin)
    assert answer.status_code == 200
    return int(answer.json()["records"])


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/api/v1/alerts/29409966730457160613888/ack"),
        ("post", "/api/v1/alerts/2147483648/silence"),
        ("get", "/api/v1/alerts/-3"),
        ("get", "/api/v1/models/plankton/runs/99999999999"),
        ("get", "/api/v1/models/plankton/results?before=-43452817052818"),
        ("get", "/api/v1/models/plankton/results?before=2147483648"),
    ],
)
def test_ids_beyond_the_database_range_are_422(
    client: TestClient, admin: dict[str, str], model: dict[str, Any], method: str, path: str
) -> None:
    answer = client.request(method, path, headers=admin, json={"seconds": 60})
    assert answer.status_code == 422, answer.text


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"features": {"brightness": 10**400, "site": "a", "emb": [0, 0, 0]}}, "brightness"),
        ({"features": {"brightness": 0.5, "site": "a", "emb": [10**400, 0, 0]}}, "emb"),
        ({"timestamp": "0001-01-01T00:00:00+01:00"}, "timestamp"),
        ({"timestamp": "9999-12-31T23:30:00-01:00"}, "timestamp"),
        ({"timestamp": "1900-01-01T00:00:00Z"}, "timestamp"),
        ({"id": "a\u0000b"}, "id"),
        ({"id": "line\nbreak"}, "id"),
    ],
)
def test_bad_json_records_are_422_and_store_nothing(
    client: TestClient,
    admin: dict[str, str],
    model: dict[str, Any],
    change: dict[str, Any],
    field: str,
) -> None:
    good = [record(i) for i in range(3)]
    assert client.post(TELEMETRY, json={"records": good}, headers=admin).status_code == 200
    bad = record(99) | change
    # json.dumps of a 401-digit int works: the body is valid JSON
    answer = client.post(TELEMETRY, json={"records": [record(98), bad]}, headers=admin)
    assert answer.status_code == 422, answer.text
    assert field in str(answer.json()["detail"])
    assert _stored(client, admin) == 3


def _csv(rows: list[str]) -> bytes:
    header = "id,timestamp,brightness,site,emb_0,emb_1,emb_2,proba_copepod,proba_diatom"
    return ("\n".join([header, *rows]) + "\n").encode()


GOOD_ROW = "{id},2026-01-01T00:00:00Z,0.5,a,0.1,0.2,0.3,0.8,0.2"


@pytest.mark.parametrize(
    ("rows", "what"),
    [
        ([GOOD_ROW.format(id="x1"), GOOD_ROW.format(id="")], "id"),
        ([GOOD_ROW.format(id="x1"), GOOD_ROW.format(id="x1")], "twice"),
        ([GOOD_ROW.format(id="x" * 300)], "200"),
        ([GOOD_ROW.format(id="x1").replace("2026-01-01T00:00:00Z", "notatime")], "timestamp"),
        (
            [GOOD_ROW.format(id="x1").replace("2026-01-01T00:00:00Z", "1850-01-01T00:00:00Z")],
            "range",
        ),
    ],
)
def test_bad_csv_telemetry_is_422_and_stores_nothing(
    client: TestClient, admin: dict[str, str], model: dict[str, Any], rows: list[str], what: str
) -> None:
    headers = admin | {"Content-Type": "text/csv"}
    answer = client.post(TELEMETRY, content=_csv(rows), headers=headers)
    assert answer.status_code == 422, answer.text
    assert what in str(answer.json()["detail"])
    assert _stored(client, admin) == 0


def _parquet(**columns: Any) -> bytes:
    base: dict[str, Any] = {
        "id": ["p1", "p2"],
        "brightness": [0.5, 0.6],
        "site": ["a", "b"],
        "emb": [[0.1, 0.2, 0.3], [0.1, 0.2, 0.3]],
    }
    out = io.BytesIO()
    pq.write_table(pa.table(base | columns), out)
    return out.getvalue()


@pytest.mark.parametrize(
    ("columns", "what"),
    [
        ({"timestamp": [True, False]}, "timestamp"),
        ({"site": [["a"], ["b"]]}, "site"),
        ({"emb": [["x", "y", "z"], ["x", "y", "z"]]}, "emb"),
        ({"id": [None, "p2"]}, "id"),
        ({"id": [[1], [2]]}, "id"),
    ],
)
def test_bad_parquet_telemetry_is_422_and_stores_nothing(
    client: TestClient, admin: dict[str, str], model: dict[str, Any], columns: Any, what: str
) -> None:
    headers = admin | {"Content-Type": "application/vnd.apache.parquet"}
    answer = client.post(TELEMETRY, content=_parquet(**columns), headers=headers)
    assert answer.status_code == 422, answer.text
    assert what in str(answer.json()["detail"])
    assert _stored(client, admin) == 0
    fine = client.post(TELEMETRY, content=_parquet(), headers=headers)
    assert fine.status_code == 200 and fine.json() == {
        "accepted": 2,
        "duplicates": 0,
        "ignored_features": {},
    }


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/api/v1/alerts/notanumber/ack"),
        ("get", "/api/v1/models/plankton/results?limit=0&before=x"),
        ("post", "/api/v1/models/plankton/telemetry?sampling_rate=7"),
        ("get", "/api/v1/models/plankton/runs/abc"),
    ],
)
def test_the_key_is_checked_before_the_parameters(
    client: TestClient, model: dict[str, Any], method: str, path: str
) -> None:
    """An anonymous caller gets 401, not a 422 that echoes its input."""
    answer = client.request(method, path, content=b"{not json")
    assert answer.status_code == 401, answer.text


PROMOTE = "/api/v1/models/plankton/reference/promote"


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        # NUL reaches PostgreSQL, which refuses it in text: names no model can have are unknown
        ("get", "/api/v1/models/pl%00ankton", None, 404),
        ("get", "/api/v1/models/pl%00ankton/report?run=1", None, 404),
        # ... and filters and versions follow the pattern of names
        ("get", "/api/v1/models/plankton/results?monitor=a%00b", None, 422),
        ("get", "/api/v1/models/plankton/results?version=a%00b", None, 422),
        ("get", "/api/v1/alerts?model=a%00b", None, 422),
        ("post", "/api/v1/models/plankton/reference?version=a%00", None, 422),
        ("post", "/api/v1/alerts/1/ack", {"by": "a\u0000"}, 422),
        # times with no UTC equivalent
        ("get", "/api/v1/models/plankton/results?since=0001-01-01T00:00:00%2B01:00", None, 422),
        ("get", "/api/v1/models/plankton/results?until=9999-12-31T23:59:59-05:00", None, 422),
        ("post", PROMOTE, {"from": "0001-01-01T00:00:00+01:00", "to": "2026-01-01T00:00:00Z"}, 422),
        ("post", PROMOTE, {"from": "2026-01-01T00:00:00Z", "to": "9999-12-31T23:59:59-05:00"}, 422),
        # a run id beyond the database's integers
        ("post", PROMOTE, {"run": 2**40}, 422),
    ],
)
def test_values_the_database_cannot_hold_are_4xx(
    client: TestClient,
    admin: dict[str, str],
    model: dict[str, Any],
    method: str,
    path: str,
    body: Any,
    status: int,
) -> None:
    answer = client.request(method, path, headers=admin, json=body)
    assert answer.status_code == status, answer.text


@pytest.mark.parametrize(
    ("method", "path", "body", "loc"),
    [
        ("get", "/api/v1/models/plankton/results?limit=0", None, "query.limit"),
        ("get", "/api/v1/alerts/0", None, "path.alert_id"),
        ("post", "/api/v1/models/plankton/reference?format=xml", None, "query.format"),
        ("post", PROMOTE, {}, "body"),
        ("post", PROMOTE, {"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "from"),
        ("put", "/api/v1/models/plankton/monitors", [{"window": {"size": 0}}], "[0].window.size"),
        # checked by the model's spec, named as in the body (not alert_recipients[0])
        (
            "put",
            "/api/v1/models/plankton/alerts/rules",
            {"rules": [], "recipients": ["not an address"]},
            "recipients[0]",
        ),
    ],
)
def test_every_422_names_its_field_in_one_string(
    client: TestClient,
    admin: dict[str, str],
    model: dict[str, Any],
    method: str,
    path: str,
    body: Any,
    loc: str,
) -> None:
    """One shape for every 422, whatever raised it (the document declares only that one)."""
    answer = client.request(method, path, headers=admin, json=body)
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert isinstance(detail, list) and all(isinstance(d["loc"], str) for d in detail), detail
    assert set(detail[0]) == {"loc", "msg", "type"}
    assert any(d["loc"].startswith(loc) for d in detail), detail


def test_a_wrong_method_is_told_every_method_of_the_path(client: TestClient) -> None:
    """GET and POST /api/v1/models are two routes: Allow names both, not the first one."""
    answer = client.request("PATCH", "/api/v1/models")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "GET, POST"
    assert answer.json() == {"detail": "Method Not Allowed"}


def test_a_query_parameter_given_twice_is_refused(
    client: TestClient, admin: dict[str, str], model: dict[str, Any]
) -> None:
    """FastAPI would silently take the last of ``?until=x&until=4``; ambiguity is a 422."""
    answer = client.get("/api/v1/models/plankton/results?until=x&until=4", headers=admin)
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == "query.until"
    assert client.get("/api/v1/models/plankton/results?limit=5", headers=admin).status_code == 200
