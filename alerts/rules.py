"""Alert rules: when a model's results should wake somebody up, and how loudly.

A rule is checked after every detection run of its model (``no_telemetry`` on a timer too) on
a short summary of the latest runs (:class:`RunFacts`), never on raw telemetry, so checking is
cheap and the same whether the runs came from the scheduler, a manual run or a restart.

Kinds:

- ``drift``: the last ``consecutive`` runs of the monitor drifted: the run's status is
  ``drift`` (dataset level), or, with ``features``, one of those features drifted in each.
- ``performance``: a metric (realized, or the CBPE estimate with ``estimated``) is worse than
  ``below`` (for error metrics such as ``mae``: above it), or dropped by more than ``drop``
  (a fraction) relative to ``baseline``, the model's score when it was validated.
- ``quality``: at least ``min_problems`` data-quality checks failed in the last run
  (``checks`` restricts which).
- ``no_telemetry``: no record arrived for ``after_seconds`` (a dead module).

A firing alert notifies again every ``renotify_seconds``, and at once when it gets materially
worse (``escalate_factor``; see :mod:`monitor.alerting.escalation`). A drift rule with
``critical_share`` turns critical once that share of the tested features drifted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from monitor.vocabulary import NO_VERDICT, ResultKey, RunStatus

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")]
Kind = Literal["drift", "performance", "quality", "no_telemetry"]
Channel = Literal["email", "webhook", "alertmanager"]
# metrics where a larger value is worse (the others: larger is better)
ERROR_METRICS = frozenset({"log_loss", "expected_calibration_error", "mae", "rmse", "mape"})


class AlertRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    kind: Kind
    monitor: str | None = None  # whose runs count (default: the model's first monitor)
    severity: Literal["warning", "critical"] = "warning"
    # drift
    consecutive: int = Field(default=1, ge=1, le=1000)
    features: list[str] | None = None
    critical_share: float | None = Field(default=None, gt=0.0, le=1.0)  # then: critical
    # performance
    metric: str | None = None
    estimated: bool = False
    below: float | None = None
    drop: float | None = Field(default=None, gt=0.0, lt=1.0)
    baseline: float | None = None
    # quality
    checks: list[str] | None = None
    min_problems: int = Field(default=1, ge=1)
    # no_telemetry
    after_seconds: float | None = Field(default=None, gt=0)
    # delivery
    renotify_seconds: float | None = Field(default=4 * 3600, gt=0)  # None: notify once
    channels: list[Channel] | None = None  # default: every configured channel
    # notify at once when the drifted share, a feature's statistic or a metric's distance
    # beyond its threshold grows by this factor (new features and a higher severity always
    # count); None: only renotify_seconds
    escalate_factor: float | None = Field(default=1.5, gt=1.0)

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.kind == "performance":
            if self.metric is None:
                raise ValueError(f"rule {self.name!r}: a performance rule needs 'metric'")
            if self.below is None and self.drop is None:
                raise ValueError(f"rule {self.name!r}: give 'below' or 'drop' (with 'baseline')")
            if self.drop is not None and self.baseline is None:
                raise ValueError(f"rule {self.name!r}: 'drop' is relative to 'baseline'")
        elif self.kind == "no_telemetry" and self.after_seconds is None:
            raise ValueError(f"rule {self.name!r}: a no_telemetry rule needs 'after_seconds'")
        fields = {
            "drift": {"consecutive", "features", "critical_share"},
            "performance": {"metric", "estimated", "below", "drop", "baseline"},
            "quality": {"checks", "min_problems"},
            "no_telemetry": {"after_seconds"},
        }
        foreign = {f for kind, names in fields.items() if kind != self.kind for f in names}
        # a stored rule comes back with every field: only a value other than the default is
        # a mistake
        defaults = {name: info.default for name, info in type(self).model_fields.items()}
        stray = sorted(f for f in foreign if getattr(self, f) != defaults[f])
        if stray:
            raise ValueError(f"rule {self.name!r}: {stray} do not apply to a {self.kind} rule")
        return self


@dataclass(frozen=True)
class RunFacts:
    """What the rules need to know of one run."""

    run_id: int
    status: str
    finished_at: datetime | None
    drifted: frozenset[str] = frozenset()  # features that drifted
    metrics: dict[str, float] = field(default_factory=dict)  # realized; "estimated.x" too
    problems: frozenset[str] = frozenset()  # "feature:check" of failed quality checks


@dataclass(frozen=True)
class Verdict:
    firing: bool
    summary: str
    run_id: int | None = None
    metric: str | None = None
    threshold: float | None = None
    value: float | None = None


def check(rule: AlertRule, runs: list[RunFacts]) -> Verdict | None:
    """Is the rule firing on ``runs`` (newest first)? None when they cannot tell yet.

    Runs without a verdict (too few records, no reference, an error) are left out: a quiet
    night neither resolves an alert nor breaks a streak of drifted windows.
    """
    runs = [r for r in runs if r.status not in NO_VERDICT]
    if not runs:
        return None
    last = runs[0]
    if rule.kind == "drift":
        return _drift(rule, runs)
    if rule.kind == "performance":
        return _performance(rule, last)
    if rule.kind == "quality":
        failed = sorted(
            p for p in last.problems if rule.checks is None or p.split(":", 1)[1] in rule.checks
        )
        firing = len(failed) >= rule.min_problems
        summary = (
            f"{len(failed)} data-quality checks failed: {', '.join(failed[:5])}"
            if failed
            else "data quality within thresholds"
        )
        return Verdict(firing, summary, last.run_id)
    raise ValueError(f"rule kind {rule.kind!r} is checked by check_telemetry")


def _drift(rule: AlertRule, runs: list[RunFacts]) -> Verdict | None:
    # windows without a verdict neither break a streak nor resolve an alert
    recent = [r for r in runs if r.status not in NO_VERDICT]
    if len(recent) < rule.consecutive:
        return None  # too few windows to tell yet
    window = recent[: rule.consecutive]
    if rule.features:
        wanted = set(rule.features)
        hit = [bool(wanted & r.drifted) for r in window]
        what = f"features {', '.join(sorted(wanted))}"
    else:
        hit = [r.status == RunStatus.DRIFT for r in window]
        what = "the data set"
    firing = all(hit)
    # every drifted feature of the latest run, as the notification's table lists them
    named = sorted(wanted & window[0].drifted) if rule.features else sorted(window[0].drifted)
    others = sorted(window[0].drifted - set(named))
    listed = ", ".join(named) + (f" (also drifted: {', '.join(others)})" if others else "")
    where = (
        "the latest window" if rule.consecutive == 1 else f"{rule.consecutive} consecutive windows"
    )
    summary = (
        f"drift on {what} in {where}" + (f": {listed}" if named else "")
        if firing
        else f"{what}: no drift in the latest window"
        if not hit[0]
        else f"{what}: drift"
    )
    return Verdict(firing, summary, window[0].run_id)


def _performance(rule: AlertRule, last: RunFacts) -> Verdict | None:
    assert rule.metric is not None
    key = str(
        ResultKey.estimated(rule.metric) if rule.estimated else ResultKey.realized(rule.metric)
    )
    value = last.metrics.get(key)
    if value is None:
        return None
    worse_is_higher = rule.metric in ERROR_METRICS
    worse = "above" if worse_is_higher else "below"  # the side where the metric is worse
    label = ("estimated " if rule.estimated else "") + rule.metric
    if rule.below is not None:
        breached = value > rule.below if worse_is_higher else value < rule.below
        if breached:
            return Verdict(
                True,
                f"{label} {value:.3g} {worse} the threshold {rule.below:.3g}",
                last.run_id,
                rule.metric,
                rule.below,
                value,
            )
    threshold = rule.below
    if rule.drop is not None and rule.baseline is not None and rule.baseline != 0:
        change = (value - rule.baseline) / abs(rule.baseline)
        dropped = change if worse_is_higher else -change
        # the value where the drop begins: what a notice's threshold (and plot line) shows
        margin = rule.drop * abs(rule.baseline)
        limit = rule.baseline + margin if worse_is_higher else rule.baseline - margin
        threshold = limit if threshold is None else threshold
        if dropped > rule.drop:
            return Verdict(
                True,
                f"{label} {value:.3g} is {dropped * 100:.3g}% {worse} the baseline "
                f"{rule.baseline:.3g}",
                last.run_id,
                rule.metric,
                limit,
                value,
            )
    return Verdict(
        False, f"{label} {value:.3g} within bounds", last.run_id, rule.metric, threshold, value
    )


def check_telemetry(rule: AlertRule, last_record: datetime | None, now: datetime) -> Verdict | None:
    """The ``no_telemetry`` rule: None while the model never sent anything."""
    assert rule.after_seconds is not None
    if last_record is None:
        return None
    silent = now - last_record
    firing = silent > timedelta(seconds=rule.after_seconds)
    summary = (
        f"no telemetry for {silent.total_seconds() / 3600:.1f} h (since {last_record.isoformat()})"
        if firing
        else "telemetry arriving"
    )
    return Verdict(firing, summary)
