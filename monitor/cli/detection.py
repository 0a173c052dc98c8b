"""``tidewatch detect``, ``backfill`` and ``status``: runs and their outcome (on the database)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from monitor.cli.common import (
    ConfigOption,
    console,
    engine_of,
    parse_when,
    progress_bar,
    settings_of,
    show_number,
    show_time,
)
from monitor.cli.tables import Column, WideOption, fitted
from monitor.settings import Settings
from monitor.vocabulary import ModelStatus as Status


def monitors_of(settings: Settings, model: str, monitor: str | None) -> tuple[Any, Any, list[Any]]:
    """Sessions, the model's current version and its monitors (or the one named); exits with a
    message when either is unknown."""
    from monitor.cycle import UnknownMonitor, monitors_named
    from monitor.db.engine import make_sessionmaker
    from monitor.db.models import get_model

    sessions = make_sessionmaker(engine_of(settings))
    with sessions() as session:
        registered = get_model(session, model)
    if registered is None:
        console.print(f"[red]unknown model {model!r}[/]")
        raise typer.Exit(1)
    try:
        monitors = monitors_named(registered, monitor)
    except UnknownMonitor as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    return sessions, registered, monitors


def detect(
    model: str,
    monitor: Annotated[str | None, typer.Option(help="run only this monitor")] = None,
    wide: WideOption = False,
    config: ConfigOption = None,
) -> None:
    """Run MODEL's monitors now against the database and print the results.

    A sliding monitor runs once; a tumbling one computes every window closed since its last.
    """
    from alerts.effect_text import feature_label
    from monitor.alerting.lifecycle import Alerting
    from monitor.cycle import run_and_alert
    from monitor.db.results import run_results
    from monitor.runs.pipeline import ReferenceCache

    settings = settings_of(config)
    sessions, registered, monitors = monitors_of(settings, model, monitor)
    cache, alerting = ReferenceCache(1), Alerting(settings, sessions)
    for config_ in monitors:
        runs = run_and_alert(
            sessions, registered, config_, cache, alerting, device=settings.device, trigger="manual"
        )
        if not runs:
            console.print(f"{model} / {config_.name}: no window is due")
        for run in runs:
            with sessions() as session:
                rows = [
                    [
                        feature_label(r.feature),  # the joint row "*" in words
                        r.method,
                        show_number(r.statistic),
                        show_number(r.p_value),
                        show_number(r.p_adjusted),
                        "DRIFT" if r.drift else "ok",
                    ]
                    for r in run_results(session, run.id)
                ]
            title = f"{model} / {config_.name}: {run.status} ({run.message})"
            console.print(fitted(console, RESULT_COLUMNS, rows, wide=wide, title=title))


RESULT_COLUMNS = [
    Column("feature"),
    Column("test", drop=2),
    Column("statistic", drop=3, justify="right"),
    Column("p-value", drop=4, justify="right"),
    Column("adjusted", drop=1, justify="right"),
    Column("drift"),
]


def backfill(
    model: str,
    start: Annotated[str, typer.Option("--from", help="start, ISO 8601 (UTC by default)")],
    end: Annotated[str, typer.Option("--to", help="end (excluded), ISO 8601")],
    monitor: Annotated[str | None, typer.Option(help="only this monitor")] = None,
    config: ConfigOption = None,
) -> None:
    """Recompute MODEL's results over history, replacing earlier runs of the same windows."""
    from monitor.runs.monitoring import model_status
    from monitor.runs.pipeline import ReferenceCache

    t1, t2 = parse_when(start), parse_when(end)
    if t1 >= t2:
        console.print("[red]--from must be before --to[/]")
        raise typer.Exit(2)
    settings = settings_of(config)
    sessions, registered, monitors = monitors_of(settings, model, monitor)
    cache = ReferenceCache(1)
    summary = Table("monitor", "windows", *(s.label for s in COUNTED))
    for config_ in monitors:
        runs = _backfill_one(sessions, registered, config_, cache, t1, t2, settings.device)
        counts = dict.fromkeys(COUNTED, 0)
        for run in runs:
            counts[model_status(run.status)] += 1
        summary.add_row(config_.name, str(len(runs)), *(str(v) for v in counts.values()))
    console.print(summary)


