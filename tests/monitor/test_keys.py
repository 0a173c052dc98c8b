"""API keys: scopes name registered models, keys expire, their last use is recorded, and
``tidewatch keys list`` shows them without their secret (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from typer.testing import CliRunner

from monitor.cli import app
from monitor.db import keys
from monitor.db.tables import ApiKey
from tests.conftest import SPEC, make_key, record

MODELS = "/api/v1/models"


def key_row(client: TestClient, headers: dict[str, str]) -> ApiKey:
    secret = headers["Authorization"].removeprefix("Bearer ")
    with client.app.state.tidewatch.sessions() as session:  # type: ignore[attr-defined]
        row = session.scalar(select(ApiKey).where(ApiKey.key_hash == keys.hash_key(secret)))
        assert row is not None
        return row


def set_times(client: TestClient, row: ApiKey, **times: datetime) -> None:
    """Move a key's stored times, as if the clock had run on."""
    with client.app.state.tidewatch.sessions() as session:  # type: ignore[attr-defined]
        session.execute(update(ApiKey).where(ApiKey.id == row.id).values(**times))
        session.commit()


def test_a_scope_for_an_unregistered_model_is_refused(
    client: TestClient, admin: dict[str, str]
) -> None:
    with client.app.state.tidewatch.sessions() as session:  # type: ignore[attr-defined]
        with pytest.raises(ValueError, match=r"no model named 'plankton'.*register it first"):
            keys.create_key(session, ["read", "ingest:plankton"])
        assert len(keys.list_keys(session)) == 1  # the admin key alone: nothing was stored
    assert client.post(MODELS, json=SPEC, headers=admin).status_code == 200
    ingest = make_key(client, "ingest:plankton")
    assert client.get(f"{MODELS}/plankton/results", headers=ingest).status_code == 403
    batch = {"records": [record(1)]}
    assert (
        client.post(f"{MODELS}/plankton/telemetry", json=batch, headers=ingest).status_code == 200
    )


def test_an_expired_key_is_401_saying_so(client: TestClient) -> None:
    with client.app.state.tidewatch.sessions() as session:  # type: ignore[attr-defined]
        secret = keys.create_key(
            session, ["read"], expires_at=datetime.now(UTC) + timedelta(hours=1)
        )
        with pytest.raises(ValueError, match="already past"):
            keys.create_key(session, ["read"], expires_at=datetime.now(UTC) - timedelta(hours=1))
    reader = {"Authorization": f"Bearer {secret}"}
    assert client.get(MODELS, headers=reader).status_code == 200

    expiry = datetime(2026, 1, 31, tzinfo=UTC)
    set_times(client, key_row(client, reader), expires_at=expiry)
    answer = client.get(MODELS, headers=reader)
    assert answer.status_code == 401
    assert answer.json()["detail"].startswith("this API key expired on 2026-01-31 00:00 UTC")
    assert answer.headers["www-authenticate"].startswith("Bearer")
    # unknown keys keep their own message
    unknown = client.get(MODELS, headers={"Authorization": "Bearer tw_unknown"})
    assert unknown.json()["detail"] == "invalid or revoked API key"


def test_last_use_is_recorded_once_a_minute(client: TestClient) -> None:
    reader = make_key(client, "read")
    assert key_row(client, reader).last_used_at is None
    before = datetime.now(UTC)
    assert client.get(MODELS, headers=reader).status_code == 200
    first = key_row(client, reader).last_used_at
    assert first is not None and first >= before - timedelta(seconds=1)

    assert client.get(MODELS, headers=reader).status_code == 200
    assert key_row(client, reader).last_used_at == first  # within the minute: no write

    earlier = first - timedelta(minutes=5)
    set_times(client, key_row(client, reader), last_used_at=earlier)
    assert client.get(MODELS, headers=reader).status_code == 200
    assert key_row(client, reader).last_used_at > earlier  # type: ignore[operator]

    # a refused request (wrong scope) is not a use
    set_times(client, key_row(client, reader), last_used_at=earlier)
    assert client.post(MODELS, json=SPEC, headers=reader).status_code == 403
    assert key_row(client, reader).last_used_at == earlier


# the command line


runner = CliRunner()


def upgraded(tmp_path: Path, db_url: str) -> Path:
    path = tmp_path / "tidewatch.toml"
    path.write_text(f'database_url = "{db_url}"\ndevice = "cpu"\n')
    result = runner.invoke(app, ["db", "upgrade", "--config", str(path)])
    assert result.exit_code == 0, result.output
    return path


@pytest.fixture
def config(tmp_path: Path, db_url: str) -> Path:
    return upgraded(tmp_path, db_url)


def cli(config: Path, *args: str) -> Any:
    return runner.invoke(app, [*args, "--config", str(config)], env={"COLUMNS": "200"})


def test_keys_create_refuses_an_unregistered_model(config: Path, tmp_path: Path) -> None:
    refused = cli(config, "keys", "create", "--scope", "ingest:nosuchmodel")
    assert refused.exit_code == 2
    assert "no model named 'nosuchmodel'" in refused.output
    assert "register it first" in refused.output
    assert "tw_" not in refused.output

    spec = tmp_path / "model.json"
    spec.write_text(json.dumps(SPEC))
    assert cli(config, "models", "create", str(spec)).exit_code == 0
    created = cli(config, "keys", "create", "--scope", "ingest:plankton")
    assert created.exit_code == 0, created.output
    assert created.stdout.strip().startswith("tw_")


def test_keys_list_shows_everything_but_the_secret(config: Path) -> None:
    admin = cli(config, "keys", "create", "--scope", "admin", "--description", "ops team")
    assert admin.exit_code == 0, admin.output
    temporary = cli(config, "keys", "create", "-s", "read", "--expires-in", "30d")
    assert temporary.exit_code == 0, temporary.output
    dated = cli(config, "keys", "create", "-s", "read", "--expires", "2099-12-31")
    assert "expires 2099-12-31 00:00 UTC" in dated.output
    secrets = [r.stdout.strip() for r in (admin, temporary, dated)]

    listed = cli(config, "keys", "list")
    assert listed.exit_code == 0, listed.output
    in_30_days = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%d")
    for expected in ("ops team", "admin", "read", "2099-12-31 00:00", in_30_days, "last used"):
        assert expected in listed.output
    for secret in secrets:
        assert secret[:10] in listed.output  # the prefix, which `keys revoke` takes
        assert secret not in listed.output
        assert keys.hash_key(secret) not in listed.output

    assert "revoked 1 key(s)" in cli(config, "keys", "revoke", secrets[0][:10]).output
    assert "ops team" not in cli(config, "keys", "list").output
    assert "ops team" in cli(config, "keys", "list", "--all").output


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--expires-in", "30"], "use a number and a unit"),
        (["--expires-in", "0d"], "use a number and a unit"),
        (["--expires", "next week"], "not an ISO 8601 time"),
        (["--expires", "2001-01-01"], "already past"),
        (["--expires-in", "1d", "--expires", "2099-01-01"], "not both"),
    ],
)
def test_keys_create_refuses_a_bad_expiry(tmp_path: Path, options: list[str], message: str) -> None:
    config = upgraded(tmp_path, f"sqlite:///{tmp_path / 'keys.db'}")  # the same on any backend
    result = cli(config, "keys", "create", "--scope", "read", *options)
    assert result.exit_code == 2
    assert message in result.output
    assert "tw_" not in result.output
