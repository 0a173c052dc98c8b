"""Regression, object detection and segmentation models through the API."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

FEATURES = [{"name": "x", "kind": "numeric"}]
MONITOR = [{"window": {"by": "count", "size": 200}, "min_samples": 50}]


def register(client: TestClient, admin: dict[str, str], name: str, output: dict[str, Any]) -> None:
    spec = {"name": name, "features": FEATURES, "output": output, "monitors": MONITOR}
    response = client.post("/api/v1/models", json=spec, headers=admin)
    assert response.status_code == 200, response.text


def detect(
    client: TestClient, admin: dict[str, str], name: str, ref: list[Any], cur: list[Any]
) -> dict[str, Any]:
    assert (
        client.post(
            f"/api/v1/models/{name}/reference", json={"records": ref}, headers=admin
        ).status_code
        == 200
    )
    answer = client.post(f"/api/v1/models/{name}/telemetry", json={"records": cur}, headers=admin)
    assert answer.status_code == 200, answer.text
    run = client.post(f"/api/v1/models/{name}/detect", headers=admin).json()[0]
    return {r["feature"]: r for r in run["results"]}


def test_regression_prediction_drift(client: TestClient, admin: dict[str, str]) -> None:
    register(client, admin, "depth", {"task": "regression"})
    rng = np.random.default_rng(0)
    ref = [
        {"id": f"a{i}", "features": {"x": float(v)}, "prediction": {"value": float(v * 2)}}
        for i, v in enumerate(rng.normal(size=300))
    ]
    cur = [
        {"id": f"b{i}", "features": {"x": float(v)}, "prediction": {"value": float(v * 2 + 3)}}
        for i, v in enumerate(rng.normal(size=200))
    ]
    results = detect(client, admin, "depth", ref, cur)
    assert results["prediction.value"]["drift"] and not results["x"]["drift"]
    bad = client.post(
        "/api/v1/models/depth/telemetry",
        content=b'{"records": [{"id": "z", "prediction": {"value": NaN}}]}',
        headers={**admin, "Content-Type": "application/json"},
    )
    assert (
        bad.status_code == 422 and bad.json()["detail"][0]["loc"] == "records[0].prediction.value"
    )
    wrong = client.post(
        "/api/v1/models/depth/telemetry",
        json={"records": [{"id": "z", "prediction": {"label": "a"}}]},
        headers=admin,
    )
    assert wrong.status_code == 422
    label = client.post(
        "/api/v1/models/depth/labels", json={"labels": [{"id": "b1"}]}, headers=admin
    )
    assert label.status_code == 422 and "finite 'value'" in label.text


def boxes(n: int, score: float, label: str = "bottle", size: float = 10) -> list[dict[str, Any]]:
    box = {"label": label, "score": score, "x1": 0, "y1": 0, "x2": size, "y2": size / 2}
    return [dict(box) for _ in range(n)]


def test_detection_boxes_per_image_and_score(client: TestClient, admin: dict[str, str]) -> None:
    register(client, admin, "litter", {"task": "detection", "classes": ["bottle", "bag"]})
    rng = np.random.default_rng(1)
    ref = [
        {"id": f"a{i}", "features": {"x": 0.0}, "prediction": {"boxes": boxes(int(k), 0.9)}}
        for i, k in enumerate(rng.integers(0, 4, 300))
    ]
    cur = [
        {
            "id": f"b{i}",
            "features": {"x": 0.0},
            "prediction": {"boxes": boxes(int(k), 0.5, ["bottle", "bag"][i % 2], 20)},
        }
        for i, k in enumerate(rng.integers(3, 8, 200))
    ]
    results = detect(client, admin, "litter", ref, cur)
    # more boxes per image, lower scores, bags appear, boxes twice as large; same 2:1 shape
    for drifted in ("boxes", "box_score", "box_class", "box_area"):
        assert results[f"prediction.{drifted}"]["drift"], drifted
    assert not results["prediction.box_aspect"]["drift"]
    # per-box columns count boxes, not images
    n_boxes = sum(len(r["prediction"]["boxes"]) for r in cur)
    assert results["prediction.box_area"]["n_current"] == n_boxes
    unknown = {"id": "z", "prediction": {"boxes": [{**boxes(1, 0.5)[0], "label": "whale"}]}}
    bad = client.post("/api/v1/models/litter/telemetry", json={"records": [unknown]}, headers=admin)
    assert (
        bad.status_code == 422
        and bad.json()["detail"][0]["loc"] == "records[0].prediction.boxes[0].label"
    )
    label = {"labels": [{"id": "b1", "boxes": [{**boxes(1, 0.5)[0], "label": "whale"}]}]}
    refused = client.post("/api/v1/models/litter/labels", json=label, headers=admin)
    assert (
        refused.status_code == 422
        and refused.json()["detail"][0]["loc"] == "labels[0].boxes[0].label"
    )
    good = {"labels": [{"id": "b1", "boxes": boxes(2, 1.0)}]}
    assert client.post("/api/v1/models/litter/labels", json=good, headers=admin).json() == {
        "stored": 1,
        "matched": 1,
    }
    score = {"id": "z", "prediction": {"boxes": [{**boxes(1, 0.5)[0], "score": 1.5}]}}
    assert (
        client.post(
            "/api/v1/models/litter/telemetry", json={"records": [score]}, headers=admin
        ).status_code
        == 422
    )


def test_segmentation_area_per_class(client: TestClient, admin: dict[str, str]) -> None:
    register(client, admin, "oil", {"task": "segmentation", "classes": ["oil", "water"]})
    rng = np.random.default_rng(2)
    ref = [
        {
            "id": f"a{i}",
            "features": {"x": 0.0},
            "prediction": {"areas": {"oil": float(a), "water": float(1 - a)}},
        }
        for i, a in enumerate(rng.uniform(0, 0.2, 300))
    ]
    cur = [
        {
            "id": f"b{i}",
            "features": {"x": 0.0},
            "prediction": {"areas": {"oil": float(a), "water": float(1 - a)}},
        }
        for i, a in enumerate(rng.uniform(0.3, 0.6, 200))
    ]
    results = detect(client, admin, "oil", ref, cur)
    assert results["prediction.area.oil"]["drift"] and results["prediction.area.water"]["drift"]
    bad = client.post(
        "/api/v1/models/oil/telemetry",
        json={"records": [{"id": "z", "prediction": {"areas": {"oil": 2.0}}}]},
        headers=admin,
    )
    assert (
        bad.status_code == 422
        and bad.json()["detail"][0]["loc"] == "records[0].prediction.areas.oil"
    )


@pytest.mark.parametrize("task", ["regression", "segmentation", "detection"])
def test_csv_reference_for_each_task(client: TestClient, admin: dict[str, str], task: str) -> None:
    output: dict[str, Any] = (
        {"task": task} if task == "regression" else {"task": task, "classes": ["a", "b"]}
    )
    register(client, admin, f"m-{task}", output)
    csv = {
        "regression": "x,prediction\n1,2.5\n2,3.5\n",
        "segmentation": "x,area_a,area_b\n1,0.2,0.8\n2,0.4,0.6\n",
        "detection": "x\n1\n2\n",
    }[task]
    response = client.post(
        f"/api/v1/models/m-{task}/reference",
        content=csv,
        headers={**admin, "Content-Type": "text/csv"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["rows"] == 2


@pytest.mark.parametrize(
    ("output", "prediction", "field"),
    [
        ({"task": "detection", "classes": ["a"]}, {"probabilities": [1.0]}, "probabilities"),
        ({"task": "segmentation", "classes": ["a"]}, {"label": "a"}, "label"),
        ({"task": "regression"}, {"boxes": []}, "boxes"),
        ({"task": "classification", "classes": ["a"]}, {"areas": {"a": 0.5}}, "areas"),
    ],
    ids=["detection", "segmentation", "regression", "classification"],
)
def test_prediction_fields_of_another_task_are_refused(
    client: TestClient,
    admin: dict[str, str],
    output: dict[str, Any],
    prediction: dict[str, Any],
    field: str,
) -> None:
    register(client, admin, "m", output)
    answer = client.post(
        "/api/v1/models/m/telemetry",
        json={"records": [{"id": "1", "prediction": prediction}]},
        headers=admin,
    )
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == f"records[0].prediction.{field}"