def _backfill_one(
    sessions: Any,
    registered: Any,
    monitor: Any,
    cache: Any,
    t1: datetime,
    t2: datetime,
    device: str,
) -> list[Any]:
    """One monitor's backfill under a progress bar (windows, or records for count windows)."""
    from monitor.runs.monitoring import backfill as run_backfill
    from monitor.runs.monitoring import due_backfill_spans
    from monitor.runs.windows import load_span

    by_time = monitor.window.by == "time"
    now = datetime.now(UTC)
    with progress_bar(
        "{task.completed:,}/{task.total:,} " + ("windows" if by_time else "records")
    ) as progress:
        if by_time:
            total = len(due_backfill_spans(sessions, registered, monitor, t1, t2, now))
        else:
            with sessions() as session:
                found = load_span(session, registered, t1, t2)
            total = 0 if found is None else found.num_rows
        task = progress.add_task(f"{registered.spec.name} / {monitor.name}", total=total)
        runs: list[Any] = run_backfill(
            sessions,
            registered,
            monitor,
            cache,
            t1,
            t2,
            device=device,
            progress=lambda rows: progress.advance(task, 1 if by_time else rows),
            now=now,
        )
    return runs


_STATUS_STYLE = {
    Status.OK: "green",
    Status.WARNING: "yellow",
    Status.DRIFT: "bold red",
    Status.NO_DATA: "dim",
}
STATUS_COLUMNS = [
    Column("model"),
    Column("version", drop=2),
    Column("status"),
    Column("since", drop=3),
    Column("monitors", drop=1, wrap=True),
    Column("last run", drop=4),
]
# the columns of the backfill summary, in this order
COUNTED = (Status.OK, Status.WARNING, Status.DRIFT, Status.NO_DATA)


def status(
    model: Annotated[str | None, typer.Argument(help="only this model")] = None,
    wide: WideOption = False,
    config: ConfigOption = None,
) -> None:
    """Each model's status (ok, warning, drift, no data), since when, and who schedules."""
    from monitor.runs.status import leader, model_statuses  # Core queries, no ORM

    with engine_of(settings_of(config)).connect() as conn:
        statuses = model_statuses(conn, model)
        holder, heartbeat = leader(conn)
    if model is not None and not statuses:
        console.print(f"[red]unknown model {model!r}[/]")
        raise typer.Exit(1)
    rows = [
        [
            s.model,
            s.version,
            f"[{_STATUS_STYLE[s.status]}]{s.status.label}[/]",
            show_time(s.since),
            ", ".join(f"{m.monitor}: {m.status.label}" for m in s.monitors),
            show_time(s.last_run_at),
        ]
        for s in statuses
    ]
    console.print(fitted(console, STATUS_COLUMNS, rows, wide=wide))
    lines = _late_lines(statuses) + _ignored_lines(statuses) + _untested_lines(statuses)
    for line in lines:
        console.print(line, style="yellow", highlight=False, markup=False)
    for line in _estimator_lines(statuses):
        console.print(line, highlight=False, markup=False)
    if holder is None:
        console.print("scheduler: no leader has run yet")
    else:
        console.print(f"scheduler leader: {holder} (last heartbeat {show_time(heartbeat)})")


def _late_lines(statuses: list[Any]) -> list[str]:
    """One line per monitor with records that arrived after their window was computed, with
    the backfill that recomputes those windows."""
    when = "%Y-%m-%dT%H:%M:%S"  # UTC, as --from and --to read it
    return [
        f"{s.model} / {m.monitor}: {m.late_records} records arrived after their window was "
        f"computed ({m.late_windows} windows); recompute them with `tidewatch backfill "
        f"{s.model} --monitor {m.monitor} --from {m.late_from.astimezone(UTC).strftime(when)} "
        f"--to {m.late_to.astimezone(UTC).strftime(when)}`"
        for s in statuses
        for m in s.monitors
        if m.late_records and m.late_from is not None and m.late_to is not None
    ]


def _estimator_lines(statuses: list[Any]) -> list[str]:
    """One line per model with label-free estimates: the estimator and its backtest error."""
    return [
        f"{s.model}: performance estimated by {s.estimator} "
        + (
            f"(backtest accuracy error {s.estimator_error:.3f} over {s.estimator_windows} windows)"
            if s.estimator_error is not None
            else f"({s.estimator_reason})"
        )
        for s in statuses
        if s.estimator is not None
    ]


def _untested_lines(statuses: list[Any]) -> list[str]:
    """One line per monitor whose drift tests leave some input features out."""
    return [
        f"{s.model} / {m.monitor}: no drift test on {', '.join(m.untested)} "
        "(its detectors map their kind to none)"
        for s in statuses
        for m in s.monitors
        if m.untested
    ]


def _ignored_lines(statuses: list[Any]) -> list[str]:
    """One line per model whose recent telemetry carried features it does not declare."""
    return [
        f"{s.model}: undeclared features left out of recent telemetry: "
        + ", ".join(f"{name} ({n:,} records)" for name, n in s.ignored_features.items())
        + " (declare them in the spec to monitor them)"
        for s in statuses
        if s.ignored_features
    ]


COMMANDS: list[Callable[..., None]] = [detect, backfill, status]
