"""Since when: each drifted feature's results over the last windows of the same monitor.

A report shows, per feature that drifted in its run, a strip of that feature's stored results
over the last ``WINDOWS`` runs of the same monitor and model version up to the run (statistic,
effect size, drifted or not), and the current *episode*: the unbroken series of runs, ending
with this one, in which the feature drifted. Runs without a result for the feature (too few
records, no reference) neither extend nor break an episode: they say nothing about it. The
episode is counted in the database, so one longer than the strip still gets its true start.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from monitor.db.tables import DetectionResult, DetectionRun

WINDOWS = 12  # runs shown in a strip, this one included


@dataclass(frozen=True)
class Point:
    """One feature's result in one run."""

    run_id: int
    window_end: datetime | None
    statistic: float | None
    size: float | None  # the effect size (detectors.effects: "size"); None without one
    drift: bool | None  # None: the run has no result for this feature
    in_episode: bool = False
    episode_start: bool = False


@dataclass(frozen=True)
class Episode:
    """The unbroken drift of a feature up to the reported run."""

    first_run_id: int
    first_window_end: datetime | None
    windows: int


@dataclass(frozen=True)
class History:
    feature: str
    points: list[Point]  # oldest first; the reported run last
    episode: Episode | None  # None when the feature did not drift in the reported run


def _scope(run: DetectionRun) -> list[ColumnElement[bool]]:
    return [
        DetectionRun.model_version_id == run.model_version_id,
        DetectionRun.monitor == run.monitor,
        DetectionRun.id <= run.id,
    ]


def episode_of(session: Session, run: DetectionRun, feature: str) -> Episode | None:
    """The feature's drift episode ending with ``run``; None if it did not drift there."""
    calm: int | None = session.scalar(
        select(func.max(DetectionResult.run_id))
        .join(DetectionRun, DetectionRun.id == DetectionResult.run_id)
        .where(*_scope(run), DetectionResult.feature == feature, DetectionResult.drift.is_(False))
    )
    first, count = session.execute(
        select(func.min(DetectionResult.run_id), func.count(DetectionResult.id))
        .join(DetectionRun, DetectionRun.id == DetectionResult.run_id)
        .where(
            *_scope(run),
            DetectionResult.feature == feature,
            DetectionResult.drift.is_(True),
            DetectionResult.run_id > (calm or 0),
        )
    ).one()
    if first is None or not count:
        return None
    start = session.get(DetectionRun, first)
    return Episode(first, None if start is None else start.window_end, int(count))


def load_history(
    session: Session, run: DetectionRun, features: list[str], windows: int = WINDOWS
) -> list[History]:
    """A strip per feature in ``features`` over the last ``windows`` runs up to ``run``."""
    if not features:
        return []
    runs = list(
        session.scalars(
            select(DetectionRun)
            .where(*_scope(run), DetectionRun.window_end.is_not(None))
            .order_by(DetectionRun.id.desc())
            .limit(windows)
        )
    )[::-1]
    if not runs or runs[-1].id != run.id:
        runs = [*runs[-(windows - 1) :], run] if windows > 1 else [run]
    rows = session.scalars(
        select(DetectionResult).where(
            DetectionResult.run_id.in_([r.id for r in runs]),
            DetectionResult.feature.in_(features),
        )
    )
    found = {(r.run_id, r.feature): r for r in rows}
    histories = []
    for feature in features:
        episode = episode_of(session, run, feature)
        points = []
        for r in runs:
            result = found.get((r.id, feature))
            size = None if result is None or not result.effect else result.effect.get("size")
            inside = (
                episode is not None
                and result is not None
                and result.drift
                and r.id >= episode.first_run_id
            )
            points.append(
                Point(
                    run_id=r.id,
                    window_end=r.window_end,
                    statistic=None if result is None else result.statistic,
                    size=None if size is None else float(size),
                    drift=None if result is None else bool(result.drift),
                    in_episode=bool(inside),
                    episode_start=episode is not None and r.id == episode.first_run_id,
                )
            )
        histories.append(History(feature, points, episode))
    return histories
