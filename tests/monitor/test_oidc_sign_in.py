"""Signing in through an identity provider (OIDC): a real provider on loopback
(oidc-provider-mock, tests/oidc_provider.py) and Tidewatch's Authlib client, end to end
without a browser; tests/integration/test_oidc_browser.py does it in Chromium."""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import itsdangerous
import pytest
from fastapi.testclient import TestClient

from monitor.api import browser_session, oidc_rule
from monitor.app import create_app
from monitor.db import keys
from monitor.server import free_port
from monitor.settings import Settings
from tests.conftest import SPEC
from tests.oidc_provider import CLIENT_ID, CLIENT_SECRET, oidc_provider

pytestmark = pytest.mark.integration  # a real OpenID provider, in its own process

BASE = "http://127.0.0.1:8000"
ADA = {"sub": "ada-1", "email": "ada@example.org", "email_verified": True, "groups": ["plankton"]}
EVE = {"sub": "eve-2", "email": "eve@elsewhere.org", "email_verified": True, "groups": ["x"]}
BOB = {"sub": "bob-3", "email": "bob@example.org"}  # the provider does not say it is verified


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("oidc") / "provider.log"
    with oidc_provider([ADA, EVE, BOB], log) as url:
        yield url


def oidc_settings(tmp_path: Path, issuer: str, **rule: Any) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'oidc.db'}",
        scheduler=False,
        device="cpu",
        session_secret="the same for every app of a test",
        oidc_issuer=issuer,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=CLIENT_SECRET,
        **({"oidc_allowed_email_domains": ["example.org"]} | rule),
    )


def open_client(settings: Settings) -> TestClient:
    return TestClient(create_app(settings), base_url=BASE, follow_redirects=False)


@pytest.fixture
def browser(tmp_path: Path, issuer: str) -> Iterator[TestClient]:
    with open_client(oidc_settings(tmp_path, issuer)) as client:
        yield client


def to_provider(client: TestClient, next_page: str = "/") -> str:
    """Start the sign-in; the provider's authorization URL it redirects to."""
    answer = client.get("/login/oidc", params={"next": next_page})
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


def at_provider(authorize: str, sub: str, action: str | None = None) -> str:
    """The person at the provider's page picks ``sub`` (or denies); where it sends them back."""
    form = {"sub": sub} if action is None else {"action": action}
    answer = httpx.post(authorize, data=form, timeout=10)
    assert answer.status_code == 302, answer.text
    back: str = answer.headers["location"]
    return back


def back_at(client: TestClient, back: str) -> Any:
    parts = urlsplit(back)
    assert f"{parts.scheme}://{parts.netloc}" == BASE
    return client.get(f"{parts.path}?{parts.query}")


def sign_in(client: TestClient, sub: str, next_page: str = "/") -> Any:
    return back_at(client, at_provider(to_provider(client, next_page), sub))


def test_the_form_offers_the_provider(browser: TestClient, issuer: str) -> None:
    form = browser.get("/login", params={"next": "/api/v1/models"})
    assert form.status_code == 200
    assert 'href="/login/oidc?next=/api/v1/models"' in form.text
    assert f"Sign in with {urlsplit(issuer).hostname}" in form.text
    assert 'name="key"' in form.text  # beside the key form, not instead


def test_no_offer_and_no_route_without_oidc(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'k.db'}", scheduler=False)
    with open_client(settings) as client:
        assert "Sign in with" not in client.get("/login").text
        assert client.get("/login/oidc").status_code == 404
        assert client.get("/login/oidc/callback?code=x&state=y").status_code == 404


def test_the_redirect_has_state_nonce_and_pkce(browser: TestClient, issuer: str) -> None:
    answer = browser.get("/login/oidc", params={"next": "/api/v1/models"})
    assert answer.status_code == 302
    location = urlsplit(answer.headers["location"])
    assert f"{location.scheme}://{location.netloc}" == issuer
    query = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert query["client_id"] == CLIENT_ID and query["response_type"] == "code"
    assert query["redirect_uri"] == f"{BASE}/login/oidc/callback"
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) >= 43
    assert len(query["state"]) >= 20 and len(query["nonce"]) >= 20
    assert set(query["scope"].split()) == {"openid", "email", "profile"}
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("tidewatch_oidc_flow=")
    assert "HttpOnly" in cookie and "Path=/login/oidc" in cookie and "Max-Age=600" in cookie
    assert "SameSite=lax" in cookie
    assert CLIENT_SECRET not in answer.headers["location"] and CLIENT_SECRET not in cookie


