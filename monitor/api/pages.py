"""Pages for people: the sign-in form, signing out, and a read-only overview of every model.

Signing in exchanges an API key (sent in a form's body, never in a URL) for a session cookie
(:mod:`monitor.api.browser_session`); where the site has an identity provider, the form also
offers signing in through it (:mod:`monitor.api.oidc`), which ends in the same kind of cookie.
The overview, the report, a run and the results then open
in the browser, and so do Grafana's data links to them. Pages are rendered by jinja2 with
autoescaping, under a Content-Security-Policy that allows inline styles and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader

from monitor.api import browser_session, oidc_rule
from monitor.api.deps import ServiceState, StateDep, check_key, in_thread, read_body, require
from monitor.db.models import get_model
from monitor.db.results import list_runs
from monitor.db.tables import DetectionRun
from monitor.runs.status import model_statuses

router = APIRouter(include_in_schema=False)

CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
# pages show what a key may read: kept out of shared caches and the browser's history cache
HEADERS = {"Content-Security-Policy": CSP, "Cache-Control": "no-store"}
LOGIN_BODY_LIMIT = 4096
RUNS_SHOWN = 5
OIDC_START = "/login/oidc"
_ENV = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True)
class RunLine:
    id: int
    monitor: str
    status: str
    status_label: str
    window_end: str | None
    drifted_share: str | None
    json: str  # the run's JSON (GET .../runs/{id})
    report: str | None  # its report, when it had a window


@dataclass(frozen=True)
class ModelLine:
    name: str
    version: str
    status: str
    status_label: str
    since: str | None
    last_run_at: str | None
    runs: list[RunLine]
    report: str | None  # the latest run's report that has one
    grafana: str | None


def _when(moment: datetime | None) -> str | None:
    return None if moment is None else f"{moment:%Y-%m-%d %H:%M} UTC"


def _run_line(name: str, run: DetectionRun) -> RunLine:
    base = f"/api/v1/models/{quote(name)}"
    share = run.drifted_share
    return RunLine(
        id=run.id,
        monitor=run.monitor,
        status=run.status,
        status_label=run.status.replace("_", " "),
        window_end=_when(run.window_end),
        drifted_share=None if share is None else f"{share:.0%}",
        json=f"{base}/runs/{run.id}",
        report=f"{base}/report?run={run.id}" if run.window_end is not None else None,
    )


def _grafana(state: ServiceState, name: str, version: str) -> str | None:
    url = state.settings.grafana_url
    if not url:
        return None
    query = urlencode({"var-model": name, "var-version": version})
    return f"{url.rstrip('/')}/d/tidewatch-model?{query}"


def overview_models(state: ServiceState) -> list[ModelLine]:
    """Every model with its status, since when, its last runs and links (in a thread)."""
    lines = []
    with state.sessions() as session:
        for status in model_statuses(session):
            registered = get_model(session, status.model)
            if registered is None:  # removed meanwhile
                continue
            runs = [
                _run_line(status.model, r) for r in list_runs(session, registered, limit=RUNS_SHOWN)
            ]
            lines.append(
                ModelLine(
                    name=status.model,
                    version=status.version,
                    status=status.status.value,
                    status_label=status.status.label,
                    since=_when(status.since),
                    last_run_at=_when(status.last_run_at),
                    runs=runs,
                    report=next((r.report for r in runs if r.report), None),
                    grafana=_grafana(state, status.model, status.version),
                )
            )
    return lines


def page(template: str, status_code: int = 200, **values: object) -> HTMLResponse:
    html = _ENV.get_template(template).render(**values)
    return HTMLResponse(html, status_code=status_code, headers=HEADERS)


def _same_origin(request: Request) -> None:
    """Forms post only from our own pages: a browser names the page's origin in ``Origin``."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return  # older browsers and scripts send none; SameSite=Lax guards the cookie anyway
    parts = urlsplit(origin)
    if (parts.scheme, parts.netloc) != (request.url.scheme, request.url.netloc):
        raise HTTPException(403, "this form posts only from Tidewatch's own pages")


@router.get("/login", response_class=HTMLResponse)
async def login_form(
    state: StateDep, next_page: str | None = Query(None, alias="next")
) -> Response:
    target = browser_session.safe_next(next_page)
    return page("login.html.j2", next=target, hours=_hours(state), oidc=oidc_offer(state, target))


def oidc_offer(state: ServiceState, target: str) -> dict[str, str] | None:
    """The "Sign in with <provider>" link beside the key form, when OIDC is configured."""
    if not oidc_rule.configured(state.settings):
        return None
    return {
        "name": oidc_rule.provider_name(state.settings),
        "href": f"{OIDC_START}?next={quote(target, safe='/')}",
    }


def _hours(state: ServiceState) -> str:
    return f"{state.settings.session_hours:g}"


def _key_id_and_hash(state: ServiceState, key: str) -> tuple[int, str]:
    with state.sessions() as session:
        row = check_key(session, key, browser_session.SESSION_SCOPE)
        return row.id, row.key_hash


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, state: StateDep) -> Response:
    """Check the key from the form's body; on success, set the session cookie and go on."""
    form = parse_qs((await read_body(request, LOGIN_BODY_LIMIT)).decode("utf-8", "replace"))
    target = browser_session.safe_next((form.get("next") or [""])[0])
    key = (form.get("key") or [""])[0].strip()
    try:
        secure = browser_session.cookie_secure(request)  # says first when HTTPS is missing
        _same_origin(request)
        if not key:
            raise HTTPException(401, "enter an API key")
        key_id, key_hash = await in_thread(_key_id_and_hash, state, key)
    except HTTPException as refused:  # the page says why; the key is never shown back
        return page(
            "login.html.j2",
            refused.status_code,
            next=target,
            hours=_hours(state),
            problem=refused.detail,
            oidc=oidc_offer(state, target),
        )
    value = browser_session.sign(state.session_secret, key_id, key_hash)
    answer = RedirectResponse(target, status_code=303)
    set_session_cookie(answer, state, value, secure)
    return answer


def set_session_cookie(answer: Response, state: ServiceState, value: str, secure: bool) -> None:
    """The session cookie, alike for both ways in: HttpOnly, SameSite=Lax, session_hours."""
    answer.set_cookie(
        browser_session.COOKIE,
        value,
        max_age=round(state.settings.session_hours * 3600),
        path="/",
        secure=secure,
        httponly=True,
        samesite="lax",
    )


@router.post("/logout")
async def logout(request: Request) -> Response:
    _same_origin(request)
    answer = RedirectResponse("/login", status_code=303)
    answer.delete_cookie(
        browser_session.COOKIE,
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="lax",
    )
    return answer


@router.get("/", response_class=HTMLResponse)
@router.get("/overview", response_class=HTMLResponse)  # the name docs and Grafana links use
async def overview(request: Request, state: StateDep) -> Response:
    """Every model this key may read: status, since when, last runs, reports, Grafana."""
    try:
        await require("read")(request, state)
    except HTTPException as refused:
        if refused.status_code == 401 and "authorization" not in request.headers:
            return RedirectResponse(browser_session.login_location(request), status_code=303)
        raise
    models = await in_thread(overview_models, state)
    return page("overview.html.j2", models=models)
