"""Shared request dependencies: the service state, database sessions, keys and body limits."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from monitor.alerting.lifecycle import Alerting
from monitor.db import keys
from monitor.db.models import RegisteredModel, get_model
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
    """401 for a missing or unknown key, 403 for a key without the ``needed`` scope."""
    row = keys.lookup(session, _bearer(request))
    if row is None:
        raise HTTPException(401, "invalid or revoked API key", {"WWW-Authenticate": "Bearer"})
    if not keys.allows(row.scopes, needed):
        raise HTTPException(403, f"this key lacks the {needed!r} scope")


def require(needed: str) -> Callable[[Request, Session], None]:
    """Dependency for a fixed scope (``admin`` or ``read``)."""

    def check(request: Request, session: SessionDep) -> None:
        authorize(session, request, needed)

    return check


def model_or_404(session: Session, name: str) -> RegisteredModel:
    registered = get_model(session, name)
    if registered is None:
        raise HTTPException(404, f"unknown model {name!r}")
    return registered


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
