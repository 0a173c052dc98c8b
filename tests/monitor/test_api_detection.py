"""Detection on demand: windows, minimum sample size, verdicts, stored results, paging."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from monitor.spec.detector_defaults import JOINT_DETECTORS
from tests.conftest import make_key

METHOD = "+".join(JOINT_DETECTORS)  # the default joint test's method

DETECT = "/api/v1/models/plankton/detect"


def rows(
    n: int, *, shift: float, seed: int, site_b: float = 0.5, start: int = 0
) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        {
            "id": f"r{start + i}",
            "timestamp": (t0 + timedelta(seconds=start + i)).isoformat(),
            "features": {
                "brightness": float(rng.normal() + shift),
                "site": "b" if rng.random() < site_b else "a",
                "emb": rng.normal(size=3).tolist(),
            },
            "prediction": {"probabilities": [0.7, 0.3]},
        }
        for i in range(n)
    ]


def upload_reference(client: TestClient, admin: dict[str, str]) -> None:
    response = client.post(
        "/api/v1/models/plankton/reference",
        json={"records": rows(400, shift=0, seed=1)},
        headers=admin,
    )
    assert response.status_code == 200, response.text


def post(client: TestClient, admin: dict[str, str], records: list[dict[str, Any]]) -> None:
    response = client.post(
        "/api/v1/models/plankton/telemetry", json={"records": records}, headers=admin
    )
    assert response.status_code == 200, response.text


def test_no_reference_and_too_few_records_are_reported(
    client: TestClient, admin: dict[str, str], model: dict[str, Any]
) -> None:
    run = client.post(DETECT, headers=admin).json()[0]
    assert run["status"] == "no_reference"
    upload_reference(client, admin)
    post(client, admin, rows(20, shift=0, seed=2))
    run = client.post(DETECT, headers=admin).json()[0]
    assert run["status"] == "insufficient_data"
    assert run["n_current"] == 20
    assert "50 needed" in run["message"]


def test_drifted_feature_is_flagged_and_stable_ones_are_not(
    client: TestClient, admin: dict[str, str], model: dict[str, Any]
) -> None:
    upload_reference(client, admin)
    post(client, admin, rows(300, shift=0, seed=3))  # older, undrifted
    post(client, admin, rows(300, shift=1.5, seed=4, site_b=0.9, start=300))  # the window
    response = client.post(DETECT, headers=admin)
    assert response.status_code == 200, response.text
    run = response.json()[0]
    assert run["status"] == "drift"
    assert run["n_current"] == 300  # count window of 300: only the newest records
    assert run["window_start"].startswith("2026-01-01T00:05:00")
    by_feature = {r["feature"]: r for r in run["results"]}
    assert set(by_feature) == {
        "brightness",
        "site",
        "emb",
        "prediction.label",
        "prediction.confidence",
        "prediction.entropy",
        "*",  # the joint stage: one combined test over the numeric features together
    }
    assert by_feature["*"]["method"] == METHOD and by_feature["*"]["effect"] is None
    brightness = by_feature["brightness"]
    assert brightness["drift"] and brightness["method"] == "ks_weighted_ks"
    assert by_feature["site"]["drift"] and by_feature["site"]["method"] == "chi2"
    assert not by_feature["emb"]["drift"]
    # the per-feature tests share 1 - 0.1 of the budget of 7 tests, a weight of 1.05 each: BH
    # adjusts each p-value to at least p / 1.05 (and grows it when the window has many tests)
    weight = (1 - 0.1) * 7 / 6
    for r in run["results"]:
        if r["feature"] != "*" and r["p_adjusted"] is not None:
            assert r["p_adjusted"] >= r["p_value"] / weight - 1e-12, r
    assert run["drifted_share"] == 2 / 6  # of the features, not counting the joint test
    assert f"joint test ({METHOD} over 3 numeric features)" in run["message"], run["message"]


def test_results_are_listed_newest_first_and_paged(
    client: TestClient, admin: dict[str, str], model: dict[str, Any]
) -> None:
    upload_reference(client, admin)
    post(client, admin, rows(100, shift=0, seed=5))
    ids = [client.post(DETECT, headers=admin).json()[0]["id"] for _ in range(3)]
    reader = make_key(client, "read")
    page = client.get("/api/v1/models/plankton/results", params={"limit": 2}, headers=reader).json()
    assert [r["id"] for r in page["runs"]] == ids[::-1][:2]
    assert page["runs"][0]["results"]
    rest = client.get(
        "/api/v1/models/plankton/results",
        params={"limit": 2, "before": page["next_before"]},
        headers=reader,
    ).json()
    assert [r["id"] for r in rest["runs"]] == [ids[0]]
    assert rest["next_before"] is None


def test_reference_is_fitted_once_per_version(
    client: TestClient, admin: dict[str, str], model: dict[str, Any]
) -> None:
    upload_reference(client, admin)
    post(client, admin, rows(100, shift=0, seed=6))
    cache = client.app.state.tidewatch.cache  # type: ignore[attr-defined]
    for _ in range(3):
        client.post(DETECT, headers=admin)
    assert cache.fits == 1
    upload_reference(client, admin)  # same content: same cache entry
    client.post(DETECT, headers=admin)
    assert cache.fits == 1
    client.post(
        "/api/v1/models/plankton/reference",
        json={"records": rows(300, shift=0, seed=9)},
        headers=admin,
    )
    client.post(DETECT, headers=admin)
    assert cache.fits == 2


def test_time_window(client: TestClient, admin: dict[str, str]) -> None:
    from tests.conftest import SPEC

    spec = {
        **SPEC,
        "monitors": [
            {"name": "hourly", "window": {"by": "time", "seconds": 3600}, "min_samples": 10}
        ],
    }
    assert client.post("/api/v1/models", json=spec, headers=admin).status_code == 200
    upload_reference(client, admin)
    now = datetime.now(UTC)
    old = rows(50, shift=0, seed=7)
    for i, r in enumerate(old):
        r["timestamp"] = (now - timedelta(hours=3, seconds=i)).isoformat()
    recent = rows(40, shift=0, seed=8, start=100)
    for i, r in enumerate(recent):
        r["timestamp"] = (now - timedelta(minutes=30, seconds=i)).isoformat()
    post(client, admin, old + recent)
    run = client.post(DETECT, params={"monitor": "hourly"}, headers=admin).json()[0]
    assert run["n_current"] == 40
    assert client.post(DETECT, params={"monitor": "nope"}, headers=admin).status_code == 404


def test_detection_needs_admin_and_results_need_read(
    client: TestClient, model: dict[str, Any]
) -> None:
    assert client.post(DETECT, headers=make_key(client, "read")).status_code == 403
    assert client.post(DETECT).status_code == 401
    assert (
        client.get(
            "/api/v1/models/plankton/results", headers=make_key(client, "ingest:plankton")
        ).status_code
        == 403
    )
    assert (
        client.post("/api/v1/models/none/detect", headers=make_key(client, "admin")).status_code
        == 404
    )
    bad = client.get(
        "/api/v1/models/plankton/results", params={"limit": 0}, headers=make_key(client, "read")
    )
    assert bad.status_code == 422


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    assert client.get("/openapi.json").json()["info"]["title"] == "Tidewatch"


def test_readiness_fails_when_the_database_is_gone(tmp_path: Any) -> None:
    from monitor.app import create_app
    from monitor.settings import Settings

    settings = Settings(database_url="postgresql://nobody@127.0.0.1:1/none", migrate_on_start=False)
    with TestClient(create_app(settings)) as client:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json() == {"status": "unavailable"}  # no host, port or driver error
        assert "127.0.0.1" not in response.text and "nobody" not in response.text
        assert client.get("/healthz").status_code == 200


def test_openapi_documents_the_raw_request_bodies(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    telemetry = doc["paths"]["/api/v1/models/{name}/telemetry"]["post"]["requestBody"]
    ref = telemetry["content"]["application/json"]["schema"]["$ref"]
    assert ref == "#/components/schemas/TelemetryBatch"
    assert "records" in schemas["TelemetryBatch"]["properties"]
    assert "Record" in schemas and "Prediction" in schemas  # nested models resolve
    reference = doc["paths"]["/api/v1/models/{name}/reference"]["post"]["requestBody"]["content"]
    assert set(reference) == {"application/json", "text/csv", "application/vnd.apache.parquet"}
    assert reference["application/json"]["schema"]["$ref"] == "#/components/schemas/ReferenceBody"
    assert "ModelSpec" in schemas and "LabelBatch" in schemas
    # every $ref in the document points at a schema that exists
    import json
    import re

    for name in re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(doc)):
        assert name in schemas, name


def test_monitor_chooses_detectors_by_name_with_parameters(
    client: TestClient, admin: dict[str, str], model: dict[str, Any]
) -> None:
    spec = {
        **model,
        "version": "2",
        "monitors": [
            {
                "name": "distances",
                "min_samples": 50,
                "window": {"size": 300},
                "detectors": {
                    "numeric": {"name": "wasserstein", "params": {"threshold": 0.2}},
                    "categorical": "tvd",
                    "vector": "ks-pca",  # the former name, still accepted
                },
            },
            {
                "name": "permutation",
                "min_samples": 50,
                "window": {"size": 300},
                "detectors": {"numeric": {"name": "psi", "params": {"n_permutations": 99}}},
            },
            {
                "name": "no-vectors",
                "min_samples": 50,
                "window": {"size": 300},
                "detectors": {"vector": "none"},
            },
            {
                "name": "combined",
                "min_samples": 50,
                "window": {"size": 300},
                "detectors": {"numeric": "anderson_ks"},
            },
            {
                "name": "tails",
                "min_samples": 50,
                "window": {"size": 300},
                "detectors": {"numeric": "ks_weighted_ks"},
            },
        ],
    }
    assert client.post("/api/v1/models", json=spec, headers=admin).status_code == 200
    upload_reference(client, admin)
    post(client, admin, rows(300, shift=1.5, seed=4, site_b=0.9))
    runs = {r["monitor"]: r for r in client.post(DETECT, headers=admin).json()}
    distances = {r["feature"]: r for r in runs["distances"]["results"]}
    assert distances["brightness"]["method"] == "wasserstein"
    assert distances["brightness"]["p_value"] is None  # a distance with a threshold
    assert distances["brightness"]["drift"] and distances["brightness"]["statistic"] > 0.2
    assert distances["site"]["method"] == "tvd" and distances["site"]["drift"]
    assert distances["emb"]["method"] == "ks_pca" and not distances["emb"]["drift"]
    assert runs["distances"]["status"] == "drift"
    permuted = {r["feature"]: r for r in runs["permutation"]["results"]}
    assert permuted["brightness"]["p_value"] == pytest.approx(1 / 100)
    assert permuted["brightness"]["drift"]
    # naming the numeric test changes that one only: the other kinds keep their defaults
    # (a mapping once replaced them all, and vectors went untested without a word)
    assert permuted["site"]["method"] == permuted["prediction.label"]["method"] == "chi2"
    assert permuted["emb"]["method"] == "ks_mmd"
    # "none" leaves a kind out on purpose, and the status names what is not tested
    assert "emb" not in {r["feature"] for r in runs["no-vectors"]["results"]}
    status = client.get("/api/v1/models/plankton/status", headers=admin).json()
    untested = {m["monitor"]: m["untested"] for m in status["monitors"]}
    assert untested == {
        "distances": [],
        "permutation": [],
        "no-vectors": ["emb"],
        "combined": [],
        "tails": [],
    }
    # Anderson-Darling and KS, Cauchy-combined: the drifted feature flagged, under its name
    combined = {r["feature"]: r for r in runs["combined"]["results"]}
    assert combined["brightness"]["method"] == "anderson_ks" and combined["brightness"]["drift"]
    assert combined["brightness"]["p_value"] < 1e-6
    # KS and the variance-weighted KS, Cauchy-combined, the same way
    tails = {r["feature"]: r for r in runs["tails"]["results"]}
    assert tails["brightness"]["method"] == "ks_weighted_ks" and tails["brightness"]["drift"]
    assert tails["brightness"]["p_value"] < 1e-6


def test_runs_report_data_quality_of_the_window(
    client: TestClient, admin: dict[str, str], model: dict[str, Any]
) -> None:
    upload_reference(client, admin)
    current = rows(300, shift=10.0, seed=6)  # every brightness far above the reference's range
    for i, record in enumerate(current):
        if i % 5 == 0:
            record["features"]["brightness"] = None  # 20% missing (the reference has none)
        if i % 10 == 1:
            record["features"]["site"] = "c"  # a site never seen in the reference
    post(client, admin, current)
    run = client.post(DETECT, headers=admin).json()[0]
    quality = {(q["feature"], q["check"]): q for q in run["quality"]}
    missing = quality[("brightness", "missing_rate")]
    assert missing["value"] == pytest.approx(0.2) and missing["reference_value"] == 0.0
    assert missing["problem"]
    assert quality[("brightness", "out_of_range_share")]["value"] == 1.0
    assert quality[("site", "unseen_share")]["value"] == pytest.approx(30 / 300)
    assert quality[("site", "unseen_share")]["problem"]
    assert not quality[("site", "missing_rate")]["problem"]
    assert not quality[("brightness", "constant")]["problem"]
    # "brightness" is one of the image statistics, also checked against its 1st-99th percentiles
    assert quality[("brightness", "image_outside_share")]["problem"]
    assert "4 data-quality problems" in run["message"]
    listed = client.get("/api/v1/models/plankton/results", headers=admin).json()["runs"][0]
    assert listed["quality"] == run["quality"]
