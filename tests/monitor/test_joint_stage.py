"""The default monitor's joint stage (issue #18): one MMD over the numeric features together,
in one weighted BH family with the per-feature tests, through the service.

Two features correlated +0.9 in the reference and -0.9 in the window keep every marginal: KS
on each cannot see it, the joint test does, and the run says which stage fired.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from monitor.spec.detector_defaults import JOINT_DETECTORS

METHOD = "+".join(JOINT_DETECTORS)  # the default joint test's method
WINDOW = {"by": "count", "size": 300}
SPEC: dict[str, Any] = {
    "name": "pair",
    "features": [{"name": "a", "kind": "numeric"}, {"name": "b", "kind": "numeric"}],
    "output": {"task": "regression"},
    "monitors": [
        {"name": "default", "window": WINDOW, "min_samples": 50, "quality": False},
        {
            "name": "marginal",
            "window": WINDOW,
            "min_samples": 50,
            "quality": False,
            "joint": None,
        },
    ],
}


def _records(n: int, *, rho: float, seed: int, start: int = 0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    pairs = rng.multivariate_normal([0.0, 0.0], [[1.0, rho], [rho, 1.0]], size=n)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        {
            "id": f"r{start + i}",
            "timestamp": (t0 + timedelta(seconds=start + i)).isoformat(),
            "features": {"a": float(a), "b": float(b)},
            "prediction": {"value": 1.0},
        }
        for i, (a, b) in enumerate(pairs)
    ]


def _detect(client: TestClient, admin: dict[str, str], rho: float, seed: int, start: int) -> Any:
    window = _records(300, rho=rho, seed=seed, start=start)
    posted = client.post("/api/v1/models/pair/telemetry", json={"records": window}, headers=admin)
    assert posted.status_code == 200, posted.text
    response = client.post("/api/v1/models/pair/detect", headers=admin)
    assert response.status_code == 200, response.text
    return {run["monitor"]: run for run in response.json()}


def test_a_change_of_correlation_is_caught_by_the_joint_stage_alone(
    client: TestClient, admin: dict[str, str]
) -> None:
    assert client.post("/api/v1/models", json=SPEC, headers=admin).status_code == 200
    reference = client.post(
        "/api/v1/models/pair/reference",
        json={"records": _records(900, rho=0.9, seed=1)},
        headers=admin,
    )
    assert reference.status_code == 200, reference.text

    calm = _detect(client, admin, rho=0.9, seed=2, start=900)
    assert calm["default"]["status"] == "ok", calm["default"]["message"]
    assert f"joint test ({METHOD} over 3 numeric features) passed" in calm["default"]["message"]

    runs = _detect(client, admin, rho=-0.9, seed=3, start=1200)
    default = {r["feature"]: r for r in runs["default"]["results"]}
    # a, b and the prediction's value each keep their distribution ...
    assert not any(r["drift"] for name, r in default.items() if name != "*"), default
    # ... the joint test over them sees the relation flip, and the run says so
    assert default["*"]["method"] == METHOD and default["*"]["drift"]
    assert default["*"]["p_adjusted"] < 0.05
    assert runs["default"]["status"] == "drift"
    assert f"joint test ({METHOD} over 3 numeric features) flagged" in runs["default"]["message"]
    assert runs["default"]["drifted_share"] == 0.0  # of the features, none alone
    # without the joint stage the same window passes: the change is invisible feature by feature
    marginal = runs["marginal"]
    assert marginal["status"] == "ok" and "*" not in {r["feature"] for r in marginal["results"]}


def test_a_joint_detector_must_be_multivariate(client: TestClient, admin: dict[str, str]) -> None:
    for joint, needle in [
        ({"detector": "ks"}, "choose a multivariate one"),
        ({"detector": "nope"}, "unknown detector"),
        ({"share": 1.0}, "share"),
        ({"detector": "mmd", "params": {"bandwidth": -1}}, "bandwidth"),
        ({"detector": []}, "name one multivariate detector"),
        ({"detector": ["mahalanobis", "mahalanobis"]}, "names a test twice"),
        ({"detector": ["mahalanobis", "ks"]}, "choose a multivariate one"),
        ({"detector": ["mahalanobis", "mmd"], "params": {"energy": {}}}, "not among the joint"),
        ({"detector": ["mahalanobis", "mmd"], "params": {"mmd": 3}}, "must be a mapping"),
        (
            {"detector": ["mahalanobis", "mmd"], "params": {"mahalanobis": {"shrinkage": 5}}},
            "shrinkage",
        ),
    ]:
        spec = {**SPEC, "monitors": [{"name": "default", "joint": joint}]}
        response = client.post("/api/v1/models", json=spec, headers=admin)
        assert response.status_code == 422, (joint, response.text)
        assert needle in response.text, (joint, response.text)
    assert client.get("/api/v1/models/pair", headers=admin).status_code == 404


def test_the_default_joint_tests_are_linear_and_use_more_rows_than_a_quadratic_one() -> None:
    """The default joint tests (fourier_mmd, mahalanobis, ks_pca: Bonferroni-combined) take up
    to 10,000 rows a side, a quadratic test 1,000, and a given max_rows wins; the quadratic MMD
    without a bandwidth is the Bonferroni of three; with several tests, params go by name."""
    from detectors.joint import BandwidthsMMD, Bonferroni
    from detectors.multivariate.fourier_mmd import FourierMMD
    from detectors.multivariate.mahalanobis import MahalanobisTest
    from monitor.runs.joint_stage import fit_joint
    from monitor.spec.model import MonitorConfig

    rng = np.random.default_rng(0)
    numeric = {"a": rng.normal(size=500), "b": rng.normal(size=500)}
    for joint, detector, rows in [
        ({}, Bonferroni, 10_000),
        ({"detector": "fourier_mmd"}, FourierMMD, 10_000),
        ({"detector": "fourier_mmd", "bandwidths": [0.5]}, FourierMMD, 10_000),
        ({"detector": "mmd"}, BandwidthsMMD, 1000),
        ({"detector": ["mahalanobis", "energy"]}, Bonferroni, 1000),
        ({"detector": "energy", "max_rows": 300}, None, 300),
    ]:
        monitor = MonitorConfig.model_validate({"joint": joint})
        block = fit_joint(monitor, numeric, ["a", "b"], "cpu")
        assert block.max_rows == rows, joint
        if detector is not None:
            assert isinstance(block.detector, detector), joint
    block = fit_joint(MonitorConfig(), numeric, ["a", "b"], "cpu")
    assert block.method == METHOD
    assert [t.method for t in block.detector.tests] == list(JOINT_DETECTORS)
    config = {"bandwidths": [0.5], "params": {"mahalanobis": {"shrinkage": 0.2}}}
    block = fit_joint(MonitorConfig.model_validate({"joint": config}), numeric, ["a", "b"], "cpu")
    by_method = {t.method: t for t in block.detector.tests}
    assert len(by_method["fourier_mmd"].bandwidths_) == 1
    assert isinstance(by_method["mahalanobis"], MahalanobisTest)
    assert by_method["mahalanobis"].shrinkage_ == 0.2
    assert by_method["ks_pca"].n_components == 8
