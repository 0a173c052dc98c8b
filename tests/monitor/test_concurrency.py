"""Many clients at once against a real ``tidewatch serve`` (uvicorn on loopback), on SQLite and
PostgreSQL: every request gets an answer, ``/healthz`` keeps answering, nothing is lost.

Before the ingest path moved off the event loop, 24 clients froze the service: the key check
ran a blocking database call on the loop while the threads holding connections waited for it.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import httpx
import pytest

from monitor.server import BackgroundServer
from monitor.settings import Settings
from tests.conftest import SPEC, record

CLIENTS = 64
BATCHES = 3
RECORDS = 10


async def _client(http: httpx.AsyncClient, url: str, key: str, who: int, answers: list[int]) -> int:
    """Post BATCHES batches; retry a 503 after its Retry-After, as the collectors client does.
    Returns the records the service accepted."""
    accepted = 0
    for b in range(BATCHES):
        batch = [record(who * 1000 + b * 100 + i) for i in range(RECORDS)]
        for i, rec in enumerate(batch):
            rec["id"] = f"c{who}-b{b}-{i}"
        for _ in range(50):
            response = await http.post(
                f"{url}/api/v1/models/plankton/telemetry",
                json={"records": batch},
                headers={"Authorization": f"Bearer {key}"},
            )
            answers.append(response.status_code)
            if response.status_code != 503:
                break
            assert response.headers["retry-after"].isdigit()
            await asyncio.sleep(float(response.headers["retry-after"]) / 10)
        assert response.status_code == 200, response.text
        accepted += response.json()["accepted"]
    return accepted


async def _probe(http: httpx.AsyncClient, url: str, stop: asyncio.Event, seen: list[int]) -> None:
    while not stop.is_set():
        seen.append((await http.get(f"{url}/healthz")).status_code)
        await asyncio.sleep(0.05)


async def _load(url: str, key: str) -> dict[str, Any]:
    answers: list[int] = []
    health: list[int] = []
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=CLIENTS + 4)
    # a frozen service would make these time out: the test fails instead of hanging
    async with httpx.AsyncClient(timeout=30.0, limits=limits) as http:
        probe = asyncio.create_task(_probe(http, url, stop, health))
        accepted = await asyncio.gather(
            *(_client(http, url, key, who, answers) for who in range(CLIENTS))
        )
        stop.set()
        await probe
    return {"accepted": sum(accepted), "answers": answers, "health": health}


@pytest.mark.parametrize("max_in_flight", [128, 8], ids=["roomy", "shedding"])
def test_many_clients_all_answered_and_nothing_lost(settings: Settings, max_in_flight: int) -> None:
    serve = settings.model_copy(update={"port": 0, "max_in_flight": max_in_flight})
    with BackgroundServer(serve) as server:
        from monitor.db import keys
        from monitor.db.engine import make_engine, make_sessionmaker

        with make_sessionmaker(make_engine(settings.database_url))() as session:
            key = keys.create_key(session, ["admin"])
        headers = {"Authorization": f"Bearer {key}"}
        assert httpx.post(f"{server.url}/api/v1/models", json=SPEC, headers=headers).is_success
        outcome = asyncio.run(_load(server.url, key))
        stored = httpx.get(f"{server.url}/api/v1/models/plankton", headers=headers).json()

    total = CLIENTS * BATCHES * RECORDS
    assert outcome["accepted"] == total
    assert stored["records"] == total  # every accepted record stored, none twice
    assert set(outcome["answers"]) <= {200, 503}
    if max_in_flight < CLIENTS:
        assert 503 in outcome["answers"]  # the limit really sheds, with Retry-After
    assert outcome["health"] and set(outcome["health"]) == {200}


def test_idle_connection_outlives_the_client_keep_alive(settings: Settings) -> None:
    """An idle keep-alive connection stays open longer than httpx keeps one (5 s).

    With the server's old 5 s, a client reusing a connection just as the server closed it got a
    connection reset: 1-4 httpx ReadErrors per ~1,000 batches at 256 clients in
    benchmarks/load.py, none with the server keeping connections 30 s.
    """
    client_expiry = 5.0  # httpx's (httpcore's) default keepalive_expiry
    assert settings.keep_alive_seconds > client_expiry
    with BackgroundServer(settings.model_copy(update={"port": 0})) as server:
        host, port = server.settings.host, server.settings.port
        request = f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
        with socket.create_connection((host, port), timeout=10) as sock:
            sock.sendall(request)
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
            time.sleep(client_expiry + 1)  # idle past the client's expiry
            sock.sendall(request)
            # the same connection still answers (a closed one reads b"" or resets)
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
