"""Monitor configuration, model status, and promoting production data to the reference."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from sqlalchemy.orm import Session

from alerts.rules import AlertRule
from monitor.api.deps import (
    ServiceState,
    SessionDep,
    StateDep,
    find_model,
    in_thread,
    model_or_404,
    read_body,
    require,
)
from monitor.api.errors import invalid, invalid_body
from monitor.api.schemas import (
    ModelStatusOut,
    MonitorStatusOut,
    PromoteIn,
    ReferenceOut,
    StatusOut,
)
from monitor.db.models import RegisteredModel, upsert_model
from monitor.db.references import promote_window
from monitor.db.tables import DetectionRun
from monitor.runs.status import ModelStatus, leader, model_statuses
from monitor.runs.windows import window_span
from monitor.spec.model import ModelSpec, MonitorConfig

router = APIRouter(prefix="/api/v1", tags=["monitors"])
_MONITORS = TypeAdapter(list[MonitorConfig])


@router.get(
    "/models/{name}/monitors",
    response_model=list[MonitorConfig],
    dependencies=[Depends(require("read"))],
)
def get_monitors(name: str, session: SessionDep) -> list[MonitorConfig]:
    """The monitors of the model's current version."""
    return model_or_404(session, name).spec.monitors


@router.put(
    "/models/{name}/monitors",
    response_model=list[MonitorConfig],
    dependencies=[Depends(require("admin"))],
)
async def put_monitors(name: str, request: Request, state: StateDep) -> list[MonitorConfig]:
    """Replace the monitors of the model's current version (validated against its schema).

    The scheduler picks the change up within ``scheduler_sync_seconds``.
    """
    registered = await in_thread(find_model, state, name)
    monitors = _MONITORS.validate_json(await read_body(request, state.settings.max_body_bytes))
    try:
        spec = ModelSpec.model_validate(
            {
                **registered.spec.model_dump(mode="json"),
                "monitors": [m.model_dump() for m in monitors],
            }
        )
    except ValidationError as exc:
        # the body is the list of monitors itself: the spec's monitors[0] is its [0]
        raise invalid_body(exc, {"monitors": ()}) from None
    updated = await in_thread(_save, state, spec)
    return updated.spec.monitors


def _status_out(status: ModelStatus) -> ModelStatusOut:
    return ModelStatusOut(
        model=status.model,
        version=status.version,
        status=status.status,
        since=status.since,
        last_run_at=status.last_run_at,
        monitors=[MonitorStatusOut(**m.__dict__) for m in status.monitors],
        ignored_features=status.ignored_features,
        estimator=status.estimator,
        estimator_error=status.estimator_error,
        estimator_windows=status.estimator_windows,
        estimator_reason=status.estimator_reason,
    )


@router.get("/status", response_model=StatusOut, dependencies=[Depends(require("read"))])
def get_status(session: SessionDep) -> StatusOut:
    """Every model's status (ok, warning, drift, no_data) and since when; who schedules."""
    holder, heartbeat = leader(session)
    return StatusOut(
        leader=holder,
        leader_heartbeat=heartbeat,
        models=[_status_out(s) for s in model_statuses(session)],
    )


@router.get(
    "/models/{name}/status",
    response_model=ModelStatusOut,
    dependencies=[Depends(require("read"))],
)
def get_model_status(name: str, session: SessionDep) -> ModelStatusOut:
    model_or_404(session, name)
    return _status_out(model_statuses(session, name)[0])


@router.post(
    "/models/{name}/reference/promote",
    response_model=ReferenceOut,
    dependencies=[Depends(require("admin"))],
)
async def post_promote(name: str, request: Request, state: StateDep) -> ReferenceOut:
    """Make a window of production data the current version's reference (after retraining).

    Body: ``{"run": ID}`` (that run's window) or ``{"from": T1, "to": T2}`` (prediction time,
    ``to`` excluded).
    """
    body = TypeAdapter(PromoteIn).validate_json(
        await read_body(request, state.settings.max_body_bytes)
    )
    return await in_thread(_promote, state, name, body)


def _promote(state: ServiceState, name: str, body: PromoteIn) -> ReferenceOut:
    with state.sessions() as session:
        return _promote_in(session, model_or_404(session, name), body)


def _promote_in(session: Session, registered: RegisteredModel, body: PromoteIn) -> ReferenceOut:
    name = registered.spec.name
    if body.run is not None:
        run = session.get(DetectionRun, body.run)
        if run is None or run.model_version_id != registered.version.id:
            raise HTTPException(404, f"run {body.run} is not a run of {name}'s current version")
        try:
            start, end = window_span(run)
        except ValueError:
            raise invalid("run", f"run {body.run} has no window (it found no records)") from None
    elif body.start is not None and body.end is not None:
        start, end = body.start, body.end
    else:
        raise invalid("body", "send {'run': ID} or {'from': T1, 'to': T2}", "missing")
    if start >= end:
        raise invalid("from", "'from' must be before 'to'")
    try:
        row = promote_window(session, registered, start, end)
    except ValueError as exc:  # no records in the span
        raise invalid("body", str(exc), "empty") from None
    return ReferenceOut(
        model=registered.spec.name,
        version=registered.spec.version,
        rows=row.n_rows,
        sha256=row.sha256,
    )


def _save(state: ServiceState, spec: ModelSpec) -> RegisteredModel:
    with state.sessions() as session:
        updated, _ = upsert_model(session, spec)
        return updated


class AlertsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rules: list[AlertRule]
    recipients: list[str] = Field(default_factory=list)


@router.get(
    "/models/{name}/alerts/rules", response_model=AlertsIn, dependencies=[Depends(require("read"))]
)
def get_alert_rules(name: str, session: SessionDep) -> AlertsIn:
    """The alert rules and e-mail recipients of the model's current version."""
    spec = model_or_404(session, name).spec
    return AlertsIn(rules=spec.alerts, recipients=spec.alert_recipients)


@router.put(
    "/models/{name}/alerts/rules", response_model=AlertsIn, dependencies=[Depends(require("admin"))]
)
async def put_alert_rules(name: str, request: Request, state: StateDep) -> AlertsIn:
    """Replace the alert rules and recipients (checked against the model's monitors)."""
    registered = await in_thread(find_model, state, name)
    body = TypeAdapter(AlertsIn).validate_json(
        await read_body(request, state.settings.max_body_bytes)
    )
    payload = registered.spec.model_dump(mode="json")
    payload["alerts"] = [r.model_dump(mode="json", exclude_unset=True) for r in body.rules]
    payload["alert_recipients"] = body.recipients
    try:
        spec = ModelSpec.model_validate(payload)
    except ValidationError as exc:
        raise invalid_body(
            exc, {"alerts": ("rules",), "alert_recipients": ("recipients",)}
        ) from None
    updated = await in_thread(_save, state, spec)
    return AlertsIn(rules=updated.spec.alerts, recipients=updated.spec.alert_recipients)
