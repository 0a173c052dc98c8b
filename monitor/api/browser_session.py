"""Browser sessions: people sign in once with an API key and then open the read-only pages.

The cookie holds a signed, timestamped session (itsdangerous, as Starlette's SessionMiddleware
uses): the key's database id and the first 16 hex digits of its SHA-256, never the key. A
signed cookie needs no table and no migration; every request still looks the key up, so
revoking the key, or its expiry, ends its sessions at once, and the signature's age ends them
after ``session_hours``. (Signing out deletes the cookie in the browser; a copy taken before
stays valid until one of those.)

A session started through the site's identity provider (OIDC, :mod:`monitor.api.oidc`) has no
key: its cookie holds ``"oidc"``, the person's subject and e-mail (for the page and the log) and
a fingerprint of the provider and the rule of who may read (:func:`monitor.api.oidc_rule.
fingerprint`), signed the same way, with the same maximum age. Its check needs no database: the
signature, the age, OIDC still being configured, and the fingerprint. The trade-off: there is no
per-person revocation before the session's age ends it (``session_hours``); a person removed
at the provider keeps reading until then. What ends OIDC sessions at once: changing the rule
(any ``oidc_allowed_*`` setting, the groups claim, the issuer or client id: every OIDC session
ends), turning OIDC off, or changing ``session_secret`` (every session of both kinds ends).

What a session may do is narrow on purpose (:func:`session_cookie`): only ``read``, only on
GET and HEAD, and only when no ``Authorization`` header came. So a cookie never widens a key (an
admin key signed in reads, nothing more), and a page on another site that makes the browser
send a POST, PUT or DELETE gets no further than it would without the cookie (CSRF).

Cookie flags: HttpOnly (no script reads it); SameSite=Lax, not Strict, because Grafana's data
links and e-mail links are top-level navigations from another site, which Strict would send
without the cookie (the reader would land on the sign-in form although signed in); Lax still
never sends it with a cross-site POST or a sub-request. Secure whenever the browser came over
HTTPS (behind a TLS proxy, uvicorn's proxy headers say so); plain HTTP is accepted only to a
loopback host (``localhost``, ``127.0.0.1``, ``::1``: tests and laptops), where the cookie then
goes without Secure. Over plain HTTP to any other host, sign-in is refused: the key itself
would cross the network in clear text.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from fastapi import HTTPException, Request
from itsdangerous import BadSignature, URLSafeTimedSerializer

from monitor.db.tables import ApiKey
from monitor.observability.access_log import SECRET_PARAMETERS

COOKIE = "tidewatch_session"
_SALT = "tidewatch.browser-session"  # keeps these signatures apart from any other use of the secret
_DIGEST = 16  # hex digits of the key's hash in the cookie: binds the session to that very key
SAFE_METHODS = frozenset({"GET", "HEAD"})
SESSION_SCOPE = "read"


OIDC = "oidc"  # the first item of an OIDC session's cookie (a key session's is the key's id)


@dataclass(frozen=True)
class KeySession:
    """Signed in with an API key: its id and the first hex digits of its hash."""

    key_id: int
    digest: str


@dataclass(frozen=True)
class OidcSession:
    """Signed in through the identity provider, under the rule with this fingerprint."""

    subject: str
    email: str | None
    rule: str


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=_SALT)


def sign(secret: str, key_id: int, key_hash: str) -> str:
    """The cookie's value for a session of the key with this id and hash.

    >>> value = sign("s", 3, "ab" * 32)
    >>> "tw_" not in value and read(value, "s", max_age=60) == KeySession(3, "ab" * 8)
    True
    >>> read(value, "other secret", max_age=60) is None
    True
    """
    return _serializer(secret).dumps([key_id, key_hash[:_DIGEST]])


def sign_oidc(secret: str, subject: str, email: str | None, rule: str) -> str:
    """The cookie's value for a session signed in through the identity provider.

    >>> value = sign_oidc("s", "248289761001", "ada@example.org", "f00d")
    >>> read(value, "s", max_age=60)
    OidcSession(subject='248289761001', email='ada@example.org', rule='f00d')
    """
    return _serializer(secret).dumps([OIDC, subject, email, rule])


def read(value: str, secret: str, *, max_age: int) -> KeySession | OidcSession | None:
    """The session of a valid cookie; None if altered, foreign or too old."""
    try:
        items: Any = _serializer(secret).loads(value, max_age=max_age)
    except (BadSignature, ValueError, TypeError):  # SignatureExpired is a BadSignature
        return None
    if not isinstance(items, list):
        return None
    match items:
        case [int() as key_id, str() as digest] if not isinstance(key_id, bool):
            return KeySession(key_id, digest)
        case [str() as kind, str() as subject, str() | None as email, str() as rule] if (
            kind == OIDC
        ):
            return OidcSession(subject, email, rule)
    return None


def matches(row: ApiKey, digest: str) -> bool:
    return row.key_hash[:_DIGEST] == digest


def session_cookie(request: Request, needed: str) -> str | None:
    """The cookie to check for this request, or None when the request must bring a key."""
    if (
        needed != SESSION_SCOPE
        or request.method not in SAFE_METHODS
        or "authorization" in request.headers
    ):
        return None
    return request.cookies.get(COOKIE)


def cookie_secure(request: Request) -> bool:
    """True over HTTPS, False over plain HTTP to a loopback host; 400 otherwise (see above)."""
    if request.url.scheme == "https":
        return True
    host = (request.url.hostname or "").strip("[]")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if loopback:
        return False
    raise HTTPException(
        400,
        "sign in over HTTPS: over plain HTTP the key would cross the network readable by anyone "
        "on the way (behind a TLS proxy, let it send X-Forwarded-Proto and start Tidewatch with "
        "FORWARDED_ALLOW_IPS set to the proxy's address)",
    )


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this site only (never ``//evil`` or a URL).

    >>> safe_next("/api/v1/models/m/report?run=3"), safe_next("//evil.example/"), safe_next(None)
    ('/api/v1/models/m/report?run=3', '/', '/')
    >>> safe_next("https://evil.example/"), safe_next("/\\\\evil.example")
    ('/', '/')
    """
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target[:2000]


def login_location(request: Request) -> str:
    """``/login?next=<this page>``, leaving out any credential the query carried (a signed
    link's ``token``): the next address lands in the access log, where only top-level
    credentials are redacted.

    >>> from starlette.requests import Request
    >>> scope = {"type": "http", "path": "/api/v1/models/m/report", "headers": [],
    ...          "query_string": b"run=3&expires=9&token=abc"}
    >>> login_location(Request(scope))
    '/login?next=/api/v1/models/m/report%3Frun%3D3%26expires%3D9'
    """
    pairs = [(k, v) for k, v in parse_qsl(request.url.query) if k not in SECRET_PARAMETERS]
    here = request.url.path + (f"?{urlencode(pairs)}" if pairs else "")
    return f"/login?next={quote(here, safe='/')}"


def wants_page(request: Request) -> bool:
    """A browser navigating (its Accept names HTML first), not a script or ``curl``."""
    return (
        request.method in SAFE_METHODS
        and "authorization" not in request.headers
        and request.headers.get("accept", "").startswith("text/html")
    )


def to_login(request: Request) -> HTTPException:
    """The answer to a browser that is not signed in: 303 to the sign-in form, back here after."""
    return HTTPException(303, "sign in first", {"Location": login_location(request)})
