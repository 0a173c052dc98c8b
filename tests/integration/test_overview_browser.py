"""Signing in, the overview, a report and signing out, in headless Chromium against the real
service on loopback.

Run with ``TIDEWATCH_UPDATE_DOCS=1`` to refresh ``docs/images/overview.png`` from the
screenshot of the overview (three models: one drifted, one fine, one without data).
"""

from __future__ import annotations

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
from tests.conftest import SPEC
from tests.monitor.test_api_detection import rows

pytestmark = pytest.mark.integration

DOCS_IMAGE = Path(__file__).parents[2] / "docs" / "images" / "overview.png"
GRAFANA = "http://grafana.example:3000"


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[Any]:
    with chromium(window="1100,1000", profile=tmp_path / "chromium-profile") as browser:
        yield browser


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The service with three models, one per state; its URL and a read key."""
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/o.db",
        port=0,
        scheduler=False,
        device="cpu",
        grafana_url=GRAFANA,
    )
    with BackgroundServer(settings) as server:
        with server.app.state.tidewatch.sessions() as session:
            admin = keys.create_key(session, ["admin"])
            reader = keys.create_key(session, ["read"])
        with httpx.Client(
            base_url=f"{server.url}/api/v1",
            headers={"Authorization": f"Bearer {admin}"},
            timeout=60,
        ) as http:
            for name, shift, site_b in (
                ("plankton", 1.5, 0.9),
                ("coral", 0.0, 0.5),
                ("litter", None, 0),
            ):
                http.post("/models", json={**SPEC, "name": name}).raise_for_status()
                if shift is None:
                    continue  # registered, never fed: no data
                reference = {"records": rows(400, shift=0, seed=1)}
                http.post(f"/models/{name}/reference", json=reference).raise_for_status()
                window = rows(300, shift=shift, seed=4, site_b=site_b, start=400)
                http.post(f"/models/{name}/telemetry", json={"records": window}).raise_for_status()
                run = http.post(f"/models/{name}/detect").json()[0]
                assert run["status"] == ("drift" if shift else "ok"), run
        yield server.url, reader


def test_sign_in_overview_report_and_sign_out(driver: Any, service: tuple[str, str]) -> None:
    from PIL import Image
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, key = service
    driver.get(f"{url}/")
    assert driver.current_url == f"{url}/login?next=/"  # not signed in yet
    driver.find_element(By.ID, "key").send_keys(key)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(driver, 20).until(lambda d: d.current_url == f"{url}/")

    cookie = driver.get_cookie("tidewatch_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and "expiry" in cookie
    assert key not in cookie["value"]
    cards = {
        name: driver.find_element(By.ID, f"model-{name}").text
        for name in ("plankton", "coral", "litter")
    }
    assert "drift since" in cards["plankton"] and "report" in cards["plankton"]
    assert "ok since" in cards["coral"]
    assert "no data" in cards["litter"] and "no runs yet" in cards["litter"]
    grafana = driver.find_element(By.LINK_TEXT, "Grafana dashboard").get_attribute("href")
    assert grafana.startswith(f"{GRAFANA}/d/tidewatch-model?var-model=")

    png = driver.get_screenshot_as_png()
    colours = Image.open(io.BytesIO(png)).convert("RGB").getcolors(maxcolors=1 << 24)
    assert colours is not None and len(colours) > 50, "the screenshot looks blank"
    if os.environ.get("TIDEWATCH_UPDATE_DOCS"):
        DOCS_IMAGE.parent.mkdir(parents=True, exist_ok=True)
        DOCS_IMAGE.write_bytes(png)

    # the report opens with the cookie alone (as from a Grafana data link)
    card = driver.find_element(By.ID, "model-plankton")
    card.find_element(By.CLASS_NAME, "latest-report").click()
    WebDriverWait(driver, 90).until(lambda d: d.title.startswith("Tidewatch: plankton"))
    assert "/api/v1/models/plankton/report?run=" in driver.current_url
    body = driver.find_element(By.TAG_NAME, "body").text
    assert "brightness" in body
    # the report's own sections: since when, a plot per drifted feature, what to do
    for heading in ("What drifted, and how much", "Since when", "What to do"):
        assert heading in body, heading
    assert "drifting since" in driver.find_element(By.ID, "history-brightness").text
    plotted = {
        f.get_attribute("data-feature")
        for f in driver.find_elements(By.CSS_SELECTOR, "figure.plot")
    }
    assert plotted == {"brightness", "site"}  # the drifted ones
    assert driver.find_element(By.ID, "promote").text.startswith(
        "tidewatch reference promote plankton --from "
    )

    driver.get(f"{url}/")
    driver.find_element(By.ID, "sign-out").click()
    WebDriverWait(driver, 20).until(lambda d: d.current_url == f"{url}/login")
    assert driver.get_cookie("tidewatch_session") is None
    driver.get(f"{url}/")
    assert driver.current_url == f"{url}/login?next=/"
    # and the API no longer answers this browser
    driver.get(f"{url}/api/v1/models")
    assert driver.current_url.startswith(f"{url}/login?next=/api/v1/models")
