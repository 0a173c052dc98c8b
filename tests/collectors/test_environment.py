"""TelemetryClient.from_env() and log_labels(), against a real Tidewatch on loopback; the
DEEPaaS wrapper reads its settings through the same function."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from collectors import TelemetryClient, deepaas
from collectors.deepaas import monitored
from collectors.environment import read_config
from collectors.sampling import RateSampler, StratifiedSampler
from monitor.db import keys
from monitor.db.tables import Label
from monitor.server import BackgroundServer
from monitor.settings import Settings
from tests.conftest import SPEC

GOOD = {
    "TIDEWATCH_URL": "http://tidewatch:8000/",
    "TIDEWATCH_KEY": "tw_secret",
    "TIDEWATCH_MODEL": "plankton",
}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[BackgroundServer, str]]:
    with BackgroundServer(Settings(database_url=f"sqlite:///{tmp_path}/e.db", port=0)) as srv:
        with srv.app.state.tidewatch.sessions() as session:
            admin = keys.create_key(session, ["admin"])
        httpx.post(
            f"{srv.url}/api/v1/models", json=SPEC, headers={"Authorization": f"Bearer {admin}"}
        ).raise_for_status()
        yield srv, admin


def test_a_complete_environment_is_read() -> None:
    config = read_config({**GOOD, "TIDEWATCH_SAMPLER": "stratified:0.1"})
    assert (config.url, config.model, config.key) == (
        "http://tidewatch:8000",
        "plankton",
        "tw_secret",
    )
    assert config.sampler == "stratified:0.1"
    assert "tw_secret" not in repr(config)  # a repr may end up in logs
    # values given in code win over the variables
    assert read_config(GOOD, model="coral", url="https://tw.example").model == "coral"


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"TIDEWATCH_URL": ""}, "TIDEWATCH_URL is not set"),
        ({"TIDEWATCH_KEY": ""}, "TIDEWATCH_KEY is not set"),
        ({"TIDEWATCH_MODEL": "  "}, "TIDEWATCH_MODEL is not set"),
        ({"TIDEWATCH_URL": "tidewatch:8000"}, "TIDEWATCH_URL='tidewatch:8000' is not an http(s)"),
        ({"TIDEWATCH_URL": "ftp://tidewatch"}, "TIDEWATCH_URL='ftp://tidewatch' is not an http(s)"),
        ({"TIDEWATCH_KEY": "tw_secret\n"}, "TIDEWATCH_KEY holds whitespace"),
        ({"TIDEWATCH_MODEL": "my model"}, "TIDEWATCH_MODEL='my model' is not a model name"),
        ({"TIDEWATCH_SAMPLER": "0"}, "TIDEWATCH_SAMPLER='0' is not valid: rate must be in (0, 1]"),
        ({"TIDEWATCH_SAMPLER": "half"}, "TIDEWATCH_SAMPLER='half' is not valid: unknown sampler"),
    ],
    ids=lambda v: next(iter(v)) if isinstance(v, dict) else None,
)
def test_a_missing_or_wrong_variable_is_named(change: dict[str, str], named: str) -> None:
    with pytest.raises(ValueError, match="Tidewatch client settings") as caught:
        TelemetryClient.from_env({**GOOD, **change})
    assert named in str(caught.value)


def test_every_missing_variable_is_named_at_once() -> None:
    with pytest.raises(ValueError) as caught:
        TelemetryClient.from_env({})
    for name in ("TIDEWATCH_URL", "TIDEWATCH_KEY", "TIDEWATCH_MODEL"):
        assert f"{name} is not set" in str(caught.value)


def test_from_env_sends_records_and_labels(
    server: tuple[BackgroundServer, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    srv, admin = server
    monkeypatch.setenv("TIDEWATCH_URL", srv.url)
    monkeypatch.setenv("TIDEWATCH_KEY", admin)
    monkeypatch.setenv("TIDEWATCH_MODEL", "plankton")
    monkeypatch.setenv("TIDEWATCH_SAMPLER", "0.5")
    client = TelemetryClient.from_env(flush_interval=0.05, spool_dir=tmp_path / "spool")
    assert isinstance(client.sampler, RateSampler) and client.sampler.rate == 0.5
    for i in range(200):
        client.log({"brightness": 0.5, "site": "a"}, {"label": "copepod"}, id=f"r{i}")
    assert client.flush(timeout=30)
    sent = client.stats["sent"]
    assert 0 < sent < 200 and sent + client.stats["sampled_out"] == 200
    # labels are never sampled: every one is posted, also for records left out
    queued = client.log_labels({"id": f"r{i}", "label": "diatom"} for i in range(200))
    assert queued == 200
    assert client.flush(timeout=30)
    client.log_labels([{"id": "r0", "label": "no-such-class"}])  # a bad batch of its own
    assert client.close(timeout=30, drain_timeout=0)
    stats = client.stats
    assert stats["labels_logged"] == 201 and stats["labels_sent"] == 200
    assert stats["rejected"] == 1
    with srv.app.state.tidewatch.sessions() as session:
        labels = {
            r.record_id: r.label for r in session.execute(select(Label.record_id, Label.label))
        }
    assert labels == {f"r{i}": "diatom" for i in range(200)}


def test_a_sampler_given_in_code_wins_over_the_environment(tmp_path: Path) -> None:
    sampler = StratifiedSampler(rate=0.2)
    client = TelemetryClient.from_env(
        {**GOOD, "TIDEWATCH_SAMPLER": "0.9"}, sampler=sampler, spool_dir=False
    )
    assert client.sampler is sampler and client.url == "http://tidewatch:8000"
    client.close(timeout=1)


def test_deepaas_names_a_wrong_variable_once_and_only_predicts(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(deepaas, "_recorders", {})
    for name, value in {**GOOD, "TIDEWATCH_SAMPLER": "sometimes"}.items():
        monkeypatch.setenv(name, value)

    def predict(**kwargs: object) -> dict[str, str]:
        return {"label": "copepod"}

    watched = monitored(predict)
    with caplog.at_level(logging.WARNING, logger="tidewatch.collectors"):
        assert [watched(x=1.0) for _ in range(3)] == [{"label": "copepod"}] * 3
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "TIDEWATCH_SAMPLER='sometimes' is not valid" in warning
    assert deepaas._recorders == {}  # nothing is sent anywhere


def test_undeclared_features_are_named_once(
    server: tuple[BackgroundServer, str], caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """The server stores the records and leaves out what the model does not declare; the
    module's developer hears of it once per name, not once per batch."""
    srv, admin = server
    client = TelemetryClient(srv.url, "plankton", admin, spool_dir=tmp_path / "spool")
    with caplog.at_level(logging.WARNING, logger="tidewatch.collectors"):
        for batch in range(3):
            for i in range(5):
                client.log({"brightness": 0.5, "site": "a", "glare_index": 0.1}, id=f"b{batch}-{i}")
            assert client.flush(timeout=30)
    assert client.close(timeout=30, drain_timeout=0)
    said = [r.getMessage() for r in caplog.records if "glare_index" in r.getMessage()]
    assert len(said) == 1 and "does not declare" in said[0]
    assert client.stats["sent"] == 15
