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

Each listed model's current version gets these monitors and rules: new ones are added,
changed ones replaced. Monitors and rules of a listed model that the file leaves out are kept
unless ``prune`` is asked for, so a file naming one monitor never deletes the others by
accident. :func:`plan_monitor_file` says what would change (:class:`Change`, one per monitor or
rule) before :func:`apply_monitor_file` changes it. The whole file is validated before anything
changes, so one bad monitor leaves every model as it was.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

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


Action = Literal["add", "change", "remove", "keep"]


@dataclass(frozen=True)
class Change:
    """One difference between a model's stored configuration and the file.

    ``keep``: only in the database and left there, because ``prune`` was not asked for.
    """

    model: str
    item: Literal["monitor", "alert rule", "alert recipients"]
    name: str
    action: Action
    fields: tuple[str, ...] = ()  # what differs, for a change

    def describe(self) -> str:
        """One line: ``~ monitor hourly: window, schedule``."""
        sign = {"add": "+", "change": "~", "remove": "-", "keep": "="}[self.action]
        what = f"{sign} {self.item} {self.name}"
        if self.action == "change" and self.fields:
            return f"{what}: {', '.join(self.fields)} changed"
        if self.action == "keep":
            return f"{what}: not in the file, kept (--prune removes it)"
        return f"{what}: {'added' if self.action == 'add' else 'removed'}"


@dataclass(frozen=True)
class Plan:
    """What applying a file does: every change, and the specs of the models that change."""

    changes: list[Change]
    specs: list[ModelSpec]


Item = TypeVar("Item", MonitorConfig, AlertRule)


def _merge(stored: Sequence[Item], wanted: Sequence[Item], prune: bool) -> list[Item]:
    """The file's items in its order, then (without ``prune``) the stored ones it left out."""
    named = {item.name for item in wanted}
    kept: list[Item] = [] if prune else [item for item in stored if item.name not in named]
    return list(wanted) + kept


def _diff(
    model: str,
    item: Literal["monitor", "alert rule"],
    old: Sequence[Item],
    new: Sequence[Item],
    in_file: set[str],
) -> list[Change]:
    """Compares validated items by name (both fully filled in, so defaults never differ)."""
    before = {o.name: o.model_dump(mode="json") for o in old}
    after = {n.name: n.model_dump(mode="json") for n in new}
    changes = []
    for name, dump in after.items():
        if name not in before:
            changes.append(Change(model, item, name, "add"))
        elif name not in in_file:
            changes.append(Change(model, item, name, "keep"))
        elif dump != before[name]:
            differ = sorted(
                k for k in dump.keys() | before[name].keys() if dump.get(k) != before[name].get(k)
            )
            changes.append(Change(model, item, name, "change", tuple(differ)))
    changes += [Change(model, item, name, "remove") for name in before if name not in after]
    return changes


def plan_monitor_file(session: Session, config: MonitorFile, prune: bool = False) -> Plan:
    """What the file changes; ValueError for an unknown model or an invalid result."""
    changes: list[Change] = []
    specs = []
    for entry in config.models:
        registered = get_model(session, entry.name)
        if registered is None:
            raise ValueError(f"unknown model {entry.name!r}: register it before its monitors")
        old = registered.spec
        payload = old.model_dump(mode="json")
        monitors = _merge(old.monitors, entry.monitors, prune)
        payload["monitors"] = [m.model_dump(mode="json") for m in monitors]
        if entry.alerts is not None:
            rules = _merge(old.alerts, entry.alerts, prune)
            payload["alerts"] = [r.model_dump(mode="json", exclude_unset=True) for r in rules]
        if entry.alert_recipients is not None:
            payload["alert_recipients"] = entry.alert_recipients
        try:
            new = ModelSpec.model_validate(payload)
        except ValidationError as exc:
            raise ValueError(f"model {entry.name!r}: {describe(exc)}") from None
        found = _diff(
            new.name, "monitor", old.monitors, new.monitors, {m.name for m in entry.monitors}
        )
        if entry.alerts is not None:
            found += _diff(
                new.name, "alert rule", old.alerts, new.alerts, {r.name for r in entry.alerts}
            )
        if new.alert_recipients != old.alert_recipients:
            shown = ", ".join(new.alert_recipients) or "(none)"
            found.append(Change(new.name, "alert recipients", shown, "change"))
        changes += found
        if any(c.action != "keep" for c in found):
            specs.append(new)
    return Plan(changes, specs)


def apply_monitor_file(session: Session, plan: Plan) -> list[str]:
    """Store the plan's specs; returns the models changed."""
    for spec in plan.specs:
        upsert_model(session, spec)
    return [spec.name for spec in plan.specs]