def test_public_url_names_the_redirect_uri(tmp_path: Path, issuer: str) -> None:
    settings = oidc_settings(tmp_path, issuer, public_url="https://tidewatch.example/")
    with open_client(settings) as client:
        query = parse_qs(urlsplit(to_provider(client)).query)
    assert query["redirect_uri"] == ["https://tidewatch.example/login/oidc/callback"]


def test_a_person_allowed_reads_and_only_reads(
    browser: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with browser.app.state.tidewatch.sessions() as session:  # type: ignore[attr-defined]
        admin = keys.create_key(session, ["admin"])
    assert browser.post(
        "/api/v1/models", json=SPEC, headers={"Authorization": f"Bearer {admin}"}
    ).is_success
    caplog.set_level(logging.DEBUG)
    back = at_provider(to_provider(browser, "/api/v1/models"), ADA["sub"])
    code, state = (parse_qs(urlsplit(back).query)[k][0] for k in ("code", "state"))
    answer = back_at(browser, back)
    assert answer.status_code == 303 and answer.headers["location"] == "/api/v1/models"
    cookies = answer.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("tidewatch_session="))
    assert "HttpOnly" in session and "SameSite=lax" in session and "Max-Age=43200" in session
    assert any(c.startswith('tidewatch_oidc_flow=""') for c in cookies)  # the flow is over

    assert [m["name"] for m in browser.get("/api/v1/models").json()] == ["plankton"]
    overview = browser.get("/")
    assert overview.status_code == 200 and 'id="model-plankton"' in overview.text
    # reads only: no POST, even from the same browser
    refused = browser.post("/api/v1/models", json={**SPEC, "name": "coral"})
    assert refused.status_code == 401
    assert browser.get("/api/v1/models/coral").status_code == 404

    # what the service logged (the test's own requests, as the browser, name them of course)
    logged = "\n".join(r.getMessage() for r in caplog.records if not from_the_test(r))
    assert "OIDC sign-in of ada-1 (ada@example.org)" in logged
    assert "/oauth2/token" in logged  # Authlib's token request, which sends the code in its body
    assert code not in logged and state not in logged

    # the code was spent: sent again (a replay), it opens nothing
    browser.cookies.clear()
    again = back_at(browser, back)
    assert again.status_code == 400 and "start it again" in again.text
    assert "tidewatch_session=" not in again.headers.get("set-cookie", "")


def from_the_test(record: logging.LogRecord) -> bool:
    """The test's own requests (it plays the browser); httpcore's traces of any connection
    (Tidewatch logs libraries at WARNING and above only: observability.logs)."""
    message = record.getMessage()
    if record.name.startswith("httpcore"):
        return True
    return record.name == "httpx" and (f"{BASE}/" in message or "/oauth2/authorize?" in message)


def test_sign_out_ends_an_oidc_session(browser: TestClient) -> None:
    assert sign_in(browser, ADA["sub"]).status_code == 303
    assert browser.get("/api/v1/models").status_code == 200
    out = browser.post("/logout")
    assert out.status_code == 303 and 'tidewatch_session=""' in out.headers["set-cookie"]
    assert browser.get("/api/v1/models").status_code == 401
    assert browser.get("/").headers["location"] == "/login?next=/"


@pytest.mark.parametrize(
    ("user", "rule", "reason"),
    [
        (EVE, {}, "the e-mail domain elsewhere.org is not one that may read here"),
        (BOB, {}, "did not say that the e-mail bob@example.org is verified"),
        (EVE, {"oidc_allowed_groups": ["plankton"]}, "the e-mail domain elsewhere.org"),
        (
            EVE,
            {"oidc_allowed_email_domains": [], "oidc_allowed_groups": ["plankton"]},
            "you are in none of the groups that may read here",
        ),
        (
            ADA,
            {"oidc_allowed_email_domains": []},
            "no one may read here through the identity provider yet: an administrator must set",
        ),
    ],
    ids=["other-domain", "unverified", "domain-and-group", "no-group", "no-rule"],
)
def test_a_person_not_allowed_gets_a_page_saying_why(
    tmp_path: Path, issuer: str, user: dict[str, Any], rule: dict[str, Any], reason: str
) -> None:
    with open_client(oidc_settings(tmp_path, issuer, **rule)) as client:
        answer = sign_in(client, user["sub"], "/api/v1/models")
        assert answer.status_code == 403
        assert answer.headers["content-type"].startswith("text/html")
        text = html.unescape(answer.text)
        assert f"You signed in at localhost as {user['email']}, but may not read here" in text
        assert reason in text and "Ask an administrator" in text
        assert "tidewatch_session=" not in answer.headers.get("set-cookie", "")
        assert client.get("/api/v1/models").status_code == 401


