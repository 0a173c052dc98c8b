"""Monitors from a TOML (or JSON) file: the configuration an operator keeps in version control.

    [[models]]
    name = "plankton"

    [[models.monitors]]
    name = "hourly"
    window = { type = "tumbling", by = "time", seconds = 3600, delay_seconds = 600 }
    schedule = { every = 300 }
    detectors = { numeric = "ks", categorical = "chi2" }

    [[models.alerts]]
    name = "drift-3-hours"
    kind = "drift"
    monitor = "hourly"
    consecutive = 3

Each listed model's current version gets exactly these monitors. The whole file is validated
before anything changes, so one bad monitor leaves every model as it was.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.orm import Session

from alerts.rules import AlertRule
from monitor.db.models import get_model, upsert_model
from monitor.spec.errors import describe
from monitor.spec.model import ModelSpec, MonitorConfig, Name


class ModelMonitors(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    monitors: list[MonitorConfig] = Field(min_length=1)
    # alert rules and the e-mail recipients of this model (left as they are when absent)
    alerts: list[AlertRule] | None = None
    alert_recipients: list[str] | None = None


class MonitorFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    models: list[ModelMonitors] = Field(min_length=1)


def read_monitor_file(path: Path) -> MonitorFile:
    """Parse and validate; ValueError with the file's name and the reason otherwise."""
    text = path.read_text()
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
        return MonitorFile.model_validate(data)
    except ValidationError as exc:
        raise ValueError(f"{path}: {describe(exc)}") from None
    except ValueError as exc:  # malformed JSON or TOML
        raise ValueError(f"{path}: {exc}") from None


def apply_monitor_file(session: Session, config: MonitorFile) -> list[str]:
    """Give each model its monitors; returns the models changed. Unknown models are an error."""
    specs = []
    for entry in config.models:
        registered = get_model(session, entry.name)
        if registered is None:
            raise ValueError(f"unknown model {entry.name!r}: register it before its monitors")
        payload = registered.spec.model_dump(mode="json")
        payload["monitors"] = [m.model_dump(mode="json") for m in entry.monitors]
        if entry.alerts is not None:
            payload["alerts"] = [
                r.model_dump(mode="json", exclude_unset=True) for r in entry.alerts
            ]
        if entry.alert_recipients is not None:
            payload["alert_recipients"] = entry.alert_recipients
        try:
            specs.append(ModelSpec.model_validate(payload))
        except ValidationError as exc:
            raise ValueError(f"model {entry.name!r}: {describe(exc)}") from None
    for spec in specs:
        upsert_model(session, spec)
    return [spec.name for spec in specs]
