"""Nothing stranded: close() keeps trying the spool, says what is left and how to send it, and
``tidewatch collect MODEL --drain DIR`` sends it; labels travel the same way. All against a
real Tidewatch on loopback that is down first and started later."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from collectors import TelemetryClient
from monitor.cli import app
from monitor.db import keys
from monitor.db.tables import Label
from monitor.server import BackgroundServer, free_port
from monitor.settings import Settings
from tests.conftest import SPEC

FEATURES = {"brightness": 0.5, "site": "a", "emb": [0.1, 0.2, 0.3]}
PREDICTION = {"label": "copepod", "probabilities": [0.8, 0.2]}


@pytest.fixture
def offline(tmp_path: Path) -> Iterator[tuple[Settings, str]]:
    """A Tidewatch database with the model and an admin key, and the port it will listen on;
    nobody listens there until a test starts the server."""
    settings = Settings(database_url=f"sqlite:///{tmp_path}/drain.db", port=free_port())
    with BackgroundServer(settings) as srv:
        with srv.app.state.tidewatch.sessions() as session:
            admin = keys.create_key(session, ["admin"])
        httpx.post(
            f"{srv.url}/api/v1/models", json=SPEC, headers={"Authorization": f"Bearer {admin}"}
        ).raise_for_status()
    yield settings, admin


def url_of(settings: Settings) -> str:
    return f"http://{settings.host}:{settings.port}"


def stored(srv: BackgroundServer, admin: str) -> int:
    answer = httpx.get(
        f"{srv.url}/api/v1/models/plankton", headers={"Authorization": f"Bearer {admin}"}
    )
    return int(answer.json()["records"])


def labels_stored(srv: BackgroundServer) -> int:
    with srv.app.state.tidewatch.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Label)) or 0)


def spooling_client(url: str, key: str, spool: Path, **options: object) -> TelemetryClient:
    return TelemetryClient(
        url,
        "plankton",
        key,
        batch_size=40,
        flush_interval=0.05,
        max_retries=0,
        backoff=0.05,
        max_backoff=0.5,
        spool_dir=spool,
        **options,  # type: ignore[arg-type]
    )


def log_some(client: TelemetryClient, n: int, labels: int = 0) -> None:
    for i in range(n):
        client.log(FEATURES, PREDICTION, id=f"r{i}")
    client.log_labels({"id": f"r{i}", "label": "diatom"} for i in range(labels))


def test_close_keeps_trying_the_spool_until_tidewatch_is_back(
    offline: tuple[Settings, str], tmp_path: Path
) -> None:
    settings, admin = offline
    client = spooling_client(url_of(settings), admin, tmp_path / "spool")
    log_some(client, 100, labels=10)
    assert client.flush(timeout=30) is False  # Tidewatch is down: all of it on disk
    assert client.stats["spool_waiting"] == 110
    server = BackgroundServer(settings)
    starting = threading.Thread(target=server.start)
    starting.start()  # comes up while close() is retrying
    try:
        assert client.close(timeout=30, drain_timeout=300) is True
        starting.join()
        stats = client.stats
        assert stats["sent"] == 100 and stats["labels_sent"] == 10
        assert stats["spool_waiting"] == 0
        assert stored(server, admin) == 100 and labels_stored(server) == 10
    finally:
        starting.join()
        server.stop()


def test_close_says_what_is_left_where_and_how_to_send_it(
    offline: tuple[Settings, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings, admin = offline
    spool = tmp_path / "spool"
    client = spooling_client(url_of(settings), admin, spool)
    with caplog.at_level(logging.DEBUG, logger="tidewatch.collectors"):
        log_some(client, 90, labels=7)
        assert client.close(timeout=30, drain_timeout=1.0) is False
    # the outage is said once (per kind of batch), not again at every retry of the drain
    said = [r.levelno for r in caplog.records if "unreachable" in r.getMessage()]
    assert 1 <= said.count(logging.WARNING) <= 2, said
    assert said.count(logging.DEBUG) >= 1, said  # the drain did retry meanwhile
    (warning,) = [r for r in caplog.records if "still in the spool" in r.getMessage()]
    assert warning.levelno == logging.WARNING
    message = warning.getMessage()
    assert "90 telemetry records and 7 labels still" in message
    assert f"`tidewatch collect plankton --drain {spool}`" in message
    assert "ConnectError" in message  # why they are there


def test_a_new_client_that_closes_at_once_sends_what_an_old_one_left(
    offline: tuple[Settings, str], tmp_path: Path
) -> None:
    settings, admin = offline
    old = spooling_client(url_of(settings), admin, tmp_path / "spool")
    log_some(old, 120, labels=5)
    assert old.close(timeout=30, drain_timeout=0) is False
    with BackgroundServer(settings) as server:
        new = spooling_client(url_of(settings), admin, tmp_path / "spool")
        assert new.close(timeout=30) is True
        assert new.stats["sent"] == 120 and new.stats["labels_sent"] == 5
        assert stored(server, admin) == 120 and labels_stored(server) == 5


def test_collect_drain_sends_a_spool_left_behind_exactly_once(
    offline: tuple[Settings, str], tmp_path: Path
) -> None:
    settings, admin = offline
    url, spool = url_of(settings), tmp_path / "spool"
    client = spooling_client(url, admin, spool)
    log_some(client, 500, labels=30)
    assert client.close(timeout=30, drain_timeout=0) is False
    assert len(list(spool.glob("*.json"))) > 1  # many batches, records and labels
    runner = CliRunner()
    drain = ["collect", "plankton", "--drain", str(spool), "--url", url, "--key", admin]
    down = runner.invoke(app, drain)  # still down: nothing is lost, and it says so
    assert down.exit_code == 1, down.output
    assert "Tidewatch did not answer" in down.output and "--url" in down.output
    assert "530 left in" in " ".join(down.output.split())
    with BackgroundServer(settings) as server:
        # a part arrived before (a batch whose answer was lost): stored once all the same
        httpx.post(
            f"{url}/api/v1/models/plankton/telemetry",
            json={"records": [{"id": "r3", "features": FEATURES, "prediction": PREDICTION}]},
            headers={"Authorization": f"Bearer {admin}"},
        ).raise_for_status()
        wrong_key = runner.invoke(app, [*drain[:-1], "tw_wrong"])
        assert wrong_key.exit_code == 1, wrong_key.output
        assert "refused (401)" in wrong_key.output
        assert len(list(spool.glob("*.json"))) > 1  # a refused batch is never deleted
        done = runner.invoke(app, drain)
        assert done.exit_code == 0, done.output
        assert "499 records stored, 1 already there, 30 labels stored; 0 left" in done.output
        assert stored(server, admin) == 500 and labels_stored(server) == 30
        assert list(spool.iterdir()) == []
        again = runner.invoke(app, drain)  # nothing left: harmless
        assert again.exit_code == 0 and "0 records stored" in again.output
        assert stored(server, admin) == 500
