"""The report of a mixed drift in headless Chromium, as a person gets to it: sign in, open the
overview, follow the model's report link, read the new sections, fetch the label candidates
with the session, sign out. Against the real service on loopback (tests/monitor/report_scenario.py
builds the drift: numeric, categorical, embedding and class mix).

Run with ``TIDEWATCH_UPDATE_DOCS=1`` to refresh ``docs/images/report.png`` (the README's
screenshot: the top of the report down to its plots).
"""

from __future__ import annotations

import base64
import csv
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from monitor.db import keys
from monitor.server import BackgroundServer
from monitor.settings import Settings
from tests.browser import chromium
from tests.monitor import report_scenario as scenario

pytestmark = pytest.mark.integration

DOCS_IMAGE = Path(__file__).parents[2] / "docs" / "images" / "report.png"
WIDTH = 1200


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[Any]:
    with chromium(window=f"{WIDTH},1400", profile=tmp_path / "chromium-profile") as browser:
        yield browser


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[str, str, list[dict[str, Any]]]]:
    """The service holding the scenario's runs; its URL, a read key and the runs."""
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/p.db", port=0, scheduler=False, device="cpu"
    )
    with BackgroundServer(settings) as server:
        with server.app.state.tidewatch.sessions() as session:
            admin = keys.create_key(session, ["admin"])
            reader = keys.create_key(session, ["read"])
        with httpx.Client(base_url=server.url, timeout=120) as http:
            runs = scenario.build(http, {"Authorization": f"Bearer {admin}"})
        yield server.url, reader, runs


def screenshot_to(driver: Any, bottom_id: str) -> bytes:
    """The page from its top down to the element ``bottom_id`` (beyond the window's height)."""
    from selenium.webdriver.common.by import By

    bottom = driver.find_element(By.ID, bottom_id).rect["y"]
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": WIDTH, "height": bottom - 8, "scale": 1},
        },
    )
    return base64.b64decode(shot["data"])


def test_report_of_a_mixed_drift_from_the_overview(
    driver: Any, service: tuple[str, str, list[dict[str, Any]]]
) -> None:
    from PIL import Image
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, key, runs = service
    driver.get(f"{url}/")
    driver.find_element(By.ID, "key").send_keys(key)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(driver, 20).until(lambda d: d.current_url == f"{url}/")

    card = driver.find_element(By.ID, f"model-{scenario.NAME}")
    card.find_element(By.CLASS_NAME, "latest-report").click()
    WebDriverWait(driver, 120).until(lambda d: d.title.startswith("Tidewatch: plankton"))
    last = runs[-1]
    assert driver.current_url.endswith(f"/report?run={last['id']}")

    # a plot per drifted feature, of its kind, each drawn (an image the browser decoded)
    figures = driver.find_elements(By.CSS_SELECTOR, "figure.plot")
    kinds = {f.get_attribute("data-feature"): f.get_attribute("data-kind") for f in figures}
    assert kinds == {
        "brightness": "distribution",
        "camera": "category shares",
        "emb": "projection",
        "prediction.label": "class mix",
    }
    for figure in figures:
        image = figure.find_element(By.TAG_NAME, "img")
        assert driver.execute_script("return arguments[0].naturalWidth", image) > 200
    # the history strip, with the episode's start
    strip = driver.find_element(By.ID, "history-brightness")
    assert f"(run {runs[1]['id']}), 2 windows" in strip.text
    assert len(strip.find_elements(By.CSS_SELECTOR, "td.start")) == 1
    # realized beside estimated, and what to do
    assert (
        "60 labelled"
        in driver.find_element(By.ID, "performance")
        .find_element(By.XPATH, "following-sibling::table")
        .text
    )
    assert driver.find_element(By.ID, "why-performance").is_displayed()
    promote = driver.find_element(By.ID, "promote").text
    assert promote.startswith(f"tidewatch reference promote {scenario.NAME} --from ")
    assert "tidewatch alerts ack" in driver.find_element(By.ID, "alerts").text
    rows = driver.find_elements(By.CSS_SELECTOR, "#label-candidates tr")
    assert len(rows) == 11  # a header and the first ten

    # the page's link to the candidates opens with the browser's session alone
    href = driver.find_element(By.ID, "label-candidates-csv").get_attribute("href")
    assert href.startswith(f"{url}/api/v1/models/{scenario.NAME}/runs/{last['id']}/")
    cookie = driver.get_cookie("tidewatch_session")
    answer = httpx.get(href, cookies={"tidewatch_session": cookie["value"]})
    assert answer.status_code == 200, answer.text
    listed = [r["record_id"] for r in csv.DictReader(io.StringIO(answer.text))]
    first = driver.find_element(By.CSS_SELECTOR, "#label-candidates tr:nth-child(2) code").text
    assert listed[0] == first
    assert httpx.get(href).status_code == 401  # and nothing opens it without

    png = screenshot_to(driver, "performance")
    image = Image.open(io.BytesIO(png)).convert("RGB")
    assert image.width == WIDTH and image.height > 1000
    colours = image.getcolors(maxcolors=1 << 24)
    assert colours is not None and len(colours) > 200, "the screenshot looks blank"
    if os.environ.get("TIDEWATCH_UPDATE_DOCS"):
        DOCS_IMAGE.parent.mkdir(parents=True, exist_ok=True)
        # 256 colours: a third of the bytes, and the page is flat colours and text anyway
        flat = image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        flat.save(DOCS_IMAGE, optimize=True)

    problems = [
        entry["message"]
        for entry in driver.get_log("browser")
        if entry["level"] == "SEVERE" or "Content Security Policy" in entry["message"]
    ]
    assert not problems, problems

    driver.get(f"{url}/")
    driver.find_element(By.ID, "sign-out").click()
    WebDriverWait(driver, 20).until(lambda d: d.current_url == f"{url}/login")
    driver.get(href.split("?")[0])
    assert driver.current_url.startswith(f"{url}/login?next=")  # signed out: back to sign-in
