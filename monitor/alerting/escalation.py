"""Escalation: a firing alert that gets materially worse notifies again at once.

Without it an alert that fired on a borderline window stays quiet (until ``renotify_seconds``)
while the real drift arrives a minute later. After every run that keeps an alert firing, the
latest run's :class:`Standing` is compared with the notices the alert already sent, read back
from the outbox (``alert_outbox.payload``), so no column keeps a second copy. Worse means:

- its severity rose (the rule's ``severity`` was raised, or a drift rule's ``critical_share``
  of the tested features drifted);
- a feature drifted that no notice named yet;
- the drifted share of the tested features grew by the rule's ``escalate_factor`` (1.5) over
  the largest share noticed so far;
- a feature's drift strength grew by that factor over the largest noticed for it: its effect
  size in its own units (``effect["size"]``: the mean's shift in reference sd, the total
  variation of the shares, ...) where the notices carry one, else the test statistic (both
  comparable within one feature and detector; a notice is compared on the measure it has);
- a performance metric's distance beyond its threshold grew by that factor.

Compared with the peak of all earlier notices, not only the last one, so a window that swings
in and out (a feature drifting, not drifting, drifting again) does not mail at every swing.
Each notice lists what got worse since the last one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.effect_text import feature_label
from alerts.notification import Notification
from alerts.rules import AlertRule, Verdict
from monitor.db.tables import DetectionResult, DetectionRun, OutboxMessage

RANK = {"warning": 0, "critical": 1}
LISTED = 5  # new features named in a notice; the rest are "..."


@dataclass(frozen=True)
class Standing:
    """How bad an alert is: what one notice said, or what the latest run says."""

    severity: str
    drifted: dict[str, float | None]  # feature: its drift strength (the test statistic)
    share: float | None = None  # drifted share of the tested features
    value: float | None = None  # performance rules: the metric and its threshold
    threshold: float | None = None
    effects: dict[str, float] = field(default_factory=dict)  # feature: its effect size

    @classmethod
    def of(cls, note: Notification) -> Standing:
        value = note.details.get("value")
        return cls(
            note.severity,
            {d.feature: d.statistic for d in note.drifted},
            note.drifted_share,
            float(value) if isinstance(value, int | float) else None,
            note.threshold,
            {d.feature: size for d in note.drifted if (size := _size(d.effect)) is not None},
        )


def _size(effect: Any) -> float | None:
    size = effect.get("size") if isinstance(effect, dict) else None
    return float(size) if isinstance(size, int | float) else None


def drifted(session: Session, run_id: int) -> tuple[dict[str, float | None], dict[str, float]]:
    """The drifted features of a run with their statistics, most drifted first (as notices
    list them), and their effect sizes where known."""
    rows = sorted(
        session.execute(
            select(
                DetectionResult.feature,
                DetectionResult.statistic,
                DetectionResult.p_adjusted,
                DetectionResult.effect,
            ).where(DetectionResult.run_id == run_id, DetectionResult.drift.is_(True))
        ),
        key=lambda r: (r.p_adjusted if r.p_adjusted is not None else 1.0, -(r.statistic or 0.0)),
    )
    sizes = {r.feature: size for r in rows if (size := _size(r.effect)) is not None}
    return {r.feature: r.statistic for r in rows}, sizes


def standing(session: Session, rule: AlertRule, verdict: Verdict) -> Standing:
    """The latest run's standing, with the severity it earns under ``rule``."""
    features: dict[str, float | None] = {}
    sizes: dict[str, float] = {}
    share = None
    run = session.get(DetectionRun, verdict.run_id) if verdict.run_id is not None else None
    if run is not None and rule.kind == "drift":
        (features, sizes), share = drifted(session, run.id), run.drifted_share
    severity = rule.severity
    if rule.critical_share is not None and share is not None and share >= rule.critical_share:
        severity = "critical"
    return Standing(severity, features, share, verdict.value, verdict.threshold, sizes)


def notices(session: Session, alert_id: int) -> list[Standing]:
    """What the alert's notices said, oldest first (one per channel: repeats change nothing)."""
    payloads = session.scalars(
        select(OutboxMessage.payload)
        .where(OutboxMessage.alert_id == alert_id)
        .order_by(OutboxMessage.id)
    )
    return [Standing.of(Notification.from_json(p)) for p in payloads]


def worse(before: list[Standing], now: Standing, factor: float) -> list[str]:
    """What is materially worse in ``now`` than in the notices ``before`` (oldest first), in
    words for the next notice; empty when nothing is (or nothing was noticed yet)."""
    if not before:
        return []
    last = before[-1]
    changes = []
    if RANK[now.severity] > max(RANK[b.severity] for b in before):
        changes.append(f"severity {last.severity} -> {now.severity}")
    seen = {feature for b in before for feature in b.drifted}
    new = [feature for feature in now.drifted if feature not in seen]
    if new:
        names = ", ".join(new[:LISTED]) + (", ..." if len(new) > LISTED else "")
        changes.append(f"{len(new)} more feature{'s' if len(new) > 1 else ''} drifted ({names})")
    shares = [b.share for b in before if b.share is not None]
    if now.share is not None and shares and _grown(max(shares), now.share, factor):
        was = last.share if last.share is not None else max(shares)
        changes.append(f"drifted share {was:.0%} -> {now.share:.0%}")
    for feature, strength in now.drifted.items():
        changes += _stronger(feature, strength, now.effects.get(feature), before, factor)
    if now.value is not None and now.threshold is not None:
        gaps = [
            abs(b.value - now.threshold)
            for b in before
            if b.value is not None and b.threshold == now.threshold
        ]
        if gaps and _grown(max(gaps), abs(now.value - now.threshold), factor):
            was = last.value if last.value is not None else now.value
            changes.append(f"value {was:.3g} -> {now.value:.3g} (threshold {now.threshold:.3g})")
    return changes


def _stronger(
    feature: str, statistic: float | None, size: float | None, before: list[Standing], factor: float
) -> list[str]:
    """The feature's growth past ``factor``, on its effect size when both now and an earlier
    notice have one, else on its test statistic (never one measure against the other)."""
    sized = [s for b in before if (s := b.effects.get(feature)) is not None]
    if size is not None and sized:
        if not _grown(max(sized), size, factor):
            return []
        was = next(b.effects[feature] for b in reversed(before) if feature in b.effects)
        return [f"{feature_label(feature)} effect size {was:.3g} -> {size:.3g}"]
    noticed = [s for b in before if (s := b.drifted.get(feature)) is not None]
    if statistic is None or not noticed or not _grown(max(noticed), statistic, factor):
        return []
    was = next(s for b in reversed(before) if (s := b.drifted.get(feature)) is not None)
    return [f"{feature_label(feature)} statistic {was:.3g} -> {statistic:.3g}"]


def severity_rose(before: list[Standing], now: Standing) -> bool:
    return bool(before) and RANK[now.severity] > max(RANK[b.severity] for b in before)


def _grown(peak: float, now: float, factor: float) -> bool:
    return now > peak and now >= factor * peak
