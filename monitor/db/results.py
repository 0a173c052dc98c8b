"""Detection runs and their per-feature results."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from monitor.db.models import RegisteredModel
from monitor.db.tables import DetectionResult, DetectionRun, PerformanceResult, QualityResult


def list_runs(
    session: Session,
    registered: RegisteredModel,
    *,
    limit: int = 20,
    before_id: int | None = None,
    monitor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[DetectionRun]:
    """Newest runs first; page with ``before_id`` (the smallest id of the previous page).

    ``since`` and ``until`` filter on the run's window end (its start time when it has none).
    """
    query = select(DetectionRun).where(DetectionRun.model_version_id == registered.version.id)
    if before_id is not None:
        query = query.where(DetectionRun.id < before_id)
    if monitor is not None:
        query = query.where(DetectionRun.monitor == monitor)
    moment = func.coalesce(DetectionRun.window_end, DetectionRun.started_at)
    if since is not None:
        query = query.where(moment >= since)
    if until is not None:
        query = query.where(moment < until)
    return list(session.scalars(query.order_by(DetectionRun.id.desc()).limit(limit)))


def run_results(session: Session, run_id: int) -> list[DetectionResult]:
    return list(
        session.scalars(
            select(DetectionResult)
            .where(DetectionResult.run_id == run_id)
            .order_by(DetectionResult.id)
        )
    )


def run_quality(session: Session, run_id: int) -> list[QualityResult]:
    return list(
        session.scalars(
            select(QualityResult).where(QualityResult.run_id == run_id).order_by(QualityResult.id)
        )
    )


def run_performance(session: Session, run_id: int) -> list[PerformanceResult]:
    return list(
        session.scalars(
            select(PerformanceResult)
            .where(PerformanceResult.run_id == run_id)
            .order_by(PerformanceResult.id)
        )
    )
