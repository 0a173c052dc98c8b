"""Notifications to render and send: a firing drift alert with two drifted numeric features,
one categorical feature without histograms and a performance trend, and its resolution."""

from __future__ import annotations

import dataclasses
import socket
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from alerts.notification import FeatureDrift, Histogram, Notification, TrendPoint

STARTED = datetime(2024, 5, 1, 6, 0, tzinfo=UTC)
DASHBOARD = "https://grafana.example.org/d/tidewatch-model?var-model=plankton&var-version=1"
REPORT = "https://tidewatch.example.org/models/plankton/versions/1/runs/981/report"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def histograms(shift: float, scale: float, seed: int) -> tuple[Histogram, Histogram]:
    """Reference (5000 rows) and current (400 rows) samples over shared edges."""
    rng = np.random.default_rng(seed)
    reference = rng.normal(0.5, 0.1, 5000)
    current = rng.normal(0.5 + shift, 0.1 * scale, 400)
    edges = np.linspace(0.0, 1.2, 25)
    return (
        Histogram(edges.tolist(), np.histogram(reference, edges)[0].astype(float).tolist()),
        Histogram(edges.tolist(), np.histogram(current, edges)[0].astype(float).tolist()),
    )


def make_firing() -> Notification:
    brightness = histograms(0.2, 1.0, 1)
    area = histograms(0.05, 1.8, 2)
    return Notification(
        alert_id=42,
        rule="drift-3-windows",
        kind="drift",
        model="plankton",
        version="1",
        severity="warning",
        state="firing",
        summary="3 of 5 features drifted in 3 consecutive windows",
        started_at=STARTED,
        run_id=981,
        drifted=[
            FeatureDrift("brightness", "ks", 0.412, 1.2e-9, *brightness),
            FeatureDrift("area", "wasserstein", 0.087, 3.4e-4, *area),
            FeatureDrift("site", "chi2", 18.5, 0.002),  # categorical: no histograms, no plot
        ],
        metric="accuracy",
        threshold=0.85,
        trend=[
            TrendPoint(STARTED - timedelta(days=6 - i), value)
            for i, value in enumerate([0.93, 0.92, 0.91, 0.9, 0.88, 0.86, 0.83])
        ],
        details={"windows": 3, "window_size": 300},
        dashboard_url=DASHBOARD,
        report_url=REPORT,
        recipients=["owner@example.org", "ml-team@example.org"],
    )


@pytest.fixture
def firing() -> Notification:
    return make_firing()


@pytest.fixture
def resolved(firing: Notification) -> Notification:
    return dataclasses.replace(
        firing,
        state="resolved",
        resolved_at=datetime.now(UTC) - timedelta(seconds=30),
        summary="no feature drifted in the last 3 windows",
        drifted=[],
        trend=[],
    )
