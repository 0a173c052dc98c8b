"""The HTML drift report of one run: Tidewatch's section, plots, Evidently, and its refusals."""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from monitor.alerting.report_links import report_url
from monitor.app import create_app
from monitor.db.tables import DetectionResult, DetectionRun, QualityResult
from monitor.reporting.report import (
    Columns,
    ReportInput,
    neutralize,
    render_report,
    sample,
)
from monitor.runs.windows import window_span
from monitor.settings import Settings
from monitor.spec.model import ModelSpec
from tests.conftest import SPEC, make_key
from tests.monitor.test_api_detection import DETECT, post, rows, upload_reference

REPORT = "/api/v1/models/plankton/report"
# always in Evidently's standalone page: the call that draws its widgets
EVIDENTLY_MARKER = "drawDashboard"
EVIL = "</script><script>alert(1)</script>"
# what an attacker who can post telemetry (or name a class) would try: close Evidently's script
# data and run their own, inside the frame and out of it
HOSTILE = "</script><script>window.parent.document.title='pwned';window.pwned=1</script>"
MARKUP = "x & <b>y</b> <!--"


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
    # a plot per drifted feature (brightness and site here), none of the others, and none for
    # the joint test over the numeric features ("*"), which has no column of its own
    flagged = sorted(r["feature"] for r in run["results"] if r["drift"])
    assert flagged == ["*", "brightness", "site"]
    drifted = flagged[1:]
    assert "numeric features together (joint test)" in page
    assert page.count("data:image/png;base64,") == len(drifted)
    assert sorted(re.findall(r'data-feature="([^"]+)"', page)) == drifted
    assert EVIDENTLY_MARKER in page
    assert 'sandbox="allow-scripts"' in page
    assert "emb: 3 dimensions" in page  # the vector feature is named as left out of Evidently
    assert EVIL not in page and EVIL not in srcdoc(page)  # nor inside Evidently's frame


def test_refusals(client: TestClient, admin: dict[str, str], model: dict[str, Any]) -> None:
    reader = make_key(client, "read")
    empty = client.post(DETECT, headers=admin).json()[0]  # no reference, no telemetry
    assert empty["window_start"] is None
    answer = client.get(REPORT, params={"run": empty["id"]}, headers=reader)
    assert answer.status_code == 422
    assert "has no window" in answer.json()["detail"][0]["msg"]

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
    # no results: each column drawn (brightness, prediction.value, site), said untested
    assert page.count("data:image/png;base64,") == 3
    assert page.count(">not tested</span>") == 3
    assert EVIDENTLY_MARKER in page and "prediction.value" in page
    gone = ReportInput(spec, transient_run(), [], [], [], None, table(200, 0.0), ["no longer"])
    page = render_report(gone)
    assert "no longer" in page and EVIDENTLY_MARKER not in page and "base64" not in page


def link(run_id: int, now: float, ttl: int = 3600, model: str = "plankton") -> str:
    """A report link as alert e-mails carry it, made ``now``."""
    return report_url("http://testserver", model, run_id, "link-secret", ttl, now=now)


def test_a_signed_link_opens_that_report_without_a_key(
    client: TestClient, admin: dict[str, str], model: dict[str, Any]
) -> None:
    run = drifted_run(client, admin)
    fresh = link(run["id"], time.time())
    assert "&expires=" in fresh and "&token=" in fresh
    opened = client.get(fresh)
    assert opened.status_code == 200 and "plankton" in opened.text

    def refused(url: str, **params: str) -> str:
        answer = client.get(url, params=params or None)  # {} would drop the URL's query
        assert answer.status_code == 401, answer.text
        assert answer.headers["www-authenticate"] == "Bearer"
        detail: str = answer.json()["detail"]
        return detail

    assert "invalid report link" in refused(fresh.replace("token=", "token=0"))
    assert "invalid report link" in refused(
        link(run["id"] + 1, time.time()).replace(f"run={run['id'] + 1}", f"run={run['id']}")
    )
    soon = str(int(time.time()) + 60)
    assert "invalid report link" in refused(
        REPORT, run=str(run["id"]), expires=soon, token="é" * 64
    )
    # a link from before links expired carries no expiry: refused, whatever its token
    legacy = fresh.split("&expires=")[0] + "&token=" + fresh.split("&token=")[1]
    assert "no expiry" in refused(legacy)
    assert "API key" in refused(REPORT, run=str(run["id"]))  # no link, no key


