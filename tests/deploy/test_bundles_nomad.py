"""deploy/nomad: the Nomad job's groups, tasks, services, checks and secrets, parsed with
python-hcl2 (skipped without it), checked without a cluster.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from tests.conftest import service_missing
from tests.deploy.bundle_helpers import (
    API_PORT,
    DEPLOY,
    METRICS_PORT,
    assert_settings,
    settings_from_env,
)

NOMAD = DEPLOY / "nomad" / "tidewatch.nomad.hcl"


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
