"""deploy/kubernetes: the kustomization, the Deployments, Services, PodDisruptionBudget and
ServiceMonitor, checked without a cluster (``kubectl kustomize`` where kubectl is installed).
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

import yaml

from tests.conftest import service_missing
from tests.deploy.bundle_helpers import (
    API_PORT,
    DEPLOY,
    METRICS_PORT,
    assert_settings,
    load_yaml,
    settings_from_env,
)

KUBERNETES = DEPLOY / "kubernetes"


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
