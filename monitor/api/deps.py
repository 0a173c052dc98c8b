"""Shared request dependencies: the service state, database sessions, keys and body limits.

Nothing here blocks the event loop: database work runs in worker threads (:func:`in_thread`,
or FastAPI's own for synchronous routes), bounded by ``request_threads`` so that a request
thread never waits for a database connection (the pool holds more). A request holds at most
one connection at a time: the key check uses its own short session, released before the
route's work starts.
"""

from __future__ import annotations

import functools
import secrets
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Annotated, Any, TypeVar

import anyio
import anyio.to_thread
from fastapi import Depends, HTTPException, Path, Query, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from monitor.alerting.lifecycle import Alerting
from monitor.api import browser_session, oidc_rule
from monitor.api.errors import invalid
from monitor.db import keys
from monitor.db.models import RegisteredModel, get_model
from monitor.db.tables import ApiKey
from monitor.observability.registry import Exposition
from monitor.runs.pipeline import ReferenceCache
from monitor.scheduling.scheduler import Worker
from monitor.settings import Settings


@dataclass
class ServiceState:
    """Everything a request may need, built once by ``create_app``; no module-level globals."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    cache: ReferenceCache
    exposition: Exposition  # what /metrics serves
    alerting: Alerting  # checks the alert rules after manual runs
    worker: Worker | None = None  # the scheduler of this process, while serving
    # /metrics renders on a thread of its own, never queued behind request work
    metrics_limiter: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(1))
    # signs browser sessions when the session_secret setting is unset (see browser_session)
    random_session_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    # Authlib's client of the identity provider, built at the first OIDC sign-in (api/oidc.py)
    oidc_client: Any = None

    @property
    def session_secret(self) -> str:
        return self.settings.session_secret or self.random_session_secret


T = TypeVar("T")

# ids are database integers: anything beyond answers 422, never a driver error (a 500)
MAX_ID = 2**31 - 1
IdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="an id (1 to 2^31 - 1)")]


def id_query(description: str, *, alias: str | None = None, default: Any = None) -> Any:
    """A query parameter holding a database id, bounded like :data:`IdPath`."""
    return Query(default=default, alias=alias, ge=1, le=MAX_ID, description=description)


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a worker thread (the bounded default pool), off the event loop."""
    return await anyio.to_thread.run_sync(functools.partial(fn, *args))


def get_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.tidewatch
    return state


StateDep = Annotated[ServiceState, Depends(get_state)]


def get_session(state: StateDep) -> Iterator[Session]:
    with state.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(
            401,
            "missing API key: send 'Authorization: Bearer <key>'",
            {"WWW-Authenticate": "Bearer"},
        )
    return token.strip()


def authorize(session: Session, request: Request, needed: str) -> None:
    """401 for a missing, unknown, revoked or expired key, 403 for a key without the ``needed``
    scope."""
    check_key(session, _bearer(request), needed)


def check_key(session: Session, key: str, needed: str) -> ApiKey:
    """The key's row, if it is valid and grants ``needed``; else the 401 or 403 saying why."""
    row = keys.lookup(session, key)
    if row is None:
        raise HTTPException(401, "invalid or revoked API key", {"WWW-Authenticate": "Bearer"})
    _check_row(session, row, needed)
    return row


