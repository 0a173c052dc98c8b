"""Running detection on demand and reading results."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.concurrency import run_in_threadpool

from monitor.api.deps import ServiceState, SessionDep, StateDep, model_or_404, require
from monitor.api.schemas import RunOut, RunsPage
from monitor.db.models import RegisteredModel, get_model
from monitor.db.results import list_runs, run_quality, run_results
from monitor.pipeline import run_monitor

router = APIRouter(prefix="/api/v1", tags=["detection"])


def detect(state: ServiceState, registered: RegisteredModel, monitor: str | None) -> list[RunOut]:
    """Run the model's monitors (or the one named) now and return the stored runs."""
    monitors = [m for m in registered.spec.monitors if monitor is None or m.name == monitor]
    if not monitors:
        raise HTTPException(404, f"model {registered.spec.name!r} has no monitor {monitor!r}")
    out = []
    with state.sessions() as session:
        for config in monitors:
            run = run_monitor(
                session, registered, config, state.cache, device=state.settings.device
            )
            out.append(
                RunOut.of(
                    run,
                    registered.spec.name,
                    registered.spec.version,
                    run_results(session, run.id),
                    run_quality(session, run.id),
                )
            )
    return out


@router.post(
    "/models/{name}/detect", response_model=list[RunOut], dependencies=[Depends(require("admin"))]
)
async def post_detect(
    name: str,
    state: StateDep,
    session: SessionDep,
    monitor: str | None = Query(default=None, description="run only this monitor"),
) -> list[RunOut]:
    registered = model_or_404(session, name)
    return await run_in_threadpool(detect, state, registered, monitor)


@router.get(
    "/models/{name}/results", response_model=RunsPage, dependencies=[Depends(require("read"))]
)
def get_results(
    name: str,
    session: SessionDep,
    version: str | None = None,
    limit: int = Query(default=20, ge=1, le=500),
    before: int | None = Query(default=None, description="page: runs with a smaller id"),
) -> RunsPage:
    """Detection runs, newest first, with their per-feature results."""
    registered = (
        model_or_404(session, name) if version is None else get_model(session, name, version)
    )
    if registered is None:
        raise HTTPException(404, f"model {name!r} has no version {version!r}")
    runs = list_runs(session, registered, limit=limit, before_id=before)
    return RunsPage(
        runs=[
            RunOut.of(
                r,
                registered.spec.name,
                registered.spec.version,
                run_results(session, r.id),
                run_quality(session, r.id),
            )
            for r in runs
        ],
        next_before=runs[-1].id if len(runs) == limit else None,
    )
