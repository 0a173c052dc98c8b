"""The two distributions: what each wheel holds and requires, and that their versions agree."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

import collectors
import monitor
from tests.packaging.wheels import ROOT, client_source, client_wheel, server_source, server_wheel


def _pyproject(path: Path) -> dict:  # type: ignore[type-arg]
    return tomllib.loads(path.read_text())


def _metadata(wheel: Path) -> tuple[list[str], dict[str, list[str]]]:
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        (meta,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        message = Parser().parsestr(z.read(meta).decode())
    fields: dict[str, list[str]] = {}
    for key, value in message.items():
        fields.setdefault(key, []).append(value)
    return names, fields


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("wheels")
    return client_wheel(tmp), server_wheel(tmp)


def test_package_data_globs_name_files_that_exist() -> None:
    data = _pyproject(ROOT / "pyproject.toml")["tool"]["setuptools"]["package-data"]
    for package, globs in data.items():
        for pattern in globs:
            assert list((ROOT / package).glob(pattern)), f"{package}: {pattern} names no file"


def test_versions_agree() -> None:
    server = _pyproject(ROOT / "pyproject.toml")["project"]
    client = _pyproject(ROOT / "collectors" / "pyproject.toml")["project"]
    assert server["name"] == "tidewatch-server" and client["name"] == "tidewatch-client"
    assert server["version"] == client["version"] == monitor.__version__ == collectors.__version__
    pins = [d for d in server["dependencies"] if d.startswith("tidewatch-client")]
    assert pins == [f"tidewatch-client[schema]=={client['version']}"]


def test_client_wheel_is_collectors_only_with_light_requirements(
    wheels: tuple[Path, Path],
) -> None:
    names, meta = _metadata(wheels[0])
    packages = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert packages == {"collectors"}
    assert "collectors/py.typed" in names and "collectors/deepaas.py" in names
    # the folder's own build files stay out of the package
    assert "collectors/pyproject.toml" not in names and "collectors/README.md" not in names
    assert meta["Name"] == ["tidewatch-client"]
    assert meta["Requires-Python"] == [">=3.9"]
    required = sorted(r for r in meta.get("Requires-Dist", []) if "extra ==" not in r)
    assert required == ["httpx>=0.23", "numpy>=1.21"]  # no upper caps
    assert set(meta["Provides-Extra"]) == {"image", "metrics", "schema"}


def test_server_wheel_holds_the_service_and_its_data(wheels: tuple[Path, Path]) -> None:
    names, meta = _metadata(wheels[1])
    packages = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert packages == {"monitor", "detectors", "dashboards", "alerts"}
    migrations = sorted(p.name for p in (ROOT / "monitor/db/migrations/versions").glob("*.py"))
    for name in migrations:
        assert f"monitor/db/migrations/versions/{name}" in names
    assert "monitor/db/migrations/env.py" in names
    assert "monitor/db/migrations/script.py.mako" in names
    assert "alerts/templates/email.html.j2" in names
    assert "monitor/api/templates/overview.html.j2" in names  # the browser's pages
    assert meta["Name"] == ["tidewatch-server"]
    assert f"tidewatch-client[schema]=={monitor.__version__}" in meta["Requires-Dist"]
    with zipfile.ZipFile(wheels[1]) as z:
        (entry,) = [n for n in names if n.endswith("entry_points.txt")]
        assert "tidewatch = monitor.cli:main" in z.read(entry).decode()


@pytest.mark.integration
@pytest.mark.slow
def test_make_dist_builds_both_sdists_and_wheels(tmp_path: Path) -> None:
    """What ``make dist`` runs: ``python -m build`` (isolated: setuptools from the package
    index) on each project; the wheel is built from the sdist, so the sdist is complete."""
    out = tmp_path / "dist"
    for source in (client_source(tmp_path), server_source(tmp_path)):
        done = subprocess.run(
            [sys.executable, "-m", "build", "--outdir", str(out), str(source)],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    version = monitor.__version__
    built = sorted(p.name for p in out.iterdir())
    assert built == sorted(
        [
            f"tidewatch_client-{version}-py3-none-any.whl",
            f"tidewatch_client-{version}.tar.gz",
            f"tidewatch_server-{version}-py3-none-any.whl",
            f"tidewatch_server-{version}.tar.gz",
        ]
    )
    with tarfile.open(out / f"tidewatch_client-{version}.tar.gz") as sdist:
        names = sdist.getnames()
    assert f"tidewatch_client-{version}/py.typed" in names
    assert f"tidewatch_client-{version}/README.md" in names
