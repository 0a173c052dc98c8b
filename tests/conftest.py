"""Shared fixtures: a database per test on SQLite and on PostgreSQL, the app, keys, a spec.

PostgreSQL runs at 127.0.0.1:5432 (override with TIDEWATCH_TEST_PG). Without it, PostgreSQL
tests skip on a developer's machine and fail under CI=true: a green CI run means they ran.
"""

from __future__ import annotations

import email
import email.policy
import logging
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from monitor.app import create_app
from monitor.db import keys
from monitor.observability.logs import NEVER_CHATTY, OWN, StderrHandler
from monitor.server import free_port
from monitor.settings import Settings

os.environ.setdefault("DO_NOT_TRACK", "1")
PG_ADMIN_URL = os.environ.get("TIDEWATCH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def service_missing(what: str, why: object) -> None:
    """Skip locally, fail under CI: a CI run must never pass without the real service."""
    message = f"{what} is not available: {why}"
    if IN_CI:
        pytest.fail(message + " (CI=true: services are required)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _spool_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Telemetry clients made by tests spool under the test's folder, never in ~/.cache."""
    monkeypatch.setenv("TIDEWATCH_SPOOL_DIR", str(tmp_path / "spool"))


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """A command run in a test sets up its process's logging (monitor.observability.logs);
    the next test starts with the levels and handlers as they were."""
    root = logging.getLogger()
    levels = {name: logging.getLogger(name).level for name in ("", *OWN, *NEVER_CHATTY)}
    before = set(root.handlers)
    yield
    for handler in list(root.handlers):
        if isinstance(handler, StderrHandler) and handler not in before:
            root.removeHandler(handler)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"tw_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        service_missing("PostgreSQL", exc)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using this runs twice: on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tidewatch.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def settings(db_url: str) -> Settings:
    # the scheduler's own tests turn it on; elsewhere it would only add threads
    return Settings(database_url=db_url, device="cpu", purge_interval_seconds=3600, scheduler=False)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings)
    with TestClient(app) as test_client:
        yield test_client


def make_key(client: TestClient, *scopes: str) -> dict[str, str]:
    with client.app.state.tidewatch.sessions() as session:  # type: ignore[attr-defined]
        key = keys.create_key(session, list(scopes))
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def admin(client: TestClient) -> dict[str, str]:
    return make_key(client, "admin")


SPEC: dict[str, Any] = {
    "name": "plankton",
    "version": "1",
    "features": [
        {"name": "brightness", "kind": "numeric"},
        {"name": "site", "kind": "categorical"},
        {"name": "emb", "kind": "vector", "dim": 3},
    ],
    "output": {"task": "classification", "classes": ["copepod", "diatom"]},
    "monitors": [{"name": "drift", "window": {"by": "count", "size": 300}, "min_samples": 50}],
}


def record(i: int, brightness: float = 0.5, site: str = "a", **extra: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "id": f"r{i}",
        "features": {"brightness": brightness, "site": site, "emb": [0.1, 0.2, 0.3]},
        "prediction": {"label": "copepod", "probabilities": [0.8, 0.2]},
    }
    rec.update(extra)
    return rec


@pytest.fixture
def model(client: TestClient, admin: dict[str, str]) -> dict[str, Any]:
    response = client.post("/api/v1/models", json=SPEC, headers=admin)
    assert response.status_code == 200, response.text
    return SPEC


ALERTMANAGER_BINARY = "/usr/bin/prometheus-alertmanager"
ALERTMANAGER_CONFIG = 'route: {receiver: "null"}\nreceivers: [{name: "null"}]\n'


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None and Path(ALERTMANAGER_BINARY).exists():
        binary = ALERTMANAGER_BINARY
    if binary is None:
        service_missing("Alertmanager", "no prometheus-alertmanager binary (Debian package)")
    assert binary is not None
    config = tmp_path / "alertmanager.yml"
    config.write_text(ALERTMANAGER_CONFIG)
    port = free_port()
    log = (tmp_path / "alertmanager.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",  # no gossip: a single, private instance
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"Alertmanager exited: {(tmp_path / 'alertmanager.log').read_text()}")
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("Alertmanager did not become ready within 30 s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


class Inbox:
    """What a real SMTP server on loopback (aiosmtpd) received, parsed."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            email.message_from_bytes(envelope.content, policy=email.policy.default)  # type: ignore[arg-type]
        )
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[int, Inbox]]:
    """An SMTP server on a free loopback port: (port, inbox)."""
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller.port, inbox
    controller.stop()
