"""The backtest chooses a model's label-free estimator; the status shows it (SQLite, PostgreSQL).

A binary model scores ``x`` only; its labels follow ``x`` less and less as ``y`` passes 1.5,
and ``y`` drifts upwards minute by minute (means 0, 0.6, ..., 3.0): each past window sits where
the records before it are thin, which the importance-weighted CBPE follows and CBPE does not.
The stored choice is checked against the same backtest recomputed here from the records as
stored (float32 probabilities, renormalised), so the service's loading, ordering and features
are what is tested; the choice itself must be the importance-weighted estimator, whose error
must be the lower one (a property of the data, not a hard-coded number).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from collectors.wire import Prediction, Record
from detectors.performance.backtest import backtest
from monitor.app import create_app
from monitor.cli import app as cli
from monitor.runs.monitoring import run_due
from monitor.runs.pipeline import ReferenceCache
from monitor.runs.status import model_statuses
from monitor.settings import Settings
from monitor.spec.model import ModelSpec
from tests.conftest import make_key
from tests.monitor.monitoring_helpers import CLASSES, T0, Db, make_db

PER_MINUTE = 1_000
MEANS = (0.0, 0.6, 1.2, 1.8, 2.4, 3.0)
MONITOR = {
    "name": "perf",
    "window": {"type": "tumbling", "by": "time", "seconds": 60, "delay_seconds": 30},
    "detectors": {},
    "quality": False,
    "performance": {"metrics": ["accuracy"], "estimate": True},
}


def _spec() -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "name": "plankton",
            "features": [{"name": "x", "kind": "numeric"}, {"name": "y", "kind": "numeric"}],
            "output": {"task": "classification", "classes": CLASSES},
            "monitors": [MONITOR],
        }
    )


def _minute(db: Db, minute: int, n: int, mean: float, rng: np.random.Generator) -> None:
    x, y = rng.normal(size=n), rng.normal(mean, 1.0, size=n)
    slope = 3.0 / (1.0 + np.exp(2.0 * (y - 1.5))) + 0.3
    truth = rng.uniform(size=n) < 1 / (1 + np.exp(-slope * x))
    score = 1 / (1 + np.exp(-2 * x))
    start = T0 + timedelta(seconds=60 * minute)
    records = [
        Record(
            id=f"m{minute}-{i}",
            timestamp=start + timedelta(seconds=50 * i / n),
            features={"x": float(x[i]), "y": float(y[i])},
            prediction=Prediction(
                label=CLASSES[int(score[i] >= 0.5)],
                probabilities=[1 - float(score[i]), float(score[i])],
            ),
        )
        for i in range(n)
    ]
    db.post(records)
    db.label([(r.id, CLASSES[int(t)]) for r, t in zip(records, truth, strict=True)])


def _run(db: Db, minutes: int) -> list[str]:
    runs = run_due(
        db.sessions,
        db.registered,
        db.registered.spec.monitors[0],
        ReferenceCache(),
        now=T0 + timedelta(seconds=60 * minutes + 30),
    )
    return [r.message for r in runs]


def _history(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The first five minutes as the service stores them: float32 probabilities."""
    rng = np.random.default_rng(seed)
    probabilities, labels, features = [], [], []
    for mean in MEANS[:5]:
        x, y = rng.normal(size=PER_MINUTE), rng.normal(mean, 1.0, size=PER_MINUTE)
        slope = 3.0 / (1.0 + np.exp(2.0 * (y - 1.5))) + 0.3
        truth = rng.uniform(size=PER_MINUTE) < 1 / (1 + np.exp(-slope * x))
        score = 1 / (1 + np.exp(-2 * x))
        stored = np.column_stack([1 - score, score]).astype(np.float32).astype(np.float64)
        probabilities.append(stored / stored.sum(axis=1, keepdims=True))
        labels.append(np.where(truth, CLASSES[1], CLASSES[0]))
        features.append(np.column_stack([x, y]))
    return np.vstack(probabilities), np.concatenate(labels), np.vstack(features)


def test_backtest_picks_the_estimator_and_the_status_shows_it(db_url: str, tmp_path: Path) -> None:
    db = make_db(db_url, _spec())
    rng = np.random.default_rng(7)
    for minute, mean in enumerate(MEANS):
        _minute(db, minute, PER_MINUTE, mean, rng)
    messages = _run(db, len(MEANS))
    assert len(messages) == len(MEANS)
    assert "no estimate (0 labelled records before the window" in messages[0]

    probabilities, labels, features = _history(7)
    expected = backtest(
        probabilities,
        labels,
        features,
        CLASSES,
        window_rows=min(PER_MINUTE, len(labels) // 6),
        min_reference=len(labels) // 6,
        max_windows=5,
    )
    assert expected.chosen == "iw-cbpe" and expected.errors["iw-cbpe"] < expected.errors["cbpe"]
    assert expected.error is not None
    assert f"iw-cbpe, backtest accuracy error {expected.error:.3f} over 5 windows" in messages[-1]

    with db.sessions() as session:
        (status,) = model_statuses(session, "plankton")
    assert status.estimator == "iw-cbpe" and status.estimator_windows == 5
    assert status.estimator_error == pytest.approx(expected.error, abs=1e-9)
    assert "vs cbpe" in status.estimator_reason

    settings = Settings(database_url=db_url, device="cpu", scheduler=False)
    with TestClient(create_app(settings)) as client:
        body = client.get("/api/v1/models/plankton/status", headers=make_key(client, "read")).json()
        everyone = client.get("/api/v1/status", headers=make_key(client, "read")).json()
    assert body["estimator"] == "iw-cbpe" and body["estimator_windows"] == 5
    assert body["estimator_error"] == pytest.approx(expected.error, abs=1e-9)
    assert everyone["models"][0]["estimator"] == "iw-cbpe"

    config = tmp_path / "tidewatch.toml"
    config.write_text(f'database_url = "{db_url}"\ndevice = "cpu"\n')
    out = CliRunner().invoke(cli, ["status", "-c", str(config)])
    assert out.exit_code == 0, out.output
    assert (
        f"plankton: performance estimated by iw-cbpe (backtest accuracy error "
        f"{expected.error:.3f} over 5 windows)" in " ".join(out.output.split())  # unwrapped
    )


def test_too_little_history_keeps_cbpe_and_says_so(db_url: str) -> None:
    db = make_db(db_url, _spec())
    rng = np.random.default_rng(3)
    _minute(db, 0, 50, 0.0, rng)
    _minute(db, 1, 200, 0.0, rng)
    messages = _run(db, 2)
    assert "estimated on 50 earlier labels (cbpe: too little labelled history" in messages[-1]
    with db.sessions() as session:
        (status,) = model_statuses(session, "plankton")
    assert status.estimator == "cbpe" and status.estimator_error is None
    assert (
        status.estimator_windows == 0 and "too little labelled history" in status.estimator_reason
    )