def test_groups_alone_admit(tmp_path: Path, issuer: str) -> None:
    rule = {"oidc_allowed_email_domains": [], "oidc_allowed_groups": ["plankton"]}
    with open_client(oidc_settings(tmp_path, issuer, **rule)) as client:
        assert sign_in(client, ADA["sub"]).status_code == 303
        assert client.get("/api/v1/models").status_code == 200


def test_denied_at_the_provider(browser: TestClient) -> None:
    back = at_provider(to_provider(browser), "", action="deny")
    answer = back_at(browser, back)
    assert answer.status_code == 403 and "did not let you sign in" in answer.text


def test_a_callback_without_its_flow_opens_nothing(browser: TestClient) -> None:
    back = at_provider(to_provider(browser), ADA["sub"])
    browser.cookies.clear()  # the answer lands in another browser
    answer = back_at(browser, back)
    assert answer.status_code == 400 and "in another browser" in answer.text
    # a state other than the one this browser started with
    other = at_provider(to_provider(browser), ADA["sub"])
    to_provider(browser)  # a second sign-in started meanwhile replaces the flow
    assert back_at(browser, other).status_code == 400
    assert browser.get("/api/v1/models").status_code == 401


def test_a_provider_that_does_not_answer(tmp_path: Path) -> None:
    settings = oidc_settings(tmp_path, f"http://127.0.0.1:{free_port()}")
    with open_client(settings) as client:
        answer = client.get("/login/oidc")
    assert answer.status_code == 502 and "did not answer" in answer.text
    assert 'name="key"' in answer.text  # the key form is still there


def test_an_altered_old_or_outdated_session_opens_nothing(
    tmp_path: Path, issuer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = oidc_settings(tmp_path, issuer)
    with open_client(settings) as client:
        assert sign_in(client, ADA["sub"]).status_code == 303
        value = client.cookies[browser_session.COOKIE]
        assert client.get("/api/v1/models").status_code == 200

        rule = oidc_rule.fingerprint(settings)
        secret = settings.session_secret or ""
        thirteen_hours_ago = int(time.time()) - 13 * 3600
        with monkeypatch.context() as patch:
            patch.setattr(
                itsdangerous.TimestampSigner, "get_timestamp", lambda self: thirteen_hours_ago
            )
            old = browser_session.sign_oidc(secret, "ada-1", "ada@example.org", rule)
        forged = browser_session.sign_oidc("a guessed secret", "ada-1", "ada@example.org", rule)
        other_rule = browser_session.sign_oidc(secret, "ada-1", "ada@example.org", "0" * 16)
        altered = value[:-3] + ("AAA" if not value.endswith("AAA") else "BBB")
        for cookie in (old, forged, other_rule, altered):
            client.cookies.set(browser_session.COOKIE, cookie)
            assert client.get("/api/v1/models").status_code == 401
            assert client.get("/", headers={"Accept": "text/html"}).status_code == 303

    # who may read changed: the sessions granted under the old rule end
    narrower = oidc_settings(tmp_path, issuer, oidc_allowed_groups=["plankton"])
    with open_client(narrower) as client:
        client.cookies.set(browser_session.COOKIE, value)
        answer = client.get("/api/v1/models")
        assert answer.status_code == 401 and "who may read here has changed" in answer.text
    # and OIDC turned off ends them too
    off = settings.model_copy(update={"oidc_issuer": None})
    with open_client(off) as client:
        client.cookies.set(browser_session.COOKIE, value)
        assert client.get("/api/v1/models").status_code == 401
    # the same settings still take it
    with open_client(settings) as client:
        client.cookies.set(browser_session.COOKIE, value)
        assert client.get("/api/v1/models").status_code == 200
