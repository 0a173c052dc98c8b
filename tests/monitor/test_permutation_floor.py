"""A vector feature that drifts alone among 20 numeric features is flagged under BH (issue #18).

Two monitors of one model run the same MMD on the embedding: ``auto`` (the default, sized by the
service to the monitor's correction family) and a fixed 200 permutations (the former default).
With 200 permutations the smallest p-value is 1/201, and Benjamini-Hochberg over the model's
features multiplies the smallest p-value by their number: no shift, however large, can pass.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from detectors.permutations import resolve_permutations, smallest_p_value

NUMERIC = [f"x{i}" for i in range(20)]
ALPHA = 0.05
OLD_DEFAULT = 200
WINDOW = {"by": "count", "size": 150}
SPEC: dict[str, Any] = {
    "name": "floor",
    "features": [{"name": n, "kind": "numeric"} for n in NUMERIC]
    + [{"name": "emb", "kind": "vector", "dim": 8}],
    "output": {"task": "classification", "classes": ["a", "b"]},
    "monitors": [
        # per-feature tests only ("joint": null): the family is plain BH over the features
        {
            "name": "auto",
            "window": WINDOW,
            "min_samples": 50,
            "detectors": {"vector": "mmd"},
            "joint": None,
        },
        {
            "name": "fixed",
            "window": WINDOW,
            "min_samples": 50,
            "joint": None,
            "detectors": {"vector": {"name": "mmd", "params": {"n_permutations": OLD_DEFAULT}}},
        },
    ],
}


def _records(n: int, *, shift: float, seed: int, start: int = 0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        {
            "id": f"r{start + i}",
            "timestamp": (t0 + timedelta(seconds=start + i)).isoformat(),
            "features": {
                **{name: float(rng.normal()) for name in NUMERIC},
                "emb": (rng.normal(size=8) + shift).tolist(),
            },
            "prediction": {"probabilities": [0.7, 0.3]},
        }
        for i in range(n)
    ]


def test_lone_drifting_vector_passes_bh_only_with_enough_permutations(
    client: TestClient, admin: dict[str, str]
) -> None:
    assert client.post("/api/v1/models", json=SPEC, headers=admin).status_code == 200
    reference = client.post(
        "/api/v1/models/floor/reference",
        json={"records": _records(300, shift=0.0, seed=1)},
        headers=admin,
    )
    assert reference.status_code == 200, reference.text
    # only the embedding moves: one coordinate-wise shift of 1 sd, far beyond any permutation
    window = _records(150, shift=1.0, seed=2, start=300)
    posted = client.post("/api/v1/models/floor/telemetry", json={"records": window}, headers=admin)
    assert posted.status_code == 200, posted.text
    response = client.post("/api/v1/models/floor/detect", headers=admin)
    assert response.status_code == 200, response.text
    runs = {run["monitor"]: run for run in response.json()}

    # the family is every feature the run tested, the prediction's columns included
    family = len(runs["auto"]["results"])
    assert family > len(NUMERIC)
    drawn = resolve_permutations("auto", family_size=family, alpha=ALPHA, minimum=OLD_DEFAULT)
    auto = {r["feature"]: r for r in runs["auto"]["results"]}
    fixed = {r["feature"]: r for r in runs["fixed"]["results"]}

    # auto: the shift is beyond every permutation, and the floor passes BH
    assert auto["emb"]["p_value"] == smallest_p_value(drawn)
    assert auto["emb"]["drift"] and auto["emb"]["p_adjusted"] < ALPHA

    # the old floor: the same shift, the smallest p-value 200 permutations allow, and still
    # BH's smallest adjusted value is that floor times the family size, above alpha
    assert smallest_p_value(OLD_DEFAULT) * family >= ALPHA
    assert fixed["emb"]["p_value"] == smallest_p_value(OLD_DEFAULT)
    assert not fixed["emb"]["drift"] and fixed["emb"]["p_adjusted"] >= ALPHA
