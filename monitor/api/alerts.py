"""Alerts: list and read them with their history, acknowledge and silence them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.alerting.lifecycle import NotFiring, acknowledge, silence
from monitor.api.deps import (
    IdPath,
    ServiceState,
    SessionDep,
    StateDep,
    in_thread,
    read_body,
    require,
)
from monitor.db.tables import Alert, AlertEvent, Model, OutboxMessage
from monitor.spec.model import NAME_PATTERN

router = APIRouter(prefix="/api/v1", tags=["alerts"])


class EventOut(BaseModel):
    at: datetime
    event: str
    detail: str


class DeliveryOut(BaseModel):
    channel: str
    state: str
    attempts: int
    last_error: str | None
    sent_at: datetime | None


class AlertOut(BaseModel):
    id: int
    model: str
    version: str
    rule: str
    kind: str
    severity: str
    state: str
    summary: str
    started_at: datetime
    resolved_at: datetime | None
    last_notified_at: datetime | None
    run_id: int | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    silenced_until: datetime | None
    events: list[EventOut] = Field(default_factory=list)
    deliveries: list[DeliveryOut] = Field(default_factory=list)


class SilenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: float = Field(gt=0, le=366 * 24 * 3600, description="how long from now")


class AckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # stored as text and shown in the alert's history: no NUL (PostgreSQL refuses it), no
    # control characters
    by: str = Field(
        default="", max_length=256, pattern=r"^[^\x00-\x1f\x7f]*$", description="who acknowledges"
    )


def alert_out(session: Session, alert: Alert, *, full: bool = False) -> AlertOut:
    name = session.scalar(select(Model.name).where(Model.id == alert.model_id)) or ""
    out = AlertOut(
        id=alert.id,
        model=name,
        version=alert.version,
        rule=alert.rule,
        kind=alert.kind,
        severity=alert.severity,
        state=alert.state,
        summary=alert.summary,
        started_at=alert.started_at,
        resolved_at=alert.resolved_at,
        last_notified_at=alert.last_notified_at,
        run_id=alert.run_id,
        acknowledged_at=alert.acknowledged_at,
        acknowledged_by=alert.acknowledged_by,
        silenced_until=alert.silenced_until,
    )
    if full:
        out.events = [
            EventOut(at=e.at, event=e.event, detail=e.detail)
            for e in session.scalars(
                select(AlertEvent).where(AlertEvent.alert_id == alert.id).order_by(AlertEvent.id)
            )
        ]
        out.deliveries = [
            DeliveryOut(
                channel=m.channel,
                state=m.state,
                attempts=m.attempts,
                last_error=m.last_error,
                sent_at=m.sent_at,
            )
            for m in session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.alert_id == alert.id)
                .order_by(OutboxMessage.id)
            )
        ]
    return out


@router.get("/alerts", response_model=list[AlertOut], dependencies=[Depends(require("read"))])
def get_alerts(
    session: SessionDep,
    state: Literal["firing", "resolved"] | None = None,
    model: str | None = Query(default=None, pattern=NAME_PATTERN),
    limit: int = Query(default=100, ge=1, le=1000),
) -> list[AlertOut]:
    """Alerts, newest first; ``?state=firing`` for the ones firing now."""
    query = select(Alert).order_by(Alert.id.desc()).limit(limit)
    if state is not None:
        query = query.where(Alert.state == state)
    if model is not None:
        query = query.join(Model, Model.id == Alert.model_id).where(Model.name == model)
    return [alert_out(session, a) for a in session.scalars(query)]


def _alert(session: Session, alert_id: int) -> Alert:
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise HTTPException(404, f"no alert {alert_id}")
    return alert


@router.get("/alerts/{alert_id}", response_model=AlertOut, dependencies=[Depends(require("read"))])
def get_alert(alert_id: IdPath, session: SessionDep) -> AlertOut:
    """One alert with its history and its deliveries."""
    return alert_out(session, _alert(session, alert_id), full=True)


@router.post(
    "/alerts/{alert_id}/ack", response_model=AlertOut, dependencies=[Depends(require("admin"))]
)
async def post_ack(alert_id: IdPath, request: Request, state: StateDep) -> AlertOut:
    """Acknowledge: no more re-notifications of this alert (it still resolves)."""
    body = await read_body(request, state.settings.max_body_bytes)
    ack = TypeAdapter(AckIn).validate_json(body or b"{}")
    return await in_thread(_acknowledge, state, alert_id, ack.by)


def _acknowledge(state: ServiceState, alert_id: int, by: str) -> AlertOut:
    with state.sessions() as session:
        alert = _alert(session, alert_id)
        try:
            acknowledge(session, alert, by)
        except NotFiring as exc:
            raise HTTPException(409, str(exc)) from None
        return alert_out(session, alert, full=True)


@router.post(
    "/alerts/{alert_id}/silence", response_model=AlertOut, dependencies=[Depends(require("admin"))]
)
async def post_silence(alert_id: IdPath, request: Request, state: StateDep) -> AlertOut:
    """Silence: no notification of this alert at all for ``seconds`` (its resolution included)."""
    body = TypeAdapter(SilenceIn).validate_json(
        await read_body(request, state.settings.max_body_bytes)
    )
    return await in_thread(_silence, state, alert_id, body.seconds)


def _silence(state: ServiceState, alert_id: int, seconds: float | None) -> AlertOut:
    with state.sessions() as session:
        alert = _alert(session, alert_id)
        silence(session, alert, seconds)
        return alert_out(session, alert, full=True)


@router.delete(
    "/alerts/{alert_id}/silence", response_model=AlertOut, dependencies=[Depends(require("admin"))]
)
def delete_silence(alert_id: IdPath, session: SessionDep) -> AlertOut:
    alert = _alert(session, alert_id)
    silence(session, alert, None)
    return alert_out(session, alert, full=True)
