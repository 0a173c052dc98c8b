"""The built client wheel in a fresh environment, as a deployed module would install it.

The client environment gets the wheel (and so the newest httpx and numpy), then pandas 3, as a
module's own environment might have; never torch. Records sent from there reach a real
``tidewatch serve`` running in the server's environment. Needs the package index (PyPI) for
numpy, pandas and httpx: under CI=true it fails rather than skips without it.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from tests.conftest import SPEC, service_missing
from tests.integration.serve_process import tidewatch_serve
from tests.packaging.wheels import client_wheel

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SERVER_ONLY = ("torch", "sqlalchemy", "fastapi", "evidently", "pydantic", "scipy")

# what the module runs: log records, close, and report what this environment can import
MODULE_SCRIPT = textwrap.dedent(
    """
    import importlib.util, json, sys
    import collectors
    from collectors import TelemetryClient

    url, key, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    client = TelemetryClient(url, "plankton", key, spool_dir=False)
    for i in range(n):
        client.log(
            {"brightness": i / n, "site": "a", "emb": [0.1, 0.2, 0.3]},
            {"label": "copepod", "probabilities": [0.8, 0.2]},
            id=f"from-module-{i}",
        )
    delivered = client.close()
    found = {m: importlib.util.find_spec(m) is not None for m in sys.argv[4:]}
    print(json.dumps({"delivered": delivered, "stats": client.stats, "found": found,
                      "python": sys.version_info[:2], "numpy": __import__("numpy").__version__}))
    """
)


def _run(*args: str | Path, timeout: float = 600) -> str:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return done.stdout


def _environment(python: str, where: Path, *requirements: str | Path) -> Path:
    """A fresh virtual environment with ``requirements`` from the package index."""
    _run(python, "-m", "venv", where)
    pip = where / "bin" / "pip"
    try:
        _run(pip, "install", "--quiet", "--disable-pip-version-check", *requirements)
    except AssertionError as exc:
        if "No matching distribution" in str(exc) or "Could not find" in str(exc):
            service_missing("the package index", exc)
        raise
    return where


def _packages(env: Path) -> list[str]:
    listed = json.loads(_run(env / "bin" / "pip", "list", "--format", "json"))
    return sorted(p["name"].lower() for p in listed)


def _megabytes(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def _send(env: Path, url: str, key: str, n: int) -> dict:  # type: ignore[type-arg]
    script = env / "module.py"
    script.write_text(MODULE_SCRIPT)
    out = _run(env / "bin" / "python", script, url, key, str(n), *SERVER_ONLY)
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _stored(url: str, key: str) -> int:
    answer = httpx.get(f"{url}/api/v1/models", headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200, answer.text
    (model,) = [m for m in answer.json() if m["name"] == "plankton"]
    return int(model["records"])


def test_client_wheel_in_a_fresh_environment_sends_to_a_real_server(
    tmp_path: Path, pg_url: str
) -> None:
    wheel = client_wheel(tmp_path)
    env = _environment(sys.executable, tmp_path / "module-env", wheel)
    bare_packages, bare_mb = _packages(env), _megabytes(env)
    # the module's own stack: the newest numpy and pandas 3, installed beside the client
    _run(env / "bin" / "pip", "install", "--quiet", "--upgrade", "numpy", "pandas>=3")
    with_pandas = _packages(env)
    server_env = Path(sys.prefix)
    print(
        f"\nclient environment: {len(bare_packages)} packages, {bare_mb:.0f} MB "
        f"(with pandas 3: {len(with_pandas)} packages, {_megabytes(env):.0f} MB); "
        f"server environment: {len(_packages(server_env))} packages, "
        f"{_megabytes(server_env):.0f} MB"
    )
    assert len(bare_packages) <= 15, bare_packages
    assert bare_mb < 150
    assert "pandas" in with_pandas and not set(SERVER_ONLY) & set(with_pandas)

    with tidewatch_serve(pg_url, tmp_path / "serve.log") as server:
        key = server.cli("keys", "create", "--scope", "admin")
        headers = {"Authorization": f"Bearer {key}"}
        assert httpx.post(f"{server.url}/api/v1/models", json=SPEC, headers=headers).is_success
        report = _send(env, server.url, key, 120)
        assert report["delivered"] is True, report
        assert report["stats"]["sent"] == 120, report
        assert not any(report["found"].values()), report["found"]  # no server stack there
        assert int(report["numpy"].split(".")[0]) >= 2
        assert _stored(server.url, key) == 120


def _python39() -> str | None:
    # pyenv's interpreters directly: its shims answer only for the selected versions
    pyenv = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.9.*/bin/python3.9")))
    if pyenv:
        return pyenv[-1]
    found = shutil.which("python3.9")
    if found and subprocess.run([found, "--version"], capture_output=True).returncode == 0:
        return found
    return None


def test_client_runs_on_python_3_9(tmp_path: Path, pg_url: str) -> None:
    """Many module images are old: the client installs and sends on Python 3.9."""
    python = _python39()
    if python is None:
        service_missing("a Python 3.9 interpreter", "neither python3.9 nor pyenv's 3.9")
        return
    wheel = client_wheel(tmp_path)
    env = _environment(python, tmp_path / "py39-env", f"{wheel}[schema]")
    _run(env / "bin" / "python", "-c", "from collectors import Record; Record(id='x')")
    with tidewatch_serve(pg_url, tmp_path / "serve.log") as server:
        key = server.cli("keys", "create", "--scope", "admin")
        headers = {"Authorization": f"Bearer {key}"}
        assert httpx.post(f"{server.url}/api/v1/models", json=SPEC, headers=headers).is_success
        report = _send(env, server.url, key, 30)
        assert report["python"] == [3, 9] and report["delivered"] is True, report
        assert _stored(server.url, key) == 30
