"""What an alert notice says: the summary, the drifted features with their histograms, the
performance trend, and the links (dashboard, signed report link of the alert's latest run).

Built in the transaction that changes the alert and stored as JSON in the outbox, so a channel
never reads the database.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.notification import FeatureDrift, Histogram, Notification, TrendPoint
from alerts.rules import AlertRule, Verdict
from monitor.alerting.report_links import report_url
from monitor.data.arrays import table_columns
from monitor.data.layout import from_bytes
from monitor.db.models import RegisteredModel
from monitor.db.references import get_reference
from monitor.db.tables import Alert, DetectionResult, DetectionRun, PerformanceResult
from monitor.runs.windows import load_span, window_span
from monitor.settings import Settings
from monitor.vocabulary import ResultKey

MAX_PLOTTED = 3
TREND_RUNS = 30


def notification(
    session: Session,
    settings: Settings,
    registered: RegisteredModel,
    rule: AlertRule,
    alert: Alert,
    verdict: Verdict,
    *,
    now: datetime,
    changes: list[str] | None = None,
) -> Notification:
    """What a notice of ``alert`` says, about its latest run (``alert.run_id``), so a link
    opens the window that made the latest notice, not the one that first fired."""
    spec, s = registered.spec, settings
    run = session.get(DetectionRun, alert.run_id) if alert.run_id else None
    drifted = _drifted(session, registered, run) if run is not None else []
    trend: list[TrendPoint] = []
    if rule.kind == "performance" and rule.metric is not None and run is not None:
        trend = _trend(session, registered, run.monitor, rule)
    dashboard = (
        f"{s.grafana_url.rstrip('/')}/d/tidewatch-model?var-model={spec.name}"
        f"&var-version={spec.version}"
        if s.grafana_url
        else None
    )
    report = (
        report_url(
            s.public_url,
            spec.name,
            run.id,
            s.report_link_secret,
            s.report_link_ttl_seconds,
            now=now.timestamp(),  # the link's life starts with the mail
        )
        if s.public_url and run is not None
        else None
    )
    return Notification(
        alert_id=alert.id,
        rule=rule.name,
        kind=rule.kind,
        model=spec.name,
        version=spec.version,
        # the rule's, or higher once the alert escalated
        severity="critical" if alert.severity == "critical" else rule.severity,
        state="resolved" if alert.state == "resolved" else "firing",
        summary=verdict.summary,
        started_at=alert.started_at,
        resolved_at=alert.resolved_at,
        run_id=run.id if run is not None else None,
        drifted=drifted,
        metric=rule.metric,
        threshold=verdict.threshold,
        trend=trend,
        details={"value": verdict.value} if verdict.value is not None else {},
        dashboard_url=dashboard,
        report_url=report,
        recipients=list(spec.alert_recipients),
        drifted_share=run.drifted_share if run is not None and rule.kind == "drift" else None,
        changes=list(changes or []),
    )


def _drifted(
    session: Session, registered: RegisteredModel, run: DetectionRun
) -> list[FeatureDrift]:
    rows = list(
        session.scalars(
            select(DetectionResult).where(
                DetectionResult.run_id == run.id, DetectionResult.drift.is_(True)
            )
        )
    )
    # most drifted first: smallest adjusted p-value, then largest statistic
    rows.sort(
        key=lambda r: (r.p_adjusted if r.p_adjusted is not None else 1.0, -(r.statistic or 0.0))
    )
    histograms = _histograms(session, registered, run, [r.feature for r in rows[:MAX_PLOTTED]])
    none: tuple[Histogram | None, Histogram | None] = (None, None)
    return [
        FeatureDrift(
            r.feature,
            r.method,
            r.statistic,
            r.p_adjusted,
            reference=histograms.get(r.feature, none)[0],
            current=histograms.get(r.feature, none)[1],
            effect=r.effect,
        )
        for r in rows
    ]


def _histograms(
    session: Session, registered: RegisteredModel, run: DetectionRun, features: list[str]
) -> dict[str, tuple[Histogram, Histogram]]:
    """Reference against current counts of numeric features, on shared edges."""
    reference = get_reference(session, registered)
    if reference is None or run.window_start is None or run.window_end is None or not features:
        return {}
    current = load_span(session, registered, *window_span(run))
    if current is None:
        return {}
    ref_cols = table_columns(from_bytes(reference.data), registered.spec).numeric
    cur_cols = table_columns(current, registered.spec).numeric
    out: dict[str, tuple[Histogram, Histogram]] = {}
    for name in features:
        if name not in ref_cols or name not in cur_cols:
            continue
        ref, cur = _finite(ref_cols[name]), _finite(cur_cols[name])
        if not len(ref) or not len(cur):
            continue
        edges = np.histogram_bin_edges(np.concatenate([ref, cur]), bins=30)
        out[name] = (
            Histogram(edges.tolist(), np.histogram(ref, edges)[0].astype(float).tolist()),
            Histogram(edges.tolist(), np.histogram(cur, edges)[0].astype(float).tolist()),
        )
    return out


def _trend(
    session: Session, registered: RegisteredModel, monitor: str, rule: AlertRule
) -> list[TrendPoint]:
    metric = str(rule.metric)
    key = str(ResultKey.estimated(metric) if rule.estimated else ResultKey.realized(metric))
    rows = session.execute(
        select(DetectionRun.window_end, DetectionRun.finished_at, PerformanceResult.value)
        .join(PerformanceResult, PerformanceResult.run_id == DetectionRun.id)
        .where(
            DetectionRun.model_version_id == registered.version.id,
            DetectionRun.monitor == monitor,
            DetectionRun.trigger != "backfill",
            PerformanceResult.metric == key,
            PerformanceResult.value.is_not(None),
        )
        .order_by(DetectionRun.window_end.desc(), DetectionRun.id.desc())
        .limit(TREND_RUNS)
    ).all()
    points = []
    for window_end, finished_at, value in reversed(rows):
        moment = window_end or finished_at
        if moment is not None and value is not None:
            points.append(TrendPoint(moment, float(value)))
    return points


def _finite(values: Any) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    return array[np.isfinite(array)]
