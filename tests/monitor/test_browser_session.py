"""Signing in with a key in the browser: the cookie, what it opens, and what it never opens."""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import itsdangerous
import pytest
from fastapi.testclient import TestClient

from monitor.api import browser_session
from monitor.app import create_app
from monitor.db import keys
from monitor.db.tables import ApiKey
from monitor.settings import Settings
from tests.conftest import SPEC

HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}  # what a browser sends


def open_client(settings: Settings, base_url: str) -> TestClient:
    return TestClient(create_app(settings), base_url=base_url, follow_redirects=False)


@pytest.fixture
def browser(settings: Settings) -> Iterator[TestClient]:
    """The service as a browser on this laptop reaches it: plain HTTP to loopback."""
    with open_client(settings, "http://127.0.0.1:8000") as client:
        yield client


def new_key(client: TestClient, *scopes: str) -> str:
    with client.app.state.tidewatch.sessions() as session:  # type: ignore[attr-defined]
        return keys.create_key(session, list(scopes))


@pytest.fixture
def admin_key(browser: TestClient) -> str:
    key = new_key(browser, "admin")
    answer = browser.post("/api/v1/models", json=SPEC, headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200, answer.text
    return key


def sign_in(client: TestClient, key: str, next_page: str = "/") -> Any:
    return client.post("/login", data={"key": key, "next": next_page})


def test_the_form_is_a_page_with_a_policy(browser: TestClient) -> None:
    answer = browser.get("/login", params={"next": "/api/v1/models"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in answer.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert 'method="post"' in answer.text and 'value="/api/v1/models"' in answer.text


def test_a_wrong_key_answers_a_401_page_and_sets_no_cookie(browser: TestClient) -> None:
    answer = sign_in(browser, "tw_not-a-key-at-all")
    assert answer.status_code == 401
    assert answer.headers["content-type"].startswith("text/html")
    assert "invalid or revoked API key" in answer.text
    assert "tw_not-a-key-at-all" not in answer.text  # never shown back
    assert "set-cookie" not in answer.headers


def test_a_key_that_cannot_read_cannot_sign_in(browser: TestClient, admin_key: str) -> None:
    answer = sign_in(browser, new_key(browser, "ingest:plankton"))
    assert answer.status_code == 403
    assert "lacks the 'read' scope" in html.unescape(answer.text)
    assert "set-cookie" not in answer.headers


def test_cookie_flags_over_https(settings: Settings) -> None:
    with open_client(settings, "https://tidewatch.example") as client:
        key = new_key(client, "read")
        answer = sign_in(client, key, "/api/v1/models?x=1")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/api/v1/models?x=1"
    cookie = answer.headers["set-cookie"]
    flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"secure", "httponly", "samesite", "max-age", "path"} <= flags
    assert "SameSite=lax" in cookie and "Max-Age=43200" in cookie and "Path=/" in cookie
    assert key not in cookie and key.removeprefix("tw_")[:8] not in cookie


def test_plain_http_is_for_loopback_only(settings: Settings, browser: TestClient) -> None:
    key = new_key(browser, "read")
    answer = sign_in(browser, key)
    assert answer.status_code == 303
    assert "secure" not in answer.headers["set-cookie"].lower()  # a browser keeps it on http
    with open_client(settings, "http://tidewatch.example") as remote:
        refused = sign_in(remote, key)
    assert refused.status_code == 400 and "sign in over HTTPS" in refused.text
    assert "set-cookie" not in refused.headers


def test_the_session_lasts_session_hours(settings: Settings) -> None:
    settings = settings.model_copy(update={"session_hours": 0.5})
    with open_client(settings, "http://localhost") as client:
        answer = sign_in(client, new_key(client, "read"))
    assert "Max-Age=1800" in answer.headers["set-cookie"]


def test_the_cookie_opens_get_read_routes(browser: TestClient, admin_key: str) -> None:
    assert browser.get("/api/v1/models").status_code == 401  # not yet signed in
    assert sign_in(browser, admin_key).status_code == 303
    for path in ("/api/v1/models", "/api/v1/status", "/api/v1/models/plankton/results"):
        answer = browser.get(path)
        assert answer.status_code == 200, (path, answer.text)
    page = browser.get("/")
    assert page.status_code == 200
    assert "plankton" in page.text and "no data" in page.text
    assert page.headers["cache-control"] == "no-store"


def test_the_cookie_never_opens_a_post_route(browser: TestClient, admin_key: str) -> None:
    """Even an admin key's session reads only: a cross-site form could send the cookie."""
    assert sign_in(browser, admin_key).status_code == 303
    other = {**SPEC, "name": "coral"}
    for path, body in (("/api/v1/models", other), ("/api/v1/models/plankton/detect", None)):
        answer = browser.post(path, json=body)
        assert answer.status_code == 401, (path, answer.text)
        assert "missing API key" in answer.json()["detail"]
    assert browser.get("/api/v1/models/coral").status_code == 404  # nothing was created


def test_sign_out_clears_the_cookie(browser: TestClient, admin_key: str) -> None:
    assert sign_in(browser, admin_key).status_code == 303
    answer = browser.post("/logout")
    assert answer.status_code == 303 and answer.headers["location"] == "/login"
    assert 'tidewatch_session=""' in answer.headers["set-cookie"]
    assert "Max-Age=0" in answer.headers["set-cookie"]
    assert browser.get("/api/v1/models").status_code == 401
    overview = browser.get("/")
    assert overview.status_code == 303 and overview.headers["location"] == "/login?next=/"


def test_revoking_the_key_ends_its_sessions(browser: TestClient, admin_key: str) -> None:
    reader = new_key(browser, "read")
    assert sign_in(browser, reader).status_code == 303
    assert browser.get("/api/v1/models").status_code == 200
    with browser.app.state.tidewatch.sessions() as session:  # type: ignore[attr-defined]
        assert keys.revoke(session, reader[:10]) == 1
    answer = browser.get("/api/v1/models")
    assert answer.status_code == 401 and "session has ended" in answer.json()["detail"]
    assert browser.get("/").status_code == 303


def test_an_expired_key_ends_its_sessions(browser: TestClient, admin_key: str) -> None:
    reader = new_key(browser, "read")
    assert sign_in(browser, reader).status_code == 303
    with browser.app.state.tidewatch.sessions() as session:  # type: ignore[attr-defined]
        row = keys.lookup(session, reader)
        assert row is not None
        row.expires_at = datetime.now(UTC) - timedelta(minutes=1)
        session.commit()
    answer = browser.get("/api/v1/models")
    assert answer.status_code == 401 and "expired" in answer.json()["detail"]


def test_an_old_or_altered_cookie_opens_nothing(
    browser: TestClient, admin_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = browser.app.state.tidewatch  # type: ignore[attr-defined]
    with state.sessions() as session:
        row = keys.lookup(session, admin_key)
        assert isinstance(row, ApiKey)
        key_id, key_hash = row.id, row.key_hash
    thirteen_hours_ago = int(time.time()) - 13 * 3600
    with monkeypatch.context() as patch:
        patch.setattr(
            itsdangerous.TimestampSigner, "get_timestamp", lambda self: thirteen_hours_ago
        )
        old = browser_session.sign(state.session_secret, key_id, key_hash)
    fresh = browser_session.sign(state.session_secret, key_id, key_hash)
    foreign = browser_session.sign("another secret", key_id, key_hash)
    other_key = browser_session.sign(state.session_secret, key_id, "0" * 64)
    for value, status in ((fresh, 200), (old, 401), (foreign, 401), (other_key, 401)):
        browser.cookies.set(browser_session.COOKIE, value)
        assert browser.get("/api/v1/models").status_code == status


def test_a_browser_not_signed_in_is_sent_to_the_form_and_back(
    browser: TestClient, admin_key: str
) -> None:
    path = "/api/v1/models/plankton/results?limit=5"
    answer = browser.get(path, headers=HTML)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=/api/v1/models/plankton/results%3Flimit%3D5"
    assert browser.get(path).status_code == 401  # a script still gets the API's answer
    form = browser.get(answer.headers["location"])
    assert 'value="/api/v1/models/plankton/results?limit=5"' in form.text
    back = sign_in(browser, admin_key, "/api/v1/models/plankton/results?limit=5")
    assert back.headers["location"] == path


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil.example"])
def test_sign_in_goes_nowhere_but_this_site(
    browser: TestClient, admin_key: str, target: str
) -> None:
    assert sign_in(browser, admin_key, target).headers["location"] == "/"


def test_forms_post_from_our_own_pages_only(browser: TestClient, admin_key: str) -> None:
    foreign = {"Origin": "https://evil.example"}
    answer = browser.post("/login", data={"key": admin_key}, headers=foreign)
    assert answer.status_code == 403 and "set-cookie" not in answer.headers
    own = {"Origin": "http://127.0.0.1:8000"}
    assert browser.post("/login", data={"key": admin_key}, headers=own).status_code == 303
    assert browser.post("/logout", headers=foreign).status_code == 403


def test_the_key_is_logged_nowhere(
    browser: TestClient, admin_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assert sign_in(browser, admin_key).status_code == 303
    assert sign_in(browser, admin_key + "x").status_code == 401
    assert browser.get("/").status_code == 200
    assert admin_key not in caplog.text and admin_key[3:] not in caplog.text


def test_overview_is_also_at_slash_overview(browser: TestClient, admin_key: str) -> None:
    answer = browser.get("/overview", headers=HTML)
    assert answer.status_code == 303 and answer.headers["location"] == "/login?next=/overview"
    assert sign_in(browser, admin_key, "/overview").headers["location"] == "/overview"
    page = browser.get("/overview")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert 'id="model-plankton"' in page.text and page.text == browser.get("/").text
