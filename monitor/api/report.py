"""The HTML drift report of one detection run (the page drift e-mails link to)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from monitor.alerting.report_links import valid_token
from monitor.api.deps import ServiceState, SessionDep, StateDep, authorize, model_or_404
from monitor.db.models import get_model
from monitor.db.tables import DetectionRun, ModelVersion
from monitor.reporting.report import CSP, load_report_input, render_report

router = APIRouter(prefix="/api/v1", tags=["detection"])


def report_page(state: ServiceState, name: str, run_id: int) -> str:
    """Read what the report needs, close the session, then render (seconds, in a thread)."""
    with state.sessions() as session:
        model = model_or_404(session, name).model
        run = session.get(DetectionRun, run_id)
        if run is None:
            raise HTTPException(404, f"no run {run_id}")
        version = session.get(ModelVersion, run.model_version_id)
        if version is None or version.model_id != model.id:
            raise HTTPException(404, f"run {run_id} is not a run of {name!r}")
        if run.window_start is None or run.window_end is None:
            raise HTTPException(
                422,
                f"run {run_id} has no window (status {run.status!r}: {run.message or 'no records'})"
                ": there are no records to report on",
            )
        registered = get_model(session, name, version.version)  # the run's version
        assert registered is not None
        data = load_report_input(session, registered, run)
    return render_report(data)


@router.get(
    "/models/{name}/report",
    response_class=HTMLResponse,
    responses={
        200: {"content": {"text/html": {}}, "description": "the report page"},
        404: {"description": "unknown model, or no such run of this model"},
        422: {"description": "the run has no window (it saw no records)"},
    },
)
async def get_report(
    name: str,
    request: Request,
    state: StateDep,
    session: SessionDep,
    run_id: int = Query(alias="run", description="the detection run's id"),
    token: str | None = Query(default=None, description="a signed link's token, instead of a key"),
) -> HTMLResponse:
    """The drift report of one run as a standalone HTML page that works offline.

    Tidewatch's stored results (per-feature drift, data quality, performance) and histograms
    of the most drifted numeric features, then Evidently's data drift and data summary presets
    on the run's window against the version's reference.

    Needs a ``read`` key, or the ``token`` of a signed link (alert e-mails carry those, since a
    mail client sends no key): it opens this one run's report and nothing else.
    """
    secret = state.settings.report_link_secret
    if not (token and secret and valid_token(secret, name, run_id, token)):
        authorize(session, request, "read")
    page = await run_in_threadpool(report_page, state, name, run_id)
    return HTMLResponse(page, headers={"Content-Security-Policy": CSP})