def _check_row(session: Session, row: ApiKey, needed: str) -> None:
    if keys.has_expired(row):
        raise HTTPException(
            401,
            f"this API key expired on {row.expires_at:%Y-%m-%d %H:%M} UTC: "
            "ask an administrator for a new one (`tidewatch keys create`)",
            {"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    if not keys.allows(row.scopes, needed):
        raise HTTPException(403, f"this key lacks the {needed!r} scope")
    keys.mark_used(session, row)


def _check_key_alone(state: ServiceState, key: str, needed: str) -> None:
    with state.sessions() as session:  # its own connection, returned before the route runs
        check_key(session, key, needed)


def _check_cookie_alone(state: ServiceState, cookie: str, needed: str) -> None:
    """A browser session stands in for its key: the key must still be valid (not revoked,
    not expired) and grant ``needed``, at every request. An OIDC session has no key: it holds
    while OIDC is configured with the rule it was granted under (browser_session explains)."""
    hours = state.settings.session_hours
    found = browser_session.read(cookie, state.session_secret, max_age=round(hours * 3600))
    if isinstance(found, browser_session.OidcSession):
        _check_oidc_session(state, found)
        return
    with state.sessions() as session:
        row = session.get(ApiKey, found.key_id) if found is not None else None
        if found is None or row is None or not browser_session.matches(row, found.digest):
            raise HTTPException(401, "your session has ended: sign in again at /login")
        if row.revoked_at is not None:
            raise HTTPException(401, "your session has ended (its key was revoked): sign in again")
        _check_row(session, row, needed)


def _check_oidc_session(state: ServiceState, found: browser_session.OidcSession) -> None:
    settings = state.settings
    if not oidc_rule.configured(settings) or found.rule != oidc_rule.fingerprint(settings):
        raise HTTPException(
            401, "your session has ended (who may read here has changed): sign in again at /login"
        )
    # an OIDC session only ever reads: session_cookie() offers the cookie for `read` alone


def require(needed: str) -> Callable[[Request, ServiceState], Awaitable[None]]:
    """Dependency checking the key for a scope: ``admin``, ``read``, or ``ingest:{name}``
    (filled from the path). As a dependency it runs before the route's parameters and body
    are validated, so an anonymous caller learns nothing from a 422."""

    async def check(request: Request, state: StateDep) -> None:
        scope = needed.format(**request.path_params)
        # a browser's session cookie counts only for reading, with GET (browser_session)
        cookie = browser_session.session_cookie(request, scope)
        try:
            if cookie is not None:
                await in_thread(_check_cookie_alone, state, cookie, scope)
            else:
                await in_thread(_check_key_alone, state, _bearer(request), scope)
        except HTTPException as refused:
            if (
                refused.status_code == 401
                and scope == "read"
                and browser_session.wants_page(request)
            ):
                raise browser_session.to_login(request) from None
            raise
        _refuse_repeated_parameters(request)

    return check


def _refuse_repeated_parameters(request: Request) -> None:
    """Every query parameter here holds one value: ``?until=a&until=b`` is ambiguous (FastAPI
    would silently take the last), so it is refused, after the key check."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    declared = {p.alias for p in dependant.query_params} if dependant is not None else set()
    query = request.query_params
    # only the route's own parameters: unknown ones are ignored, repeated or not
    repeated = sorted({name for name in declared if len(query.getlist(name)) > 1})
    if repeated:
        raise invalid(f"query.{repeated[0]}", "given more than once: send it once")


def model_or_404(session: Session, name: str) -> RegisteredModel:
    registered = get_model(session, name)
    if registered is None:
        raise HTTPException(404, f"unknown model {name!r}")
    return registered


def find_model(state: ServiceState, name: str) -> RegisteredModel:
    """:func:`model_or_404` with its own short session (for async routes, in a thread)."""
    with state.sessions() as session:
        return model_or_404(session, name)


def _too_large(limit: int) -> HTTPException:
    return HTTPException(413, f"request body exceeds the limit of {limit} bytes")


def _check_length_header(request: Request, limit: int) -> None:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise _too_large(limit)


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused with 413 as soon as it passes ``limit`` bytes."""
    _check_length_header(request, limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def spool_body(request: Request, limit: int) -> IO[bytes]:
    """The body streamed to a temporary file (in memory while small), never held twice."""
    _check_length_header(request, limit)
    # closed by the caller once the upload is stored (or here, on 413)
    spool = tempfile.SpooledTemporaryFile(max_size=64 * 1024 * 1024)  # noqa: SIM115
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            spool.close()
            raise _too_large(limit)
        spool.write(chunk)
    spool.seek(0)
    return spool
