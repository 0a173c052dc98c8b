"""``tidewatch collect``: batch files (CSV, Parquet, NPZ) sent to a real server as telemetry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from monitor.cli import app
from monitor.db import keys
from monitor.server import BackgroundServer
from monitor.settings import Settings
from tests.conftest import SPEC

runner = CliRunner()
N = 1_234


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    with BackgroundServer(Settings(database_url=f"sqlite:///{tmp_path}/c.db", port=0)) as srv:
        with srv.app.state.tidewatch.sessions() as session:
            admin = keys.create_key(session, ["admin"])
        httpx.post(
            f"{srv.url}/api/v1/models", json=SPEC, headers={"Authorization": f"Bearer {admin}"}
        ).raise_for_status()
        yield srv.url, admin


def _columns() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    p = rng.uniform(size=N)
    return {
        "brightness": rng.normal(size=N),
        "site": rng.choice(np.array(["a", "b"]), size=N),
        "emb": rng.normal(size=(N, 3)).astype(np.float32),
        "prediction": np.where(p > 0.5, "copepod", "diatom"),
        "proba_copepod": p,
        "proba_diatom": 1 - p,
    }


def _write(kind: str, folder: Path) -> Path:
    cols = _columns()
    if kind == "npz":
        path = folder / "batch.npz"
        np.savez(path, **cols)
        return path
    flat = {k: v for k, v in cols.items() if k != "emb"}
    flat.update({f"emb_{j}": cols["emb"][:, j] for j in range(3)})
    table = pa.table(flat)
    if kind == "csv":
        path = folder / "batch.csv"
        pa_csv.write_csv(table, path)
    else:
        path = folder / "batch.parquet"
        pq.write_table(table, path)
    return path


def stored(url: str, admin: str) -> int:
    answer = httpx.get(
        f"{url}/api/v1/models/plankton", headers={"Authorization": f"Bearer {admin}"}
    )
    count: int = answer.json()["records"]
    return count


@pytest.mark.parametrize("kind", ["csv", "parquet", "npz"])
def test_collect_sends_every_record_once(
    kind: str, server: tuple[str, str], tmp_path: Path
) -> None:
    url, admin = server
    path = _write(kind, tmp_path)
    args = ["collect", "plankton", str(path), "--url", url, "--key", admin, "--batch-rows", "500"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert f"{N} records stored, 0 already there" in first.output
    again = runner.invoke(app, args)  # the same file twice: ids from its digest and row
    assert again.exit_code == 0, again.output
    assert f"0 records stored, {N} already there" in again.output
    assert stored(url, admin) == N


def test_collect_refuses_bad_files_and_keys(server: tuple[str, str], tmp_path: Path) -> None:
    url, admin = server
    bad = tmp_path / "bad.csv"
    bad.write_text("brightness,site\nbright,a\n")
    result = runner.invoke(app, ["collect", "plankton", str(bad), "--url", url, "--key", admin])
    assert result.exit_code == 1 and "422" in result.output and "brightness" in result.output
    good = _write("parquet", tmp_path)
    result = runner.invoke(app, ["collect", "plankton", str(good), "--url", url, "--key", "nope"])
    assert result.exit_code == 1 and "401" in result.output
    other = tmp_path / "batch.txt"
    other.write_text("x")
    result = runner.invoke(app, ["collect", "plankton", str(other), "--url", url, "--key", admin])
    assert result.exit_code == 2 and "unknown file type" in result.output
    assert stored(url, admin) == 0
