"""Nothing lost while Tidewatch is down: the on-disk spool, an outage, a full spool, a fork."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from collectors import TelemetryClient
from collectors.spool import Spool
from monitor.db import keys
from monitor.server import BackgroundServer, free_port
from monitor.settings import Settings
from tests.conftest import SPEC


def test_spool_keeps_order_and_drops_the_oldest_when_full(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=30)
    assert spool.push(b"a" * 10, 1) == 0
    assert spool.push(b"b" * 10, 2) == 0
    assert spool.push(b"c" * 10, 3) == 0
    assert spool.push(b"d" * 10, 4) == 1  # the oldest batch ("a", 1 record) made room
    assert spool.records() == 2 + 3 + 4
    bodies = []
    while (item := spool.claim()) is not None:
        bodies.append(spool.read(item))
        spool.done(item)
    assert bodies == [b"b" * 10, b"c" * 10, b"d" * 10]
    assert spool.push(b"x" * 31, 5) == 5  # larger than the whole spool: dropped itself
    assert len(spool) == 0


def test_a_released_batch_keeps_its_place_and_dead_claims_are_released(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.push(b"first", 1)
    spool.push(b"second", 1)
    item = spool.claim()
    assert item is not None and spool.read(item) == b"first"
    assert spool.claim() is not None  # "second" is claimable while "first" is out
    # a claim whose process is gone (pid 2**22 + 1 is above Linux's pid_max default)
    item.path.rename(item.path.with_name(item.path.name.split(".sending.")[0] + ".sending.4194305"))
    reopened = Spool(tmp_path)
    again = reopened.claim()
    assert again is not None and reopened.read(again) == b"first"


@pytest.fixture
def admin_key(tmp_path: Path) -> Iterator[tuple[Settings, str]]:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/outage.db", port=free_port())
    with BackgroundServer(settings) as srv:
        with srv.app.state.tidewatch.sessions() as session:
            admin = keys.create_key(session, ["admin"])
        httpx.post(
            f"{srv.url}/api/v1/models", json=SPEC, headers={"Authorization": f"Bearer {admin}"}
        ).raise_for_status()
    yield settings, admin


def stored(url: str, admin: str) -> int:
    answer = httpx.get(
        f"{url}/api/v1/models/plankton", headers={"Authorization": f"Bearer {admin}"}
    )
    count: int = answer.json()["records"]
    return count


def test_outage_every_record_arrives_exactly_once(
    admin_key: tuple[Settings, str], tmp_path: Path
) -> None:
    """10,000 records; the server stops after 3,000 and comes back after 7,000."""
    settings, admin = admin_key
    url = f"http://{settings.host}:{settings.port}"
    server = BackgroundServer(settings).start()
    client = TelemetryClient(
        url,
        "plankton",
        admin,
        batch_size=250,
        flush_interval=0.05,
        max_retries=1,
        backoff=0.05,
        max_backoff=0.3,
        spool_dir=tmp_path / "spool",
    )
    try:
        for i in range(10_000):
            if i == 3_000:
                client.flush(timeout=30)
                server.stop()
            if i == 7_000:
                client.flush(timeout=30)  # everything logged meanwhile is settled: on disk
                assert client.stats["spooled"] == 4_000  # the outage really sent batches to disk
                server = BackgroundServer(settings).start()
            client.log({"brightness": float(i), "site": "a"}, {"label": "copepod"}, id=f"r{i}")
        assert client.flush(timeout=60)
        deadline = time.monotonic() + 60
        while client.stats["spool_waiting"] and time.monotonic() < deadline:
            time.sleep(0.1)  # the spool drains in the background once the server is back
        stats = client.stats
        assert stats["spool_waiting"] == 0
        assert stats["sent"] + stats["duplicates"] >= 10_000
        assert stats["failed"] == stats["dropped"] == stats["spool_dropped"] == 0
        assert stored(url, admin) == 10_000  # every record once: resends are not counted twice
    finally:
        client.close(timeout=10)
        server.stop()


def test_a_full_spool_drops_the_oldest_records_and_counts_them(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nobody listens
    client = TelemetryClient(
        url,
        "plankton",
        "tw_x",
        batch_size=10,
        flush_interval=0.01,
        max_retries=0,
        backoff=0.01,
        spool_dir=tmp_path / "spool",
        spool_max_bytes=4_000,
    )
    for i in range(300):
        client.log({"brightness": 0.5}, {"label": "copepod"}, id=f"r{i}")
    client.close(timeout=10, drain_timeout=0)
    stats = client.stats
    assert stats["spool_dropped"] > 0
    assert stats["spooled"] == 300
    assert stats["spool_waiting"] == 300 - stats["spool_dropped"]
    assert stats["spool_waiting"] > 0
    # the survivors are the newest records
    spool = Spool(tmp_path / "spool")
    item = spool.claim()
    assert item is not None and b'"r299"' not in spool.read(item)  # oldest survivor first
    assert any(b'"r299"' in p.read_bytes() for p in (tmp_path / "spool").glob("*.json"))


def test_a_forked_child_sends_its_own_records(
    admin_key: tuple[Settings, str], tmp_path: Path
) -> None:
    settings, admin = admin_key
    with BackgroundServer(settings) as server:
        client = TelemetryClient(
            server.url, "plankton", admin, flush_interval=0.05, spool_dir=tmp_path / "spool"
        )
        client.log({"brightness": 0.1}, {"label": "copepod"}, id="parent-0")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads running
            pid = os.fork()
        if pid == 0:  # the child: its own queue and thread; the parent's queue is not resent
            code = 1
            try:
                for i in range(20):
                    client.log({"brightness": 0.2}, {"label": "copepod"}, id=f"child-{i}")
                code = 0 if client.close(timeout=30) and client.stats["sent"] == 20 else 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        for i in range(1, 10):
            client.log({"brightness": 0.1}, {"label": "copepod"}, id=f"parent-{i}")
        assert client.close(timeout=30)
        assert client.stats["sent"] == 10
        assert stored(server.url, admin) == 30
