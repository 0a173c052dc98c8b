"""The HTML drift report of one detection run (the page drift e-mails link to)."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from monitor.alerting.report_links import link_problem
from monitor.api.deps import (
    IdPath,
    ServiceState,
    StateDep,
    id_query,
    in_thread,
    model_or_404,
    require,
)
from monitor.api.errors import invalid
from monitor.db.models import RegisteredModel, get_model
from monitor.db.tables import DetectionRun, ModelVersion
from monitor.reporting import actions
from monitor.reporting.report import CSP, load_report_input, render_report, sample

router = APIRouter(prefix="/api/v1", tags=["detection"])


def _run_of(session: Session, name: str, run_id: int) -> tuple[RegisteredModel, DetectionRun]:
    """The run of ``name`` with a window, and the model version it ran on (404, 422 if not)."""
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
    return registered, run


def report_page(state: ServiceState, name: str, run_id: int, link_query: str = "") -> str:
    """Read what the report needs, close the session, then render (seconds, in a thread)."""
    with state.sessions() as session:
        registered, run = _run_of(session, name, run_id)
        data = load_report_input(session, registered, run)
    return render_report(data, link_query)


def candidates_csv(state: ServiceState, name: str, run_id: int, limit: int) -> str:
    with state.sessions() as session:
        registered, run = _run_of(session, name, run_id)
        found = actions.load_label_candidates(session, registered, run, limit, sample)
    return actions.candidates_csv(found)


async def _allowed(
    request: Request,
    state: ServiceState,
    name: str,
    run_id: int,
    expires: int | None,
    token: str | None,
) -> str:
    """Let a ``read`` key, a browser session or the run's signed link through; the query to
    carry the link on to the run's other pages ("" without one)."""
    secret = state.settings.report_link_secret
    problem = link_problem(secret, name, run_id, expires, token) if token and secret else None
    if token and secret and problem is None:
        return "?" + urlencode({"expires": expires, "token": token})
    try:  # a key still opens it, whatever the link (checked off the event loop)
        await require("read")(request, state)
    except HTTPException as refused:
        # (a browser not signed in is sent to /login, 303, unless it came with a link)
        if refused.status_code not in (401, 303) or problem is None:
            raise
        # the reader came from a link: tell them what is wrong with it, not about keys
        headers = refused.headers if refused.status_code == 401 else {"WWW-Authenticate": "Bearer"}
        raise HTTPException(401, problem, headers) from None
    return ""


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

    Tidewatch's section: each feature's result and effect size, a history strip per drifted
    feature with the start of its current episode, a plot of every drifted feature (numbers,
    categories, the class mix, embeddings), realized beside estimated performance, data
    quality, and what to do (the reference promotion and alert commands filled in, the
    records to label first). Then Evidently's data drift and data summary presets on the run's
    window against the version's reference, with its verdict compared with Tidewatch's.

    Needs a ``read`` key, or the ``expires`` and ``token`` of a signed link (alert e-mails carry
    those, since a mail client sends no key): it opens this one run's report and nothing else,
    until it expires (``report_link_ttl_seconds`` after the mail). An expired, altered or
    foreign link answers 401 and says which, like a bad key: the link stands in for a key, and
    this API keeps 403 for a valid key that lacks the scope.
    """
    link_query = await _allowed(request, state, name, run_id, expires, token)
    page = await in_thread(report_page, state, name, run_id, link_query)
    return HTMLResponse(page, headers={"Content-Security-Policy": CSP})


@router.get(
    "/models/{name}/runs/{run_id}/label-candidates.csv",
    response_class=Response,
    responses={
        200: {"content": {"text/csv": {}}, "description": "record ids to label next, best first"},
        401: {"description": "no key and no valid link (expired, altered or for another run)"},
        404: {"description": "unknown model, or no such run of this model"},
        422: {"description": "the run has no window (it saw no records)"},
    },
)
async def get_label_candidates(
    name: str,
    request: Request,
    state: StateDep,
    run_id: IdPath,
    limit: int = Query(
        default=actions.DEFAULT_LIMIT, ge=1, le=10_000, description="at most this many records"
    ),
    expires: int | None = Query(
        default=None, description="the run's signed report link's expiry (unix seconds)"
    ),
    token: str | None = Query(default=None, description="that link's token, instead of a key"),
) -> Response:
    """The run's records to label next, as CSV: those without a label yet, the ones in the
    drifted region first (a drifted feature's value where only a small part of the
    reference lies), each group from the least certain prediction (smallest margin between
    the two most probable classes).

    Columns: ``record_id`` (the id ``POST /models/{name}/labels`` takes), ``timestamp``,
    ``prediction``, ``top_probability``, ``margin``, ``drifted_region`` (yes/no),
    ``drifted_features`` (space-separated). Opens like the run's report: a ``read`` key, a
    browser session, or the ``expires`` and ``token`` of the run's signed report link.
    """
    await _allowed(request, state, name, run_id, expires, token)
    text = await in_thread(candidates_csv, state, name, run_id, limit)
    filename = f"{name}-run-{run_id}-label-candidates.csv"
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
