"""The HTML drift report of one run: Tidewatch's section, plots, Evidently, and its refusals."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from monitor.alerting.report_links import token
from monitor.app import create_app
from monitor.db.tables import DetectionRun
from monitor.reporting.report import Columns, ReportInput, render_report, sample
from monitor.runs.windows import window_span
from monitor.settings import Settings
from monitor.spec.model import ModelSpec
from tests.conftest import SPEC, make_key
from tests.monitor.test_api_detection import DETECT, post, rows, upload_reference

REPORT = "/api/v1/models/plankton/report"
# always in Evidently's standalone page: the call that draws its widgets
EVIDENTLY_MARKER = "drawDashboard"
EVIL = "</script><script>alert(1)</script>"


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The app, with a secret for signed report links."""
    app = create_app(settings.model_copy(update={"report_link_secret": "link-secret"}))
    with TestClient(app) as test_client:
        yield test_client


def drifted_run(client: TestClient, admin: dict[str, str]) -> dict[str, Any]:
    upload_reference(client, admin)
    window = rows(300, shift=1.5, seed=4, site_b=0.9, start=300)
    for r in window[:3]:
        r["features"]["site"] = EVIL  # telemetry values must never reach the page as markup
    post(client, admin, window)
    run: dict[str, Any] = client.post(DETECT, headers=admin).json()[0]
    assert run["status"] == "drift"
    return run


def test_report_of_a_drifted_run(
    client: TestClient, admin: dict[str, str], model: dict[str, Any]
) -> None:
    run = drifted_run(client, admin)
    response = client.get(REPORT, params={"run": run["id"]}, headers=make_key(client, "read"))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert f"Drift report: plankton v1, run {run['id']}" in page
    assert "brightness" in page and "prediction.label" in page
    assert '<img src="data:image/png;base64,' in page
    assert page.count("data:image/png;base64,") == 1  # brightness: the one numeric feature
    assert EVIDENTLY_MARKER in page
    assert 'sandbox="allow-scripts"' in page
    assert "emb: 3 dimensions" in page  # the vector feature is named as left out of Evidently
    assert EVIL not in page


def test_refusals(client: TestClient, admin: dict[str, str], model: dict[str, Any]) -> None:
    reader = make_key(client, "read")
    empty = client.post(DETECT, headers=admin).json()[0]  # no reference, no telemetry
    assert empty["window_start"] is None
    answer = client.get(REPORT, params={"run": empty["id"]}, headers=reader)
    assert answer.status_code == 422
    assert "has no window" in answer.json()["detail"]

    other = {**SPEC, "name": "other"}
    assert client.post("/api/v1/models", json=other, headers=admin).status_code == 200
    foreign = client.post("/api/v1/models/other/detect", headers=admin).json()[0]["id"]
    answer = client.get(REPORT, params={"run": foreign}, headers=reader)
    assert answer.status_code == 404
    assert "is not a run of 'plankton'" in answer.json()["detail"]

    assert client.get(REPORT, params={"run": 10**9}, headers=reader).status_code == 404
    unknown = "/api/v1/models/nope/report"
    assert client.get(unknown, params={"run": empty["id"]}, headers=reader).status_code == 404
    assert client.get(REPORT, params={"run": empty["id"]}).status_code == 401
    ingest = make_key(client, "ingest:plankton")
    assert client.get(REPORT, params={"run": empty["id"]}, headers=ingest).status_code == 403
    assert client.get(REPORT, headers=reader).status_code == 422  # no run given


def test_window_span_of_time_and_record_windows() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    end = start + timedelta(minutes=5)
    tumbling = DetectionRun(window_start=start, window_end=end, window_key="t:" + start.isoformat())
    assert window_span(tumbling) == (start, end)
    counted = DetectionRun(window_start=start, window_end=end, window_key="c:3.0")
    assert window_span(counted) == (start, end + timedelta(microseconds=1))
    with pytest.raises(ValueError, match="no window"):
        window_span(DetectionRun(id=7, window_start=None, window_end=None))


def test_columns_and_sampling() -> None:
    columns = Columns.of(ModelSpec.model_validate(SPEC))
    assert columns.numerical == ["brightness"]
    assert columns.categorical == ["site", "prediction.label"]
    assert columns.vectors == ["emb"]
    regression = ModelSpec.model_validate({**SPEC, "output": {"task": "regression"}})
    assert Columns.of(regression).source["prediction.value"] == "p.value"
    table = pa.table({"i": list(range(100))})
    kept = sample(table, limit=10).column("i").to_pylist()
    assert len(kept) == 10 == len(set(kept)) and kept == sorted(kept)
    assert sample(table, limit=10) == sample(table, limit=10)  # deterministic
    assert sample(table, limit=100) is table


def transient_run() -> DetectionRun:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return DetectionRun(
        id=3,
        monitor="drift",
        status="ok",
        message="",
        started_at=start,
        window_start=start,
        window_end=start + timedelta(minutes=1),
        n_reference=200,
        n_current=100,
        drifted_share=0.0,
        correction="bh",
        alpha=0.05,
        trigger="manual",
    )


def test_regression_page_and_a_window_no_longer_stored() -> None:
    spec = ModelSpec.model_validate({**SPEC, "output": {"task": "regression"}})
    rng = np.random.default_rng(0)

    def table(n: int, shift: float) -> pa.Table:
        return pa.table(
            {
                "f.brightness": rng.normal(size=n) + shift,
                "f.site": rng.choice(["a", "b"], n),
                "p.value": rng.normal(size=n) * 2 + shift,
            }
        )

    data = ReportInput(spec, transient_run(), [], [], [], table(100, 1.0), table(200, 0.0))
    page = render_report(data)
    assert page.count("data:image/png;base64,") == 2  # brightness and prediction.value
    assert EVIDENTLY_MARKER in page and "prediction.value" in page
    gone = ReportInput(spec, transient_run(), [], [], [], None, table(200, 0.0), ["no longer"])
    page = render_report(gone)
    assert "no longer" in page and EVIDENTLY_MARKER not in page and "base64" not in page


def test_a_signed_link_opens_that_report_without_a_key(
    client: TestClient, admin: dict[str, str], model: dict[str, Any]
) -> None:
    run = drifted_run(client, admin)
    url = "/api/v1/models/plankton/report"
    good = token("link-secret", "plankton", run["id"])
    opened = client.get(url, params={"run": run["id"], "token": good})
    assert opened.status_code == 200 and "plankton" in opened.text
    assert client.get(url, params={"run": run["id"], "token": "0" * 64}).status_code == 401
    other = token("link-secret", "plankton", run["id"] + 1)
    assert client.get(url, params={"run": run["id"], "token": other}).status_code == 401
    assert client.get(url, params={"run": run["id"]}).status_code == 401
    assert client.get(url, params={"run": run["id"], "token": "é" * 64}).status_code == 401
