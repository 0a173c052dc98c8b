"""What one alert notification says, independent of the channel that carries it.

Built by the alert lifecycle (``alerts.lifecycle``) when an alert fires, is re-notified or
resolves, stored as JSON in the outbox, and rendered by each channel: e-mail (``alerts.email``),
webhook (``alerts.webhook``), Alertmanager (``alerts.alertmanager``). It carries the numbers
the plots need (histograms of the most drifted features, the performance trend), so a channel
never reads the database.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

State = Literal["firing", "resolved"]
Severity = Literal["warning", "critical"]


@dataclass(frozen=True)
class Histogram:
    """Counts over shared bin edges (``len(edges) == len(counts) + 1``)."""

    edges: list[float]
    counts: list[float]


@dataclass(frozen=True)
class FeatureDrift:
    """One drifted feature of the run that fired: how strongly, and both distributions."""

    feature: str
    detector: str
    statistic: float | None
    p_value: float | None  # after the monitor's correction
    reference: Histogram | None = None  # numeric features: reference against current
    current: Histogram | None = None
    effect: dict[str, Any] | None = None  # how much it moved, in its own units (effect_text)


@dataclass(frozen=True)
class TrendPoint:
    at: datetime
    value: float


@dataclass(frozen=True)
class Notification:
    alert_id: int
    rule: str  # the rule's name, e.g. "drift-3-windows"
    kind: str  # drift | performance | quality | no_telemetry
    model: str
    version: str
    severity: Severity
    state: State
    summary: str  # one line: what happened
    started_at: datetime  # when the alert began firing
    resolved_at: datetime | None = None
    run_id: int | None = None  # the latest run of the alert (for the report link)
    drifted: list[FeatureDrift] = field(default_factory=list)  # most drifted first
    metric: str | None = None  # performance alerts: the metric and its trend
    threshold: float | None = None
    trend: list[TrendPoint] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)  # kind-specific facts
    dashboard_url: str | None = None
    report_url: str | None = None
    recipients: list[str] = field(default_factory=list)  # e-mail addresses for this model
    drifted_share: float | None = None  # drift alerts: drifted share of the tested features
    # what got worse since the alert's last notice ("2 more features drifted (a, b)"); a
    # firing notice with changes is an escalation
    changes: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=_default, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Notification:
        data = json.loads(text)
        for key in ("started_at", "resolved_at"):
            if data[key] is not None:
                data[key] = datetime.fromisoformat(data[key])
        data["drifted"] = [
            FeatureDrift(
                **{
                    **d,
                    "reference": d["reference"] and Histogram(**d["reference"]),
                    "current": d["current"] and Histogram(**d["current"]),
                }
            )
            for d in data["drifted"]
        ]
        data["trend"] = [
            TrendPoint(datetime.fromisoformat(p["at"]), p["value"]) for p in data["trend"]
        ]
        return cls(**data)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON: {value!r}")
