"""Monitors through the API: configuration (and its refusals), status, results paging and
filters, promoting a production window to the reference, a reference per version."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import SPEC, make_key
from tests.monitor.test_api_detection import DETECT, post, rows, upload_reference

MONITORS = "/api/v1/models/plankton/monitors"
T0 = datetime(2026, 1, 1, tzinfo=UTC)  # where rows() starts
HOURLY = {
    "name": "hourly",
    "window": {"type": "tumbling", "by": "time", "seconds": 3600, "delay_seconds": 600},
    "schedule": {"cron": "5 * * * *"},
    "detectors": {"numeric": {"name": "psi", "params": {"n_bins": 10}}, "categorical": "chi2"},
    "min_samples": 50,
    "drift_share": 0.5,
}


def test_monitors_are_replaced_and_read_back(
    client: TestClient, admin: dict[str, str], model: dict[str, Any]
) -> None:
    response = client.put(MONITORS, json=[HOURLY], headers=admin)
    assert response.status_code == 200, response.text
    (stored,) = client.get(MONITORS, headers=admin).json()
    assert stored["window"]["type"] == "tumbling" and stored["schedule"]["cron"] == "5 * * * *"
    assert stored["detectors"]["numeric"]["params"] == {"n_bins": 10}


def _refused(client: TestClient, admin: dict[str, str], monitors: Any, *needles: str) -> None:
    response = client.put(MONITORS, json=monitors, headers=admin)
    assert response.status_code == 422, response.text
    text = response.text
    for needle in needles:
        assert needle in text, (needle, text)


def test_invalid_monitors_are_refused_with_the_reason_and_change_nothing(
    client: TestClient, admin: dict[str, str], model: dict[str, Any]
) -> None:
    before = client.get(MONITORS, headers=admin).json()
    _refused(client, admin, [{"detectors": {"numeric": "nope"}}], "nope")
    _refused(client, admin, [{"detectors": {"numeric": {"name": "ks", "params": {"x": 1}}}}], "x")
    _refused(client, admin, [{"schedule": {"cron": "61 * * * *"}}], "invalid cron expression")
    _refused(client, admin, [{"schedule": {"every": 60, "cron": "* * * * *"}}], "exactly one")
    _refused(
        client,
        admin,
        [{"performance": {"streaming": {"name": "ddm"}}}],
        "needs a tumbling window",
    )
    _refused(
        client,
        admin,
        [
            {
                "window": {"type": "tumbling", "by": "time", "seconds": 60},
                "performance": {"metrics": ["mae"]},
            }
        ],
        "unknown classification metrics",
        "mae",
    )
    _refused(
        client,
        admin,
        [{"performance": {"streaming": {"name": "ddm", "params": {"warning_level": -1}}}}],
        "ddm",
    )
    _refused(client, admin, [{"features": ["nowhere"]}], "unknown features", "nowhere")
    _refused(client, admin, [{"window": {"by": "count", "size": 10, "delay_seconds": 5}}], "delay")
    assert client.put(MONITORS, json={"not": "a list"}, headers=admin).status_code == 422
    assert client.get(MONITORS, headers=admin).json() == before
    read = make_key(client, "read")
    assert client.put(MONITORS, json=[HOURLY], headers=read).status_code == 403


def test_status_per_model_and_since(
    client: TestClient, admin: dict[str, str], model: dict[str, Any]
) -> None:
    read = make_key(client, "read")
    assert client.get("/api/v1/status").status_code == 401
    body = client.get("/api/v1/status", headers=read).json()
    (first,) = body["models"]
    assert (first["model"], first["status"], first["since"]) == ("plankton", "no_data", None)
    upload_reference(client, admin)
    post(client, admin, rows(300, shift=0, seed=2))
    client.post(DETECT, headers=admin)
    ok = client.get("/api/v1/models/plankton/status", headers=read).json()
    assert ok["status"] == "ok" and ok["since"] is not None
    post(client, admin, rows(300, shift=3, seed=3, start=300))
    (first_drift,) = client.post(DETECT, headers=admin).json()
    post(client, admin, rows(100, shift=3, seed=4, start=600))
    (second_drift,) = client.post(DETECT, headers=admin).json()
    assert second_drift["window_end"] > first_drift["window_end"]
    drift = client.get("/api/v1/models/plankton/status", headers=read).json()
    assert drift["status"] == "drift"
    # since the first drifted run, not the last
    assert drift["since"] == first_drift["window_end"]
    (monitor,) = drift["monitors"]
    assert monitor["monitor"] == "drift" and monitor["last_run_id"] is not None
    assert client.get("/api/v1/models/nope/status", headers=read).status_code == 404


def test_results_pages_and_filters(
    client: TestClient, admin: dict[str, str], model: dict[str, Any]
) -> None:
    upload_reference(client, admin)
    for i in range(5):
        post(client, admin, rows(100, shift=0, seed=10 + i, start=100 * i))
        client.post(DETECT, headers=admin)
    url = "/api/v1/models/plankton/results"
    seen, before = [], None
    while True:
        params = {"limit": 2} | ({} if before is None else {"before": before})
        page = client.get(url, params=params, headers=admin).json()
        seen += [r["id"] for r in page["runs"]]
        before = page["next_before"]
        if before is None:
            break
    assert len(seen) == 5 and seen == sorted(seen, reverse=True)
    # the third run's window ended at record 299 (T0 + 299 s)
    since = (T0 + timedelta(seconds=299)).isoformat()
    filtered = client.get(url, params={"since": since}, headers=admin).json()["runs"]
    assert [r["window_end"] >= since for r in filtered] == [True] * 3
    assert client.get(url, params={"monitor": "other"}, headers=admin).json()["runs"] == []
    assert client.get(url, params={"since": "yesterday"}, headers=admin).status_code == 422


def test_promote_a_window_to_the_reference(
    client: TestClient, admin: dict[str, str], model: dict[str, Any]
) -> None:
    upload_reference(client, admin)
    post(client, admin, rows(300, shift=2, seed=4))
    promote = "/api/v1/models/plankton/reference/promote"
    span = {"from": T0.isoformat(), "to": (T0 + timedelta(seconds=120)).isoformat()}
    response = client.post(promote, json=span, headers=admin)
    assert response.status_code == 200, response.text
    assert response.json()["rows"] == 120  # records at T0 + 0 .. 119 s; "to" excluded
    (run,) = client.post(DETECT, headers=admin).json()
    # against the promoted (shifted) data, the shifted window no longer drifts in brightness
    brightness = next(r for r in run["results"] if r["feature"] == "brightness")
    assert not brightness["drift"]
    by_run = client.post(promote, json={"run": run["id"]}, headers=admin)
    assert by_run.status_code == 200 and by_run.json()["rows"] == run["n_current"]
    empty = {"from": "2030-01-01T00:00:00Z", "to": "2030-01-02T00:00:00Z"}
    assert client.post(promote, json=empty, headers=admin).status_code == 422
    backwards = {"from": span["to"], "to": span["from"]}
    assert client.post(promote, json=backwards, headers=admin).status_code == 422
    assert client.post(promote, json={"run": 10_000}, headers=admin).status_code == 404
    assert client.post(promote, json={}, headers=admin).status_code == 422


def test_each_version_has_its_own_reference(
    client: TestClient, admin: dict[str, str], model: dict[str, Any]
) -> None:
    upload_reference(client, admin)
    v2 = {**SPEC, "version": "2"}
    assert client.post("/api/v1/models", json=v2, headers=admin).status_code == 200
    model_now = client.get("/api/v1/models/plankton", headers=admin).json()
    assert model_now["version"] == "2" and model_now["reference_rows"] is None
    reference = "/api/v1/models/plankton/reference"
    new = client.post(reference, json={"records": rows(50, shift=0, seed=5)}, headers=admin)
    assert new.status_code == 200 and new.json()["version"] == "2"
    old = client.post(
        reference,
        params={"version": "1"},
        json={"records": rows(70, shift=0, seed=6)},
        headers=admin,
    )
    assert old.status_code == 200 and (old.json()["version"], old.json()["rows"]) == ("1", 70)
    assert client.get("/api/v1/models/plankton", headers=admin).json()["reference_rows"] == 50
    missing = client.post(
        reference,
        params={"version": "9"},
        json={"records": rows(5, shift=0, seed=7)},
        headers=admin,
    )
    assert missing.status_code == 404


def test_malformed_and_oversized_bodies_are_refused_on_every_new_route(
    client: TestClient, admin: dict[str, str], model: dict[str, Any]
) -> None:
    before = client.get(MONITORS, headers=admin).json()
    routes = [
        ("put", MONITORS),
        ("put", "/api/v1/models/plankton/alerts/rules"),
        ("post", "/api/v1/models/plankton/reference/promote"),
    ]
    limit = client.app.state.tidewatch.settings.max_body_bytes  # type: ignore[attr-defined]
    for method, url in routes:
        broken = client.request(method, url, content=b"{nope", headers=admin)
        assert broken.status_code == 400 and "malformed JSON" in broken.text, (url, broken.text)
        huge = client.request(method, url, content=b" " * (limit + 1), headers=admin)
        assert huge.status_code == 413, (url, huge.status_code)
        assert client.request(method, url, json={}).status_code == 401
    assert client.get(MONITORS, headers=admin).json() == before  # nothing changed
