"""The service's label-free estimate uses the binary model's own cut (SQLite and PostgreSQL).

A model predicts ``diatom`` when its probability reaches 0.3. Two tumbling minutes of 1,500
labelled records each: the first calibrates, the second is estimated. Tolerance 0.05 on the
estimated accuracy: the window's realized accuracy has a standard deviation of at most
sqrt(0.25 / 1,500) = 0.013 around its expectation and the calibration learnt on 1,500 rows adds
about as much, so 0.05 is more than 2.5 combined standard deviations (the data are seeded: the
outcome is deterministic). The classifier with a cut of 0.5 is shown to be more than 0.05 away.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from collectors.wire import Prediction, Record
from detectors.performance.cbpe import CBPE
from monitor.db.tables import PerformanceResult
from monitor.runs.monitoring import run_due
from monitor.runs.performance import breach_text
from monitor.runs.pipeline import ReferenceCache
from monitor.spec.model import ModelSpec
from tests.monitor.monitoring_helpers import CLASSES, T0, Db, make_db

CUT = 0.3
N = 1_500
TOL = 0.05
ESTIMATE = {
    "name": "perf",
    "window": {"type": "tumbling", "by": "time", "seconds": 60, "delay_seconds": 30},
    "detectors": {},
    "quality": False,
    "performance": {"metrics": ["accuracy"], "estimate": True},
}


def _spec(threshold: float | None = None) -> ModelSpec:
    output: dict[str, Any] = {"task": "classification", "classes": CLASSES}
    if threshold is not None:
        output["threshold"] = threshold
    return ModelSpec.model_validate(
        {
            "name": "plankton",
            "features": [{"name": "x", "kind": "numeric"}, {"name": "y", "kind": "numeric"}],
            "output": output,
            "monitors": [ESTIMATE],
        }
    )


def _window(
    start: datetime, prefix: str, seed: int, cut: float = CUT
) -> tuple[list[Record], np.ndarray, np.ndarray]:
    """Records of a model that overrates ``diatom`` and predicts it from ``cut``; true labels."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=N) * 1.5 - 1.5
    truth = (rng.uniform(size=N) < 1 / (1 + np.exp(-z))).astype(int)
    score = 1 / (1 + np.exp(-(z + 1.5)))
    out = [
        Record(
            id=f"{prefix}{i}",
            timestamp=start + timedelta(seconds=50 * i / N),
            features={"x": float(z[i]), "y": 0.0},
            prediction=Prediction(
                label=CLASSES[int(score[i] >= cut)],
                probabilities=[1 - float(score[i]), float(score[i])],
            ),
        )
        for i in range(N)
    ]
    return out, score, truth


def _post(db: Db, recs: list[Record], truth: np.ndarray) -> None:
    db.post(recs)
    db.label([(r.id, CLASSES[t]) for r, t in zip(recs, truth, strict=True)])


def _estimated(db: Db) -> tuple[Any, float | None, dict[str, Any]]:
    """Runs both minutes; the second run, its estimated accuracy, and the data it saw."""
    first, _, first_truth = _window(T0, "a", seed=1)
    second, score, truth = _window(T0 + timedelta(seconds=60), "b", seed=2)
    _post(db, first, first_truth)
    _post(db, second, truth)
    monitor = db.registered.spec.monitors[0]
    runs = run_due(
        db.sessions, db.registered, monitor, ReferenceCache(), now=T0 + timedelta(seconds=150)
    )
    assert len(runs) == 2
    with db.sessions() as session:
        rows = {
            r.metric: r.value
            for r in session.scalars(
                select(PerformanceResult).where(PerformanceResult.run_id == runs[1].id)
            )
        }
    data = {"score": score, "truth": truth, "first": _window(T0, "a", seed=1)}
    return runs[1], rows.get("estimated.accuracy"), data


@pytest.mark.parametrize("declared", [None, CUT], ids=["inferred", "declared"])
def test_estimate_describes_the_model_with_its_own_cut(db_url: str, declared: float | None) -> None:
    db = make_db(db_url, _spec(declared))
    run, estimated, data = _estimated(db)
    score, truth = data["score"], data["truth"]
    realized = float(np.mean((score >= CUT) == truth))
    realized_half = float(np.mean((score >= 0.5) == truth))
    assert "estimated on 1500 earlier labels" in run.message
    assert estimated is not None and abs(estimated - realized) < TOL
    # what the service estimated before (CBPE with the cut of 0.5) describes another classifier
    _, first_score, first_truth = data["first"]
    at_half = CBPE(metrics=("accuracy",), device="cpu").fit(first_score, first_truth)
    half = at_half.estimate(score)["accuracy"].value
    assert abs(half - realized) > TOL and abs(half - realized_half) < TOL


def test_labels_no_cut_explains_give_no_estimate_and_say_why(db_url: str) -> None:
    db = make_db(db_url, _spec())
    first, _, first_truth = _window(T0, "a", seed=1)
    # a few predictions flipped: no threshold on the score reproduces the stored labels
    for rec in first[:20]:
        assert rec.prediction is not None and rec.prediction.label is not None
        rec.prediction.label = CLASSES[1 - CLASSES.index(rec.prediction.label)]
    _post(db, first, first_truth)
    second, _, truth = _window(T0 + timedelta(seconds=60), "b", seed=2)
    _post(db, second, truth)
    runs = run_due(
        db.sessions,
        db.registered,
        db.registered.spec.monitors[0],
        ReferenceCache(),
        now=T0 + timedelta(seconds=150),
    )
    assert "no estimate (the predicted labels are not a threshold" in runs[1].message
    with db.sessions() as session:
        metrics = session.scalars(
            select(PerformanceResult.metric).where(PerformanceResult.run_id == runs[1].id)
        ).all()
    assert "estimated.accuracy" not in metrics


def test_a_threshold_is_for_binary_classifiers_only() -> None:
    base = {"name": "m", "features": [{"name": "x", "kind": "numeric"}]}
    three = {"task": "classification", "classes": ["a", "b", "c"], "threshold": 0.3}
    with pytest.raises(ValueError, match="exactly 2 classes"):
        ModelSpec.model_validate({**base, "output": three})
    with pytest.raises(ValueError, match="exactly 2 classes"):
        ModelSpec.model_validate({**base, "output": {"task": "regression", "threshold": 0.3}})
    with pytest.raises(ValueError, match="less than 1"):
        ModelSpec.model_validate(
            {**base, "output": {"task": "classification", "classes": ["a", "b"], "threshold": 1}}
        )


@pytest.mark.parametrize(
    ("name", "value", "threshold", "higher_is_better", "text"),
    [
        ("accuracy", 0.7133526850507983, 0.85, True, "accuracy 0.713 below 0.85"),
        ("mae", 2.4861, 2.0, False, "mae 2.49 above 2"),
    ],
)
def test_a_breached_metric_says_which_way_in_three_digits(
    name: str, value: float, threshold: float, higher_is_better: bool, text: str
) -> None:
    assert breach_text(name, value, threshold, higher_is_better) == text
