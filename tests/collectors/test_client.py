"""The telemetry client against a real Tidewatch server on loopback."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


class Switch:
    """A fake Tidewatch behind httpx.MockTransport: refuses connections while down."""

    def __init__(self, up: bool) -> None:
        self.up = up
        self.received = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if not self.up:
            raise httpx.ConnectError("connection refused", request=request)
        self.received += len(json.loads(request.content)["records"])
        return httpx.Response(200, json={"accepted": 1, "duplicates": 0})


def switched_client(switch: Switch, spool: Path, **options: Any) -> TelemetryClient:
    return TelemetryClient(
        "http://tidewatch.invalid",
        "plankton",
        "tw_x",
        flush_interval=0.01,
        max_retries=0,
        spool_dir=spool,
        transport=httpx.MockTransport(switch),
        **options,
    )


def test_spooled_records_make_flush_and_close_false(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    switch = Switch(up=False)
    client = switched_client(switch, tmp_path / "spool")
    for _ in range(5):
        client.log(FEATURES, PREDICTION)
    assert client.flush(timeout=10) is False  # on disk is not at Tidewatch
    assert client.stats["spooled"] == 5 and client.stats["spool_waiting"] == 5
    with caplog.at_level(logging.WARNING, logger="tidewatch.collectors"):
        assert client.close(timeout=10, drain_timeout=0) is False
    assert client.stats["spool_waiting"] == 5  # still told after close
    assert client.close() is False  # and asked again
    warning = [r.getMessage() for r in caplog.records if "spool" in r.getMessage()]
    assert len(warning) == 1
    assert "5 telemetry records" in warning[0] and str(tmp_path / "spool") in warning[0]
    assert switch.received == 0


def test_flush_sends_the_spool_as_soon_as_tidewatch_is_back(tmp_path: Path) -> None:
    switch = Switch(up=False)
    # after a failure the client would wait up to 1,000 s before trying the spool again
    client = switched_client(switch, tmp_path / "spool", backoff=1000, max_backoff=1000)
    for _ in range(5):
        client.log(FEATURES, PREDICTION)
    assert client.flush(timeout=10) is False
    switch.up = True
    for _ in range(3):
        client.log(FEATURES, PREDICTION)
    assert client.flush(timeout=10) is True  # tried the spool now, despite the backoff
    stats = client.stats
    assert stats["sent"] == 8 and stats["spool_waiting"] == 0 and switch.received == 8
    assert client.close(timeout=10) is True


def test_flush_and_close_true_when_everything_arrived(tmp_path: Path) -> None:
    switch = Switch(up=True)
    client = switched_client(switch, tmp_path / "spool")
    for _ in range(7):
        client.log(FEATURES, PREDICTION)
    assert client.flush(timeout=10) is True
    client.log(FEATURES, PREDICTION)
    assert client.close(timeout=10) is True
    assert client.stats["sent"] == 8 and client.stats["spool_waiting"] == 0
    assert switch.received == 8


def test_lost_records_make_flush_false(tmp_path: Path) -> None:
    client = switched_client(Switch(up=True), tmp_path / "spool")
    client.log(FEATURES, PREDICTION)
    assert client.flush(timeout=10) is True
    client.count_dropped()  # an integration could not log one: it never reaches Tidewatch
    assert client.flush(timeout=10) is False
    assert client.close(timeout=10) is False


def test_flush_after_close_returns_at_once(tmp_path: Path) -> None:
    client = switched_client(Switch(up=True), tmp_path / "spool")
    client.log(FEATURES, PREDICTION)
    assert client.close(timeout=10) is True
    started = time.monotonic()
    assert client.flush() is True  # no sender any more: nothing to wait for, no hang
    assert time.monotonic() - started < 5


def test_an_overloaded_tidewatch_is_retried_after_its_retry_after(tmp_path: Path) -> None:
    """A 503 with Retry-After (admission control) is waited out, then the batch goes through."""
    answers = [503, 503, 200]
    seen: list[str] = []

    def overloaded(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        status = answers.pop(0)
        if status == 503:
            return httpx.Response(503, headers={"Retry-After": "0.25"}, json={"detail": "busy"})
        return httpx.Response(200, json={"accepted": 2, "duplicates": 0})

    client = TelemetryClient(
        "http://tidewatch",
        "plankton",
        "tw_key",
        flush_interval=0.05,
        backoff=30.0,  # jittered backoff would wait up to a minute: the header must win
        spool_dir=tmp_path / "spool",
        transport=httpx.MockTransport(overloaded),
    )
    waits: list[float | None] = []
    wait = client._stop.wait

    def recorded(timeout: float | None = None) -> bool:
        waits.append(timeout)
        return wait(timeout)

    client._stop.wait = recorded  # type: ignore[method-assign]
    client.log({"x": 1.0}, id="a")
    client.log({"x": 2.0}, id="b")
    assert client.flush(timeout=10)
    assert len(seen) == 3 and client.stats["sent"] == 2
    assert waits.count(0.25) == 2  # waited exactly what the server asked, twice
    client.close()