def test_a_link_expires_and_its_expiry_cannot_be_moved(
    client: TestClient, admin: dict[str, str], model: dict[str, Any]
) -> None:
    run = drifted_run(client, admin)
    made = time.time() - 7200  # a link made two hours ago, open for one
    stale = link(run["id"], made, ttl=3600)
    expires = int(made) + 3600
    detail = client.get(stale).json()["detail"]
    assert client.get(stale).status_code == 401
    assert "expired" in detail and datetime.fromtimestamp(expires, UTC).isoformat()[:16] in detail
    # pushing the expiry forward breaks the signature
    moved = stale.replace(f"expires={expires}", f"expires={expires + 86400}")
    answer = client.get(moved)
    assert answer.status_code == 401 and "invalid report link" in answer.json()["detail"]
    # a key still opens the report, whatever the link says
    assert client.get(stale, headers=make_key(client, "read")).status_code == 200
    # a link made now is open for report_link_ttl_seconds and no longer
    assert client.get(link(run["id"], time.time(), ttl=60)).status_code == 200
    assert client.get(link(run["id"], time.time() - 61, ttl=60)).status_code == 401


def test_link_lifetime_setting() -> None:
    assert Settings().report_link_ttl_seconds == 7 * 24 * 3600
    with pytest.raises(ValidationError, match="report_link_ttl_seconds"):
        Settings(report_link_ttl_seconds=0)


def srcdoc(page: str) -> str:
    """Evidently's document as the browser gets it: the iframe's attribute, unescaped."""
    found = re.search(r'srcdoc="([^"]*)"', page)
    assert found is not None, "no Evidently frame in the page"
    return html.unescape(found.group(1))


def test_hostile_values_reach_neither_page_nor_frame_as_markup() -> None:
    classes = ["copepod", HOSTILE]
    spec = ModelSpec.model_validate(
        {**SPEC, "output": {"task": "classification", "classes": classes}}
    )
    rng = np.random.default_rng(2)

    def table(n: int, shift: float) -> pa.Table:
        brightness = [str(v) for v in rng.normal(size=n) + shift]
        brightness[0] = HOSTILE  # a string where a number belongs
        return pa.table(
            {
                "f.brightness": brightness,
                "f.site": rng.choice(["a", "b", HOSTILE, MARKUP], n).tolist(),
                "p.label": rng.choice(classes, n).tolist(),  # the hostile class name
            }
        )

    run = transient_run()
    run.message = HOSTILE
    results = [
        DetectionResult(
            feature=f"prediction.area.{HOSTILE}",
            method="chi2",
            statistic=9.0,
            p_value=0.01,
            p_adjusted=0.02,
            drift=True,
            n_reference=200,
            n_current=100,
        )
    ]
    quality = [QualityResult(feature=HOSTILE, check="missing_rate", value=0.1, problem=True)]
    data = ReportInput(spec, run, results, quality, [], table(100, 1.0), table(200, 0.0))
    page = render_report(data)
    frame = srcdoc(page)
    assert EVIDENTLY_MARKER in frame and "Evidently could not" not in page
    for document in (page, frame):
        assert HOSTILE not in document
        assert "<script>window.parent" not in document
        assert "<b>y</b>" not in document and "<!--" not in document
    # Tidewatch's section shows the values as text (escaped by the template)
    assert html.escape(HOSTILE, quote=False) in page.replace("&#39;", "'")
    # Evidently's shows them legibly, with look-alikes for the characters that make markup
    # (inside its JSON data, where non-ASCII characters may be \u escapes)
    for value in (HOSTILE, MARKUP):
        shown = str(neutralize(value))
        assert shown in frame or json.dumps(shown)[1:-1] in frame, value
