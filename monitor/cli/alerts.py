"""``tidewatch alerts``: list, acknowledge, silence (on the database)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from monitor.cli.common import (
    ConfigOption,
    console,
    engine_of,
    settings_of,
    show_time,
)
from monitor.cli.tables import Column, WideOption, fitted

group = typer.Typer(help="Alerts: list, acknowledge, silence.", no_args_is_help=True)


@group.command("list")
def alerts_list(
    state: Annotated[str | None, typer.Option(help="firing or resolved")] = None,
    model: Annotated[str | None, typer.Option(help="only this model")] = None,
    wide: WideOption = False,
    config: ConfigOption = None,
) -> None:
    """Alerts, newest first."""
    from sqlalchemy import select

    from monitor.db.engine import make_sessionmaker
    from monitor.db.tables import Alert, Model

    rows = []
    with make_sessionmaker(engine_of(settings_of(config)))() as session:
        query = (
            select(Alert, Model.name)
            .join(Model, Model.id == Alert.model_id)
            .order_by(Alert.id.desc())
            .limit(200)
        )
        if state:
            query = query.where(Alert.state == state)
        if model:
            query = query.where(Model.name == model)
        for alert, name in session.execute(query):
            style = "bold red" if alert.state == "firing" else "green"
            notes = []
            if alert.acknowledged_at:
                notes.append(f"acked by {alert.acknowledged_by or '?'}")
            if alert.silenced_until:
                notes.append(f"silenced until {show_time(alert.silenced_until)}")
            rows.append(
                [
                    str(alert.id),
                    name,
                    alert.rule,
                    alert.severity,
                    f"[{style}]{alert.state}[/]",
                    show_time(alert.started_at),
                    alert.summary,
                    ", ".join(notes),
                ]
            )
    console.print(fitted(console, ALERT_COLUMNS, rows, wide=wide))


# at 80 columns the id, model, rule and state are shown whole; the rest as room allows
ALERT_COLUMNS = [
    Column("id", justify="right"),
    Column("model"),
    Column("rule"),
    Column("severity", drop=3),
    Column("state"),
    Column("since", drop=2),
    Column("summary", drop=1, wrap=True),
    Column("ack / silence", drop=4, wrap=True),
]


def _alert_action(alert_id: int, config: Path | None, action: str, **kwargs: Any) -> None:
    from monitor.alerting.lifecycle import NotFiring, acknowledge, silence
    from monitor.db.engine import make_sessionmaker
    from monitor.db.tables import Alert

    with make_sessionmaker(engine_of(settings_of(config)))() as session:
        alert = session.get(Alert, alert_id)
        if alert is None:
            console.print(f"[red]no alert {alert_id}[/]")
            raise typer.Exit(1)
        try:
            if action == "ack":
                acknowledge(session, alert, kwargs["by"])
            else:
                silence(session, alert, kwargs["seconds"])
        except NotFiring as exc:
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(1) from None
        done = (
            "acknowledged"
            if action == "ack"
            else f"silenced until {show_time(alert.silenced_until)}"
        )
    console.print(f"alert {alert_id}: {done}")


@group.command("ack")
def alerts_ack(
    alert_id: int,
    by: Annotated[str, typer.Option(help="who acknowledges")] = "",
    config: ConfigOption = None,
) -> None:
    """Acknowledge a firing alert: no more re-notifications until it resolves."""
    _alert_action(alert_id, config, "ack", by=by)


@group.command("silence")
def alerts_silence(
    alert_id: int,
    hours: Annotated[float, typer.Option("--hours", min=0.001, help="how long")] = 4.0,
    config: ConfigOption = None,
) -> None:
    """Silence an alert: no notification of it for --hours."""
    _alert_action(alert_id, config, "silence", seconds=hours * 3600)
