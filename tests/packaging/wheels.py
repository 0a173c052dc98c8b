"""Building the two distributions as ``make dist`` does, from a copy of the tree (so a test
never leaves build/ or egg-info folders in the checkout), without the network."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# what the server's build reads: its pyproject, README, licence and packages
SERVER_PARTS = ("pyproject.toml", "README.md", "LICENSE", "monitor", "detectors")
SERVER_PARTS += ("dashboards", "alerts")
PIP_WHEEL = (sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q")
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "build", "*.egg-info")


def _build(source: Path, out: Path) -> None:
    """A wheel of the project in ``source``, built with this environment's setuptools."""
    done = subprocess.run(
        [*PIP_WHEEL, "-w", str(out), str(source)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def client_source(tmp: Path) -> Path:
    """A copy of what the client's build reads: the collectors/ folder."""
    src = tmp / "client-src" / "collectors"
    shutil.copytree(ROOT / "collectors", src, ignore=_IGNORE)
    return src


def server_source(tmp: Path) -> Path:
    """A copy of what the server's build reads."""
    src = tmp / "server-src"
    src.mkdir()
    for part in SERVER_PARTS:
        path = ROOT / part
        if path.is_dir():
            shutil.copytree(path, src / part, ignore=_IGNORE)
        else:
            shutil.copy2(path, src / part)
    return src


def client_wheel(tmp: Path) -> Path:
    _build(client_source(tmp), tmp / "client-dist")
    (wheel,) = (tmp / "client-dist").glob("tidewatch_client-*.whl")
    return wheel


def server_wheel(tmp: Path) -> Path:
    _build(server_source(tmp), tmp / "server-dist")
    (wheel,) = (tmp / "server-dist").glob("tidewatch_server-*.whl")
    return wheel
