"""The drift report in a real browser: served for real, opened in headless Chromium, offline.

The route needs a bearer key and Tidewatch accepts keys in the Authorization header only, so
the page is fetched over HTTP with the header and opened in the browser from a file. The page's
Content-Security-Policy lets it load nothing, so Evidently's widgets rendering at all shows that
the report needs no network; a request it tried would show as a policy violation in the log.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from monitor.api import report
from monitor.db import keys
from monitor.server import BackgroundServer
from monitor.settings import Settings
from tests.browser import chromium
from tests.conftest import SPEC
from tests.monitor.test_api_detection import rows

pytestmark = pytest.mark.integration


@pytest.fixture
def driver() -> Iterator[Any]:
    with chromium() as browser:
        yield browser


def served_report(tmp_path: Path, spec: dict[str, Any], window: list[dict[str, Any]]) -> Path:
    """The report of a drifted run of ``window``, fetched from the real service and saved."""
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/r.db", port=0, scheduler=False, device="cpu"
    )
    server = BackgroundServer(settings)
    if not any(getattr(r, "path", "") == "/api/v1/models/{name}/report" for r in server.app.routes):
        server.app.include_router(report.router)  # until monitor/app.py registers it
    with server:
        with server.app.state.tidewatch.sessions() as session:
            key = keys.create_key(session, ["admin"])
        with httpx.Client(
            base_url=f"{server.url}/api/v1",
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        ) as http:
            http.post("/models", json=spec).raise_for_status()
            http.post(
                "/models/plankton/reference", json={"records": rows(400, shift=0, seed=1)}
            ).raise_for_status()
            http.post("/models/plankton/telemetry", json={"records": window}).raise_for_status()
            run = http.post("/models/plankton/detect").json()[0]
            assert run["status"] == "drift"
            answer = http.get("/models/plankton/report", params={"run": run["id"]})
            answer.raise_for_status()
            assert "default-src 'none'" in answer.headers["content-security-policy"]
    path = tmp_path / "report.html"
    path.write_text(answer.text, encoding="utf-8")
    return path


@pytest.fixture
def page(tmp_path: Path) -> Path:
    """The report of a drifted run."""
    return served_report(tmp_path, SPEC, rows(300, shift=1.5, seed=4, site_b=0.9, start=300))


# Sets a variable and the title wherever it runs, and tries the parent's (cross-origin from
# the sandboxed frame, so that part throws).
PAYLOAD = (
    "</script><script>window.tidewatchPwned=1;document.title='pwned';"
    "parent.document.title='pwned'</script>"
)


@pytest.fixture
def hostile_page(tmp_path: Path) -> Path:
    """The report of a run whose category values and a class name are script payloads."""
    spec = {**SPEC, "output": {**SPEC["output"], "classes": ["copepod", PAYLOAD]}}
    window = rows(300, shift=1.5, seed=4, site_b=0.9, start=300)
    for i, record in enumerate(window[::5]):
        record["features"]["site"] = PAYLOAD
        if i % 2:
            record["prediction"] = {"label": PAYLOAD, "probabilities": [0.3, 0.7]}
    return served_report(tmp_path, spec, window)


def browser_problems(driver: Any) -> list[str]:
    """Errors and Content-Security-Policy reports in the browser's console."""
    return [
        entry["message"]
        for entry in driver.get_log("browser")
        if entry["level"] == "SEVERE" or "Content Security Policy" in entry["message"]
    ]


def test_report_renders_offline_in_chromium(driver: Any, page: Path) -> None:
    from PIL import Image
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(page.as_uri())
    text = driver.find_element(By.TAG_NAME, "body").text
    assert "plankton" in text and "brightness" in text
    assert driver.find_element(By.CSS_SELECTOR, "img[src^='data:image/png;base64,']")

    # Evidently's widgets are drawn by its inline JavaScript inside the sandboxed iframe
    frame = driver.find_element(By.ID, "evidently")
    driver.switch_to.frame(frame)
    WebDriverWait(driver, 20).until(
        lambda d: "Drifted Columns" in d.find_element(By.TAG_NAME, "body").text
    )
    inside = driver.find_element(By.TAG_NAME, "body").text
    assert "brightness" in inside and "site" in inside
    driver.switch_to.default_content()
    # the page sizes the iframe to Evidently's content (posted from inside it) once it is in
    # view: it sits below Tidewatch's own sections, and Chromium does not lay out a
    # cross-origin (sandboxed) frame that is out of view, as a reader scrolling down would
    driver.execute_script("arguments[0].scrollIntoView()", frame)
    WebDriverWait(driver, 10).until(
        expected_conditions.text_to_be_present_in_element_attribute(
            (By.ID, "evidently"), "style", "height"
        )
    )
    time.sleep(1)  # let the charts finish their first paint

    screenshot = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
    colours = screenshot.getcolors(maxcolors=1 << 24)
    assert colours is not None and len(colours) > 50

    problems = browser_problems(driver)
    assert not problems, problems


def test_hostile_values_run_no_script_and_evidently_still_renders(
    driver: Any, hostile_page: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    check = "return [window.tidewatchPwned === undefined, document.title]"
    driver.get(hostile_page.as_uri())
    frame = driver.find_element(By.ID, "evidently")
    driver.switch_to.frame(frame)
    WebDriverWait(driver, 20).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )
    # every inline script, an injected one included, has run once the document is loaded
    untouched, title = driver.execute_script(check)
    assert untouched and title != "pwned", "a telemetry value ran as script in the frame"
    WebDriverWait(driver, 20).until(
        lambda d: "Drifted Columns" in d.find_element(By.TAG_NAME, "body").text
    )
    inside = driver.find_element(By.TAG_NAME, "body").text
    assert "brightness" in inside and "site" in inside
    # the values are shown, with look-alikes for the characters of markup
    assert "\uff1c/script\uff1e\uff1cscript\uff1ewindow.tidewatchPwned" in driver.page_source
    driver.switch_to.default_content()
    untouched, title = driver.execute_script(check)
    assert untouched and title.startswith("Tidewatch: plankton"), "script ran in the page"
    problems = browser_problems(driver)
    assert not problems, problems
