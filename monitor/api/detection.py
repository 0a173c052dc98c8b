"""Running detection on demand and reading results."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends, HTTPException, Query
from sqlalchemy.orm import Session

from monitor.api.deps import (
    IdPath,
    ServiceState,
    SessionDep,
    StateDep,
    find_model,
    id_query,
    in_thread,
    model_or_404,
    require,
)
from monitor.api.errors import invalid
from monitor.api.schemas import RunOut, RunsPage
from monitor.cycle import UnknownMonitor, monitors_named, run_and_alert
from monitor.db.models import RegisteredModel, get_model
from monitor.db.results import list_runs, run_performance, run_quality, run_results
from monitor.db.tables import DetectionRun, ModelVersion
from monitor.spec.model import NAME_PATTERN

router = APIRouter(prefix="/api/v1", tags=["detection"])


def run_out(session: Session, registered: RegisteredModel, run: DetectionRun) -> RunOut:
    return RunOut.of(
        run,
        registered.spec.name,
        registered.spec.version,
        run_results(session, run.id),
        run_quality(session, run.id),
        run_performance(session, run.id),
    )


def detect(state: ServiceState, registered: RegisteredModel, monitor: str | None) -> list[RunOut]:
    """Run the model's monitors (or the one named) now and return the stored runs.

    A sliding monitor runs once on its current window; a tumbling one computes every window
    that has closed since its last (none when nothing is due).
    """
    try:
        monitors = monitors_named(registered, monitor)
    except UnknownMonitor as exc:
        raise HTTPException(404, str(exc)) from None
    runs = []
    for config in monitors:
        runs += run_and_alert(
            state.sessions,
            registered,
            config,
            state.cache,
            state.alerting,
            device=state.settings.device,
            trigger="manual",
        )
    with state.sessions() as session:
        return [run_out(session, registered, run) for run in runs]


@router.post(
    "/models/{name}/detect", response_model=list[RunOut], dependencies=[Depends(require("admin"))]
)
async def post_detect(
    name: str,
    state: StateDep,
    monitor: str | None = Query(default=None, description="run only this monitor"),
) -> list[RunOut]:
    registered = await in_thread(find_model, state, name)
    return await in_thread(detect, state, registered, monitor)


def _in_utc(moment: datetime | None, loc: str) -> datetime | None:
    """``moment`` in UTC (naive means UTC); 422 for one with no UTC time, such as
    0001-01-01T00:00+01:00 (the database layer would fail converting it: a 500)."""
    if moment is None or moment.tzinfo is None:
        return moment
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise invalid(loc, "a time out of range once in UTC", "datetime_range") from None


@router.get(
    "/models/{name}/results", response_model=RunsPage, dependencies=[Depends(require("read"))]
)
def get_results(
    name: str,
    session: SessionDep,
    version: str | None = Query(default=None, pattern=NAME_PATTERN),
    monitor: str | None = Query(
        default=None, pattern=NAME_PATTERN, description="only this monitor's runs"
    ),
    since: datetime | None = Query(default=None, description="windows ending at or after"),
    until: datetime | None = Query(default=None, description="windows ending before"),
    limit: int = Query(default=20, ge=1, le=500),
    before: int | None = id_query("page: runs with a smaller id"),
) -> RunsPage:
    """Detection runs, newest first, with their per-feature results; page with ``before``."""
    registered = (
        model_or_404(session, name) if version is None else get_model(session, name, version)
    )
    if registered is None:
        raise HTTPException(404, f"model {name!r} has no version {version!r}")
    runs = list_runs(
        session,
        registered,
        limit=limit,
        before_id=before,
        monitor=monitor,
        since=_in_utc(since, "query.since"),
        until=_in_utc(until, "query.until"),
    )
    return RunsPage(
        runs=[run_out(session, registered, r) for r in runs],
        next_before=runs[-1].id if len(runs) == limit else None,
    )


@router.get(
    "/models/{name}/runs/{run_id}", response_model=RunOut, dependencies=[Depends(require("read"))]
)
def get_run(name: str, run_id: IdPath, session: SessionDep) -> RunOut:
    """One detection run with its results (dashboards link here from a run's panels)."""
    registered = model_or_404(session, name)
    run = session.get(DetectionRun, run_id)
    if run is None:
        raise HTTPException(404, f"no run {run_id}")
    version = session.get(ModelVersion, run.model_version_id)
    if version is None or version.model_id != registered.model.id:
        raise HTTPException(404, f"run {run_id} is not a run of {name!r}")
    found = get_model(session, name, version.version)  # the run's version, maybe not the current
    assert found is not None
    return run_out(session, found, run)
