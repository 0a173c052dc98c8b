"""Signing in through an identity provider in headless Chromium: the real service and a real
OpenID provider (oidc-provider-mock) on loopback, on two different sites (127.0.0.1 and
localhost), so the flow's cookies cross sites as they do in production."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import itsdangerous
import pytest

from monitor.api import browser_session, oidc_rule
from monitor.db import keys
from monitor.observability.access_log import ACCESS_LOGGER
from monitor.server import BackgroundServer
from monitor.settings import Settings
from tests.browser import chromium
from tests.conftest import SPEC
from tests.monitor.test_api_detection import rows
from tests.oidc_provider import CLIENT_ID, CLIENT_SECRET, oidc_provider

pytestmark = pytest.mark.integration

ADA = {"sub": "ada-1", "email": "ada@example.org", "email_verified": True}
EVE = {"sub": "eve-2", "email": "eve@elsewhere.org", "email_verified": True}


class Lines(logging.Handler):
    """The access log's lines, as a handler of the service's operators would get them."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def access_log() -> Iterator[Lines]:
    logger = logging.getLogger(ACCESS_LOGGER)
    handler, level = Lines(), logger.level
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture
def service(tmp_path: Path, access_log: Lines) -> Iterator[tuple[str, Settings]]:
    """Tidewatch with OIDC (e-mails of example.org may read) and one drifted model."""
    with oidc_provider([ADA, EVE], tmp_path / "provider.log") as issuer:
        settings = Settings(
            database_url=f"sqlite:///{tmp_path}/o.db",
            port=0,
            scheduler=False,
            device="cpu",
            session_secret="one secret for this test",
            oidc_issuer=issuer,
            oidc_client_id=CLIENT_ID,
            oidc_client_secret=CLIENT_SECRET,
            oidc_provider_name="Ocean ID",
            oidc_allowed_email_domains=["example.org"],
        )
        with BackgroundServer(settings) as server:
            logging.getLogger(ACCESS_LOGGER).setLevel(logging.INFO)  # serving set it to WARNING
            with server.app.state.tidewatch.sessions() as session:
                admin = keys.create_key(session, ["admin"])
            with httpx.Client(
                base_url=f"{server.url}/api/v1",
                headers={"Authorization": f"Bearer {admin}"},
                timeout=60,
            ) as http:
                http.post("/models", json=SPEC).raise_for_status()
                reference = {"records": rows(400, shift=0, seed=1)}
                http.post("/models/plankton/reference", json=reference).raise_for_status()
                window = rows(300, shift=1.5, seed=4, site_b=0.9, start=400)
                http.post("/models/plankton/telemetry", json={"records": window}).raise_for_status()
                assert http.post("/models/plankton/detect").json()[0]["status"] == "drift"
            yield server.url, server.settings


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[Any]:
    with chromium(window="1100,1000", profile=tmp_path / "chromium-profile") as browser:
        yield browser


