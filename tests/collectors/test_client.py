"""The telemetry client against a real Tidewatch server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from collectors import TelemetryClient
from monitor.db import keys
from monitor.server import BackgroundServer, free_port
from monitor.settings import Settings
from tests.conftest import SPEC


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[BackgroundServer, str]]:
    with BackgroundServer(Settings(database_url=f"sqlite:///{tmp_path}/c.db", port=0)) as srv:
        with srv.app.state.tidewatch.sessions() as session:
            admin = keys.create_key(session, ["admin"])
        httpx.post(
            f"{srv.url}/api/v1/models", json=SPEC, headers={"Authorization": f"Bearer {admin}"}
        ).raise_for_status()
        yield srv, admin


def stored(srv: BackgroundServer, admin: str) -> int:
    answer = httpx.get(
        f"{srv.url}/api/v1/models/plankton", headers={"Authorization": f"Bearer {admin}"}
    )
    count: int = answer.json()["records"]
    return count


FEATURES = {"brightness": 0.5, "site": "a", "emb": np.array([0.1, 0.2, 0.3], dtype=np.float32)}
PREDICTION = {"label": "copepod", "probabilities": np.array([0.9, 0.1])}


def test_records_arrive_in_batches(server: tuple[BackgroundServer, str]) -> None:
    srv, admin = server
    with TelemetryClient(srv.url, "plankton", admin, batch_size=100, flush_interval=0.05) as client:
        ids = [client.log(FEATURES, PREDICTION) for _ in range(450)]
        assert client.flush(timeout=30)
        assert client.stats["sent"] == 450
    assert len(set(ids)) == 450
    assert stored(srv, admin) == 450


def test_resent_ids_are_counted_as_duplicates(server: tuple[BackgroundServer, str]) -> None:
    srv, admin = server
    with TelemetryClient(srv.url, "plankton", admin, flush_interval=0.05) as client:
        for i in range(10):
            client.log(FEATURES, PREDICTION, id=f"fixed-{i}")
        client.flush(timeout=30)
        for i in range(10):
            client.log(FEATURES, PREDICTION, id=f"fixed-{i}")
        client.flush(timeout=30)
        assert client.stats["sent"] == 10 and client.stats["duplicates"] == 10
    assert stored(srv, admin) == 10


class CountingTransport(httpx.HTTPTransport):
    """The real transport, counting the requests it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.requests = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        return super().handle_request(request)


def test_bad_records_are_rejected_not_retried(server: tuple[BackgroundServer, str]) -> None:
    srv, admin = server
    transport = CountingTransport()
    # a retry would wait about 1,000 s: flush would time out instead of succeeding
    with TelemetryClient(
        srv.url,
        "plankton",
        admin,
        flush_interval=0.05,
        max_retries=5,
        backoff=1000,
        transport=transport,
    ) as client:
        client.log({"brightness": "bright"}, PREDICTION)
        assert client.flush(timeout=30)
        assert client.stats["rejected"] == 1 and client.stats["sent"] == 0
        assert transport.requests == 1  # sent once, never retried


def test_server_down_never_raises_into_the_caller() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    client = TelemetryClient(
        url, "plankton", "tw_x", flush_interval=0.01, max_retries=2, backoff=0.01, spool_dir=False
    )
    for _ in range(5):
        client.log(FEATURES, PREDICTION)
    assert client.flush(timeout=10) is False
    assert client.stats["failed"] == 5
    client.close()
    client.log(FEATURES, PREDICTION)  # after close: dropped and counted, not raised
    assert client.stats["dropped"] == 1


def test_full_queue_drops_instead_of_blocking() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    # the sender is stuck in a backoff of about 1,000 s against a dead server, so the queue
    # fills up; log() must keep returning, and close() must interrupt the backoff (otherwise
    # this test would hang until pytest's timeout)
    client = TelemetryClient(
        url,
        "m",
        "k",
        max_queue=10,
        batch_size=5,
        flush_interval=0.01,
        max_retries=3,
        backoff=1000,
        spool_dir=False,
    )
    for _ in range(1000):
        client.log({"x": 1.0})
    stats = client.stats
    assert stats["dropped"] >= 900
    assert stats["logged"] + stats["dropped"] == 1000
    client.close(timeout=1)
    assert not client._thread.is_alive()  # close interrupted the backoff and the thread ended
    final = client.stats
    assert final["dropped"] + final["failed"] + final["sent"] == 1000
