"""Shared checks of the deploy/ bundles (issue #8), used by the ``test_bundles_*`` modules.

What the bundles must agree on: every ``TIDEWATCH_*`` variable is a setting of
:class:`monitor.settings.Settings` and its value validates; probes, health checks and scrape
paths are routes of the app (the ``answers`` fixture of ``conftest.py``); container ports,
Service ports and metrics ports match; compose's service names are the ones
``deploy/prometheus/prometheus.yml`` scrapes; mounted folders exist.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from monitor.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

PREFIX = "TIDEWATCH_"
# read by load_settings(), not a field
NOT_FIELDS = {"TIDEWATCH_CONFIG"}
API_PORT = 8000
METRICS_PORT = 9464


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


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
