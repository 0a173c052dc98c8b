"""The command line: db, keys, models, reference upload, detect."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from monitor.cli import app
from monitor.db.migrate import head_revision
from monitor.server import BackgroundServer
from monitor.settings import Settings
from tests.conftest import SPEC

runner = CliRunner()


@pytest.fixture
def config(tmp_path: Path, db_url: str) -> Path:
    path = tmp_path / "tidewatch.toml"
    path.write_text(f'database_url = "{db_url}"\ndevice = "cpu"\n')
    return path


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_db_keys_models_reference_detect(config: Path, tmp_path: Path, db_url: str) -> None:
    assert f"database at revision {head_revision()}" in invoke(
        "db", "upgrade", "--config", str(config)
    )
    key = invoke("keys", "create", "--scope", "admin", "--config", str(config)).strip()
    assert key.startswith("tw_")
    spec_file = tmp_path / "model.json"
    spec_file.write_text(json.dumps(SPEC))
    assert "created plankton version 1" in invoke(
        "models", "create", str(spec_file), "--config", str(config)
    )
    assert "plankton" in invoke("models", "list", "--config", str(config))

    rng = np.random.default_rng(0)
    csv = tmp_path / "ref.csv"
    lines = ["brightness,site,emb_0,emb_1,emb_2"]
    lines += [f"{rng.normal():.4f},a,0.1,0.2,0.3" for _ in range(200)]
    csv.write_text("\n".join(lines) + "\n")
    with BackgroundServer(Settings(database_url=db_url, port=0)) as server:
        out = invoke("reference", "upload", "plankton", str(csv), "--url", server.url, "--key", key)
        assert "200 rows stored" in out
        refused = runner.invoke(
            app,
            ["reference", "upload", "plankton", str(csv), "--url", server.url, "--key", "tw_bad"],
        )
        assert refused.exit_code == 1 and "401" in refused.output
    out = invoke("detect", "plankton", "--config", str(config))
    assert "insufficient_data" in out
    assert "purged 0" in invoke("db", "purge", "--config", str(config))


def test_cli_errors_are_clear(config: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**SPEC, "features": []}))
    result = runner.invoke(app, ["models", "create", str(bad), "--config", str(config)])
    assert result.exit_code == 2 and "invalid model spec" in result.output
    result = runner.invoke(app, ["keys", "create", "--scope", "root", "--config", str(config)])
    assert result.exit_code == 2 and "invalid scope" in result.output
    invoke("db", "upgrade", "--config", str(config))
    result = runner.invoke(app, ["detect", "ghost", "--config", str(config)])
    assert result.exit_code == 1 and "unknown model" in result.output
    broken = tmp_path / "broken.toml"
    broken.write_text("port = 'x'\n")
    result = runner.invoke(app, ["db", "upgrade", "--config", str(broken)])
    assert result.exit_code == 2 and "invalid settings" in result.output
