"""``/docs`` and ``/redoc`` in headless Chromium with the network cut off but for loopback.

Chromium resolves no host name but 127.0.0.1, so an asset from a CDN could not load; the
browser's own network log then shows that the pages did not even try one (ReDoc's branding
logo, which its sidebar always asks for, is stopped by the page's Content-Security-Policy
before it leaves).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from monitor.server import BackgroundServer
from monitor.settings import Settings
from tests.browser import chromium

pytestmark = pytest.mark.integration

TELEMETRY = "/api/v1/models/{name}/telemetry"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/docs.db", port=0, scheduler=False, device="cpu"
    )
    with BackgroundServer(settings) as running:
        yield running.url


@pytest.fixture
def offline_browser(tmp_path: Path) -> Iterator[Any]:
    with chromium(
        profile=tmp_path / "chromium-profile",
        # every name fails to resolve: the page gets loopback and nothing else
        arguments=["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"],
        logs=("browser", "performance"),
    ) as browser:
        yield browser


def contacted_hosts(driver: Any) -> set[str]:
    """The host of every request the browser sent out (its DevTools network log), leaving out
    those its Content-Security-Policy stopped before they left."""
    urls, stopped = {}, set()
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        params = message["params"]
        if message["method"] == "Network.requestWillBeSent":
            urls[params["requestId"]] = params["request"]["url"]
        elif message["method"] == "Network.loadingFailed" and params.get("blockedReason") == "csp":
            stopped.add(params["requestId"])
    return {
        urlsplit(url).hostname or ""
        for request, url in urls.items()
        if url.startswith("http") and request not in stopped
    }


def page_text(driver: Any, waiting_for: str) -> str:
    """The page's text once ``waiting_for`` is in it (Swagger UI and ReDoc render in script)."""
    from selenium.webdriver.support.ui import WebDriverWait

    def text() -> str:
        return str(driver.execute_script("return document.body.textContent"))

    WebDriverWait(driver, 60).until(lambda _: waiting_for in text())
    return text()


def test_the_browser_really_is_offline(offline_browser: Any) -> None:
    """Without this the tests below would prove nothing: a CDN page does not load here."""
    offline_browser.get("data:text/html,<script src='https://cdn.jsdelivr.net/x.js'></script>")
    offline_browser.execute_script(
        "window.loaded = null; fetch('https://cdn.jsdelivr.net/').then("
        "() => window.loaded = true, () => window.loaded = false)"
    )
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(offline_browser, 30).until(
        lambda d: d.execute_script("return window.loaded") is not None
    )
    assert offline_browser.execute_script("return window.loaded") is False


def test_swagger_ui_renders_offline_and_lists_the_routes(offline_browser: Any, server: str) -> None:
    offline_browser.get(f"{server}/docs")  # no key: the docs are public, like /openapi.json
    text = page_text(offline_browser, TELEMETRY)
    assert "Tidewatch" in text
    for path in ("/api/v1/models", "/api/v1/models/{name}/labels", "/healthz"):
        assert path in text
    assert contacted_hosts(offline_browser) == {"127.0.0.1"}
    assert not [e for e in offline_browser.get_log("browser") if e["level"] == "SEVERE"]


def test_redoc_renders_offline(offline_browser: Any, server: str) -> None:
    offline_browser.get(f"{server}/redoc")
    text = page_text(offline_browser, TELEMETRY)
    assert "Tidewatch" in text
    assert contacted_hosts(offline_browser) == {"127.0.0.1"}


def test_docs_pages_load_nothing_from_elsewhere(server: str) -> None:
    """Every script, style sheet and icon the pages name is served by Tidewatch itself."""
    for page in ("/docs", "/redoc"):
        html = httpx.get(server + page).text
        assert "http://" not in html and "https://" not in html
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png"):
        answer = httpx.get(f"{server}/docs/assets/{asset}")
        assert answer.status_code == 200, asset
        assert len(answer.content) > 1000, asset
