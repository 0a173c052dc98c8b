"""The HTML drift report of one detection run (the page drift e-mails link to)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from monitor.alerting.report_links import link_problem
from monitor.api.deps import ServiceState, StateDep, id_query, in_thread, model_or_404, require
from monitor.api.errors import invalid
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
            raise invalid(
                "query.run",
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
        401: {"description": "no key and no valid link (expired, altered or for another run)"},
        404: {"description": "unknown model, or no such run of this model"},
        422: {"description": "the run has no window (it saw no records)"},
    },
)
async def get_report(
    name: str,
    request: Request,
    state: StateDep,
    run_id: int = id_query("the detection run's id", alias="run", default=...),
    expires: int | None = Query(
        default=None, description="a signed link's expiry (unix seconds), signed with it"
    ),
    token: str | None = Query(default=None, description="a signed link's token, instead of a key"),
) -> HTMLResponse:
    """The drift report of one run as a standalone HTML page that works offline.

    Tidewatch's stored results (per-feature drift, data quality, performance) and histograms
    of the most drifted numeric features, then Evidently's data drift and data summary presets
    on the run's window against the version's reference.

    Needs a ``read`` key, or the ``expires`` and ``token`` of a signed link (alert e-mails carry
    those, since a mail client sends no key): it opens this one run's report and nothing else,
    until it expires (``report_link_ttl_seconds`` after the mail). An expired, altered or
    foreign link answers 401 and says which, like a bad key: the link stands in for a key, and
    this API keeps 403 for a valid key that lacks the scope.
    """
    secret = state.settings.report_link_secret
    problem = link_problem(secret, name, run_id, expires, token) if token and secret else None
    if not (token and secret and problem is None):
        try:  # a key still opens it, whatever the link (checked off the event loop)
            await require("read")(request, state)
        except HTTPException as refused:
            # (a browser not signed in is sent to /login, 303, unless it came with a link)
            if refused.status_code not in (401, 303) or problem is None:
                raise
            # the reader came from a link: tell them what is wrong with it, not about keys
            headers = (
                refused.headers if refused.status_code == 401 else {"WWW-Authenticate": "Bearer"}
            )
            raise HTTPException(401, problem, headers) from None
    page = await in_thread(report_page, state, name, run_id)
    return HTMLResponse(page, headers={"Content-Security-Policy": CSP})