def sign_in_at_the_provider(driver: Any, url: str, sub: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{url}/")
    assert driver.current_url == f"{url}/login?next=/"
    link = driver.find_element(By.ID, "sign-in-oidc")
    assert link.text == "Sign in with Ocean ID"
    link.click()
    WebDriverWait(driver, 20).until(lambda d: "/oauth2/authorize" in d.current_url)
    driver.find_element(By.CSS_SELECTOR, f"button[name=sub][value='{sub}']").click()
    # back at Tidewatch: sent on (signed in), or the callback's page saying why not
    WebDriverWait(driver, 30).until(
        lambda d: (
            d.current_url.startswith(url)
            and ("/login/oidc/callback" not in d.current_url or d.find_elements(By.ID, "problem"))
        )
    )


def test_sign_in_read_and_sign_out(
    driver: Any, service: tuple[str, Settings], access_log: Lines
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, _ = service
    sign_in_at_the_provider(driver, url, ADA["sub"])
    assert driver.current_url == f"{url}/"  # back where the sign-in began: the overview
    cookie = driver.get_cookie("tidewatch_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and "expiry" in cookie
    assert driver.get_cookie("tidewatch_oidc_flow") is None  # the flow's cookie is gone
    card = driver.find_element(By.ID, "model-plankton")
    assert "drift since" in card.text

    # a run's JSON, then the report, with the cookie alone
    card.find_element(By.CSS_SELECTOR, "tbody a").click()
    WebDriverWait(driver, 20).until(lambda d: "/api/v1/models/plankton/runs/" in d.current_url)
    assert '"status":"drift"' in driver.find_element(By.TAG_NAME, "body").text.replace(" ", "")
    driver.get(f"{url}/overview")
    driver.find_element(By.CLASS_NAME, "latest-report").click()
    WebDriverWait(driver, 90).until(lambda d: d.title.startswith("Tidewatch: plankton"))
    assert "/api/v1/models/plankton/report?run=" in driver.current_url

    driver.get(f"{url}/")
    driver.find_element(By.ID, "sign-out").click()
    WebDriverWait(driver, 20).until(lambda d: d.current_url == f"{url}/login")
    assert driver.get_cookie("tidewatch_session") is None
    driver.get(f"{url}/api/v1/models")
    assert driver.current_url.startswith(f"{url}/login?next=/api/v1/models")

    # the provider's code and state reached the access log redacted, and only so
    callbacks = [line for line in access_log.lines if "/login/oidc/callback" in line]
    assert callbacks and all("code=REDACTED&state=REDACTED" in line for line in callbacks)
    assert not [line for line in access_log.lines if re.search(r"(code|state)=(?!REDACTED)", line)]


def test_a_person_not_allowed_is_told_why(driver: Any, service: tuple[str, Settings]) -> None:
    from selenium.webdriver.common.by import By

    url, _ = service
    sign_in_at_the_provider(driver, url, EVE["sub"])
    assert "/login/oidc/callback" in driver.current_url  # the page is the callback's answer
    said = driver.find_element(By.ID, "problem").text
    assert "You signed in at Ocean ID as eve@elsewhere.org, but may not read here" in said
    assert "the e-mail domain elsewhere.org is not one that may read here" in said
    assert driver.get_cookie("tidewatch_session") is None
    driver.get(f"{url}/")
    assert driver.current_url == f"{url}/login?next=/"


def test_an_altered_or_expired_cookie_is_refused(
    driver: Any, service: tuple[str, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, settings = service
    sign_in_at_the_provider(driver, url, ADA["sub"])
    assert driver.current_url == f"{url}/"
    value = driver.get_cookie("tidewatch_session")["value"]
    secret, rule = settings.session_secret or "", oidc_rule.fingerprint(settings)
    with monkeypatch.context() as patch:
        thirteen_hours_ago = int(time.time()) - 13 * 3600
        patch.setattr(itsdangerous.TimestampSigner, "get_timestamp", lambda _: thirteen_hours_ago)
        expired = browser_session.sign_oidc(secret, ADA["sub"], ADA["email"], rule)
    # another subject written into the signed value: the signature no longer matches
    payload, _, signature = value.partition(".")
    altered = f"{payload[:-2]}{'AB' if not payload.endswith('AB') else 'CD'}.{signature}"
    for bad in (expired, altered):
        driver.delete_cookie("tidewatch_session")
        driver.add_cookie({"name": "tidewatch_session", "value": bad, "path": "/"})
        driver.get(f"{url}/api/v1/models")
        assert driver.current_url.startswith(f"{url}/login?next=/api/v1/models"), bad
    driver.delete_cookie("tidewatch_session")
    driver.add_cookie({"name": "tidewatch_session", "value": value, "path": "/"})
    driver.get(f"{url}/api/v1/models")
    assert driver.current_url == f"{url}/api/v1/models"  # the genuine one still reads
