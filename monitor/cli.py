"""The `tidewatch` command line."""

from __future__ import annotations

import json
import logging
import os
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

from monitor.settings import Settings, load_settings

app = typer.Typer(help="Tidewatch: monitoring for ML models in production.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema and retention.", no_args_is_help=True)
models_app = typer.Typer(help="Register and list models.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
reference_app = typer.Typer(help="Reference data.", no_args_is_help=True)
monitors_app = typer.Typer(help="Monitor configuration.", no_args_is_help=True)
dashboards_app = typer.Typer(help="Grafana dashboards generated from code.", no_args_is_help=True)
alerts_app = typer.Typer(help="Alerts: list, acknowledge, silence.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(models_app, name="models")
app.add_typer(keys_app, name="keys")
app.add_typer(reference_app, name="reference")
app.add_typer(monitors_app, name="monitors")
app.add_typer(dashboards_app, name="dashboards")
app.add_typer(alerts_app, name="alerts")
console = Console()

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML settings file", envvar="TIDEWATCH_CONFIG"),
]


def _settings(config: Path | None, **overrides: Any) -> Settings:
    try:
        return load_settings(config, **{k: v for k, v in overrides.items() if v is not None})
    except (ValidationError, FileNotFoundError, tomllib.TOMLDecodeError) as exc:
        console.print(f"[red]invalid settings:[/] {exc}")
        raise typer.Exit(2) from None


def _engine(settings: Settings) -> Any:
    from monitor.db.engine import make_engine
    from monitor.db.migrate import upgrade

    engine = make_engine(settings.database_url)
    upgrade(engine)
    return engine


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="bind address")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port")] = None,
) -> None:
    """Run the HTTP service (migrations run at start unless migrate_on_start is false)."""
    from monitor.server import serve as run

    run(_settings(config, host=host, port=port))


@app.command()
def demo(
    workdir: Annotated[Path | None, typer.Option(help="keep the demo's data here")] = None,
    records: Annotated[int, typer.Option(min=400, help="telemetry records to stream")] = 3000,
) -> None:
    """The whole loop on embedded defaults: serve, register, reference, stream, detect."""
    from monitor.demo import run_demo

    run_demo(workdir, records=records, console=console)


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = None) -> None:
    """Bring the database schema up to date (safe to run from several processes at once)."""
    from monitor.db.migrate import current_revision

    engine = _engine(_settings(config))
    console.print(f"database at revision {current_revision(engine)}")


@db_app.command("purge")
def db_purge(config: ConfigOption = None) -> None:
    """Delete telemetry older than the retention period now."""
    from monitor.db.engine import make_sessionmaker
    from monitor.retention import purge_expired

    settings = _settings(config)
    removed = purge_expired(make_sessionmaker(_engine(settings)), settings.retention_days)
    console.print(f"purged {removed} telemetry batches older than {settings.retention_days} days")


def _read_spec(path: Path) -> dict[str, Any]:
    text = path.read_text()
    data: dict[str, Any] = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    return data


@models_app.command("create")
def models_create(
    spec_file: Annotated[Path, typer.Argument(exists=True, help="model spec, JSON or TOML")],
    config: ConfigOption = None,
) -> None:
    """Register a model (or a new version, or new monitors) from a spec file."""
    from monitor.db.engine import make_sessionmaker
    from monitor.db.models import SchemaConflict, upsert_model
    from monitor.schema import ModelSpec

    try:
        spec = ModelSpec.model_validate(_read_spec(spec_file))
    except (ValidationError, ValueError) as exc:
        console.print(f"[red]invalid model spec:[/] {exc}")
        raise typer.Exit(2) from None
    with make_sessionmaker(_engine(_settings(config)))() as session:
        try:
            _, created = upsert_model(session, spec)
        except SchemaConflict as exc:
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(1) from None
    console.print(f"{'created' if created else 'updated'} {spec.name} version {spec.version}")


@models_app.command("list")
def models_list(config: ConfigOption = None) -> None:
    """The registered models with their current version and data volume."""
    from monitor.db.engine import make_sessionmaker
    from monitor.db.models import list_models
    from monitor.db.references import get_reference
    from monitor.db.telemetry import count_records

    table = Table("model", "version", "task", "features", "reference rows", "records")
    with make_sessionmaker(_engine(_settings(config)))() as session:
        for m in list_models(session):
            ref = get_reference(session, m)
            table.add_row(
                m.spec.name,
                m.spec.version,
                m.spec.output.task,
                str(len(m.spec.features)),
                "-" if ref is None else str(ref.n_rows),
                str(count_records(session, m)),
            )
    console.print(table)


@keys_app.command("create")
def keys_create(
    scope: Annotated[
        list[str], typer.Option("--scope", "-s", help="admin, read or ingest:<model>")
    ],
    description: Annotated[str, typer.Option(help="who or what uses the key")] = "",
    config: ConfigOption = None,
) -> None:
    """Create an API key; it is printed once and stored only as a hash."""
    from monitor import keys
    from monitor.db.engine import make_sessionmaker

    try:
        keys.validate_scopes(scope)
    except ValueError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    with make_sessionmaker(_engine(_settings(config)))() as session:
        key = keys.create_key(session, scope, description)
    typer.echo(key)


@keys_app.command("revoke")
def keys_revoke(
    prefix: Annotated[str, typer.Argument(help="the key's first 10 characters")],
    config: ConfigOption = None,
) -> None:
    """Revoke keys by their prefix."""
    from monitor import keys
    from monitor.db.engine import make_sessionmaker

    with make_sessionmaker(_engine(_settings(config)))() as session:
        n = keys.revoke(session, prefix)
    console.print(f"revoked {n} key(s)")


_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".json": "json"}


@reference_app.command("upload")
def reference_upload(
    model: str,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV, Parquet or JSON")],
    url: Annotated[str, typer.Option(envvar="TIDEWATCH_URL", help="Tidewatch base URL")] = (
        "http://127.0.0.1:8000"
    ),
    key: Annotated[str, typer.Option(envvar="TIDEWATCH_KEY", help="admin API key")] = "",
) -> None:
    """Upload the reference of MODEL's current version, streamed, with a progress bar."""
    fmt = _FORMATS.get(file.suffix.lower())
    if fmt is None:
        console.print(f"[red]unknown file type {file.suffix!r}; use .csv, .parquet or .json[/]")
        raise typer.Exit(2)
    size = file.stat().st_size
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task(f"uploading {file.name}", total=size)

        def chunks() -> Iterator[bytes]:
            with file.open("rb") as handle:
                while chunk := handle.read(1 << 20):
                    progress.advance(task, len(chunk))
                    yield chunk

        try:
            response = httpx.post(
                f"{url.rstrip('/')}/api/v1/models/{model}/reference",
                params={"format": fmt},
                content=chunks(),
                headers={"Authorization": f"Bearer {key}", "Content-Length": str(size)},
                timeout=None,
            )
        except httpx.HTTPError as exc:
            console.print(f"[red]could not reach {url}: {exc}[/]")
            raise typer.Exit(1) from None
    if response.status_code >= 300:
        console.print(f"[red]refused ({response.status_code}):[/] {response.text}")
        raise typer.Exit(1)
    body = response.json()
    console.print(f"reference of {body['model']} v{body['version']}: {body['rows']} rows stored")


@reference_app.command("promote")
def reference_promote(
    model: str,
    start: Annotated[str, typer.Option("--from", help="start, ISO 8601 (UTC by default)")],
    end: Annotated[str, typer.Option("--to", help="end (excluded), ISO 8601")],
    config: ConfigOption = None,
) -> None:
    """Make MODEL's production records between --from and --to its current version's reference.

    For after a retraining: drift is then measured against the data the new model learnt from.
    """
    from monitor.db.engine import make_sessionmaker
    from monitor.db.models import get_model
    from monitor.db.references import promote_window

    t1, t2 = _when(start), _when(end)
    with make_sessionmaker(_engine(_settings(config)))() as session:
        registered = get_model(session, model)
        if registered is None:
            console.print(f"[red]unknown model {model!r}[/]")
            raise typer.Exit(1)
        try:
            row = promote_window(session, registered, t1, t2)
        except ValueError as exc:
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(1) from None
    console.print(
        f"reference of {model} v{registered.spec.version}: {row.n_rows} production records"
    )


@monitors_app.command("apply")
def monitors_apply(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="TOML or JSON")],
    config: ConfigOption = None,
) -> None:
    """Give models the monitors of a file (validated whole before anything changes)."""
    from monitor.db.engine import make_sessionmaker
    from monitor.monitor_file import apply_monitor_file, read_monitor_file

    try:
        parsed = read_monitor_file(file)
        with make_sessionmaker(_engine(_settings(config)))() as session:
            changed = apply_monitor_file(session, parsed)
    except ValueError as exc:
        console.print(f"[red]invalid monitors:[/] {exc}")
        raise typer.Exit(2) from None
    for name in changed:
        console.print(f"{name}: monitors updated")


@monitors_app.command("show")
def monitors_show(model: str, config: ConfigOption = None) -> None:
    """MODEL's monitors as JSON."""
    from monitor.db.engine import make_sessionmaker
    from monitor.db.models import get_model

    with make_sessionmaker(_engine(_settings(config)))() as session:
        registered = get_model(session, model)
    if registered is None:
        console.print(f"[red]unknown model {model!r}[/]")
        raise typer.Exit(1)
    typer.echo(json.dumps([m.model_dump(mode="json") for m in registered.spec.monitors], indent=2))


@dashboards_app.command("build")
def dashboards_build(
    directory: Annotated[Path, typer.Argument(file_okay=False, help="where to write the JSON")],
) -> None:
    """Write every dashboard as Grafana JSON (sorted keys) into DIRECTORY."""
    from dashboards.build import write_all

    directory.mkdir(parents=True, exist_ok=True)
    for path in write_all(directory):
        console.print(f"wrote {path}")


@dashboards_app.command("push")
def dashboards_push(
    grafana_url: Annotated[str, typer.Option(envvar="GRAFANA_URL", help="Grafana base URL")],
    token: Annotated[
        str, typer.Option(envvar="GRAFANA_TOKEN", help="service account token (Editor)")
    ],
    folder_uid: Annotated[str | None, typer.Option(help="Grafana folder to save into")] = None,
) -> None:
    """Upload every dashboard to Grafana (by uid, updating in place)."""
    from grafana_client.client import GrafanaException

    from dashboards.build import build_all
    from dashboards.push import push_all

    try:
        urls = push_all(grafana_url, token, build_all(), folder_uid=folder_uid)
    except GrafanaException as exc:
        console.print(f"[red]Grafana refused ({exc.status_code}):[/] {exc.message}")
        raise typer.Exit(1) from None
    except Exception as exc:  # connection errors come from niquests
        console.print(f"[red]could not reach {grafana_url}: {exc}[/]")
        raise typer.Exit(1) from None
    for url in urls:
        console.print(f"pushed {grafana_url.rstrip('/')}{url}")


@alerts_app.command("list")
def alerts_list(
    state: Annotated[str | None, typer.Option(help="firing or resolved")] = None,
    model: Annotated[str | None, typer.Option(help="only this model")] = None,
    config: ConfigOption = None,
) -> None:
    """Alerts, newest first."""
    from sqlalchemy import select

    from monitor.db.engine import make_sessionmaker
    from monitor.db.tables import Alert, Model

    table = Table("id", "model", "rule", "severity", "state", "since", "summary", "ack / silence")
    with make_sessionmaker(_engine(_settings(config)))() as session:
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
                notes.append(f"silenced until {_time(alert.silenced_until)}")
            table.add_row(
                str(alert.id),
                name,
                alert.rule,
                alert.severity,
                f"[{style}]{alert.state}[/]",
                _time(alert.started_at),
                alert.summary,
                ", ".join(notes),
            )
    console.print(table)


def _alert_action(alert_id: int, config: Path | None, action: str, **kwargs: Any) -> None:
    from monitor.alerting import NotFiring, acknowledge, silence
    from monitor.db.engine import make_sessionmaker
    from monitor.db.tables import Alert

    with make_sessionmaker(_engine(_settings(config)))() as session:
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
            "acknowledged" if action == "ack" else f"silenced until {_time(alert.silenced_until)}"
        )
    console.print(f"alert {alert_id}: {done}")


@alerts_app.command("ack")
def alerts_ack(
    alert_id: int,
    by: Annotated[str, typer.Option(help="who acknowledges")] = "",
    config: ConfigOption = None,
) -> None:
    """Acknowledge a firing alert: no more re-notifications until it resolves."""
    _alert_action(alert_id, config, "ack", by=by)


@alerts_app.command("silence")
def alerts_silence(
    alert_id: int,
    hours: Annotated[float, typer.Option("--hours", min=0.001, help="how long")] = 4.0,
    config: ConfigOption = None,
) -> None:
    """Silence an alert: no notification of it for --hours."""
    _alert_action(alert_id, config, "silence", seconds=hours * 3600)


@app.command()
def collect(
    model: str,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV, Parquet or NPZ")],
    url: Annotated[str, typer.Option(envvar="TIDEWATCH_URL", help="Tidewatch base URL")] = (
        "http://127.0.0.1:8000"
    ),
    key: Annotated[str, typer.Option(envvar="TIDEWATCH_KEY", help="ingest or admin key")] = "",
    batch_rows: Annotated[int, typer.Option(min=1, help="records per request")] = 5_000,
    sampling_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="share of predictions the file holds")
    ] = 1.0,
) -> None:
    """Send the records of a batch file to MODEL as telemetry, with a progress bar.

    Columns as for a reference file, plus optional ``id`` and ``timestamp``; without ids each
    record is named after the file's digest and its row, so sending a file twice is harmless.
    """
    from monitor.batch_files import SUFFIXES, count_rows, read_chunks, to_parquet

    if file.suffix.lower() not in SUFFIXES:
        console.print(f"[red]unknown file type {file.suffix!r}; use {sorted(SUFFIXES)}[/]")
        raise typer.Exit(2)
    endpoint = f"{url.rstrip('/')}/api/v1/models/{model}/telemetry"
    headers = {
        "Authorization": f"Bearer {key}",
        "Content-Type": "application/vnd.apache.parquet",
    }
    accepted = duplicates = 0
    with (
        Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            "{task.completed:,} records",
            console=console,
        ) as progress,
        httpx.Client(timeout=120) as http,
    ):
        task = progress.add_task(f"collecting {file.name}", total=count_rows(file))
        try:
            for chunk in read_chunks(file, batch_rows):
                answer = _post_with_retries(
                    http, endpoint, to_parquet(chunk), headers, sampling_rate
                )
                accepted += answer["accepted"]
                duplicates += answer["duplicates"]
                progress.advance(task, chunk.num_rows)
        except ValueError as exc:
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(2) from None
    console.print(f"{model}: {accepted} records stored, {duplicates} already there")


def _post_with_retries(
    http: httpx.Client, endpoint: str, body: bytes, headers: dict[str, str], rate: float
) -> dict[str, int]:
    import time

    for attempt in range(4):
        try:
            response = http.post(
                endpoint, content=body, headers=headers, params={"sampling_rate": rate}
            )
        except httpx.HTTPError as exc:
            problem = str(exc)
        else:
            if response.status_code < 300:
                answer: dict[str, int] = response.json()
                return answer
            if response.status_code < 500:
                console.print(f"[red]refused ({response.status_code}):[/] {response.text}")
                raise typer.Exit(1)
            problem = f"HTTP {response.status_code}"
        time.sleep(0.5 * 2**attempt)  # the ids make a resend harmless
    console.print(f"[red]Tidewatch did not answer: {problem}[/]")
    raise typer.Exit(1)


def _monitors_of(settings: Settings, model: str, monitor: str | None) -> tuple[Any, Any, list[Any]]:
    """Sessions, the model's current version and its monitors (or the one named); exits with a
    message when either is unknown."""
    from monitor.db.engine import make_sessionmaker
    from monitor.db.models import get_model

    sessions = make_sessionmaker(_engine(settings))
    with sessions() as session:
        registered = get_model(session, model)
    if registered is None:
        console.print(f"[red]unknown model {model!r}[/]")
        raise typer.Exit(1)
    monitors = [m for m in registered.spec.monitors if monitor is None or m.name == monitor]
    if not monitors:
        console.print(f"[red]model {model!r} has no monitor {monitor!r}[/]")
        raise typer.Exit(1)
    return sessions, registered, monitors


@app.command()
def detect(
    model: str,
    monitor: Annotated[str | None, typer.Option(help="run only this monitor")] = None,
    config: ConfigOption = None,
) -> None:
    """Run MODEL's monitors now against the database and print the results.

    A sliding monitor runs once; a tumbling one computes every window closed since its last.
    """
    from monitor.alerting import Alerting
    from monitor.db.results import run_results
    from monitor.monitoring import run_due
    from monitor.pipeline import ReferenceCache

    settings = _settings(config)
    sessions, registered, monitors = _monitors_of(settings, model, monitor)
    cache = ReferenceCache(1)
    for config_ in monitors:
        runs = run_due(
            sessions, registered, config_, cache, device=settings.device, trigger="manual"
        )
        Alerting(settings, sessions).after_runs(registered, config_.name, runs)
        if not runs:
            console.print(f"{model} / {config_.name}: no window is due")
        for run in runs:
            table = Table(
                "feature",
                "test",
                "statistic",
                "p-value",
                "adjusted",
                "drift",
                title=f"{model} / {config_.name}: {run.status} ({run.message})",
            )
            with sessions() as session:
                for r in run_results(session, run.id):
                    table.add_row(
                        r.feature,
                        r.method,
                        _fmt(r.statistic),
                        _fmt(r.p_value),
                        _fmt(r.p_adjusted),
                        "DRIFT" if r.drift else "ok",
                    )
            console.print(table)


def _when(text: str) -> datetime:
    """An ISO 8601 time (UTC when it names no zone) or a date."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not an ISO 8601 time such as 2026-11-01T00:00"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@app.command()
def backfill(
    model: str,
    start: Annotated[str, typer.Option("--from", help="start, ISO 8601 (UTC by default)")],
    end: Annotated[str, typer.Option("--to", help="end (excluded), ISO 8601")],
    monitor: Annotated[str | None, typer.Option(help="only this monitor")] = None,
    config: ConfigOption = None,
) -> None:
    """Recompute MODEL's results over history, replacing earlier runs of the same windows."""
    from monitor.monitoring import model_status
    from monitor.pipeline import ReferenceCache

    t1, t2 = _when(start), _when(end)
    if t1 >= t2:
        console.print("[red]--from must be before --to[/]")
        raise typer.Exit(2)
    settings = _settings(config)
    sessions, registered, monitors = _monitors_of(settings, model, monitor)
    cache = ReferenceCache(1)
    summary = Table("monitor", "windows", "ok", "warning", "drift", "no data")
    for config_ in monitors:
        runs = _backfill_one(sessions, registered, config_, cache, t1, t2, settings.device)
        counts = dict.fromkeys(("ok", "warning", "drift", "no_data"), 0)
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
    from monitor.monitoring import backfill as run_backfill
    from monitor.monitoring import due_backfill_spans
    from monitor.windows import load_span

    by_time = monitor.window.by == "time"
    now = datetime.now(UTC)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        "{task.completed:,}/{task.total:,} " + ("windows" if by_time else "records"),
        console=console,
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


_STATUS_STYLE = {"ok": "green", "warning": "yellow", "drift": "bold red", "no_data": "dim"}


@app.command()
def status(
    model: Annotated[str | None, typer.Argument(help="only this model")] = None,
    config: ConfigOption = None,
) -> None:
    """Each model's status (ok, warning, drift, no data), since when, and who schedules."""
    from monitor.db.engine import make_sessionmaker
    from monitor.status import leader, model_statuses

    with make_sessionmaker(_engine(_settings(config)))() as session:
        statuses = model_statuses(session, model)
        holder, heartbeat = leader(session)
    if model is not None and not statuses:
        console.print(f"[red]unknown model {model!r}[/]")
        raise typer.Exit(1)
    table = Table("model", "version", "status", "since", "monitors", "last run")
    for s in statuses:
        style = _STATUS_STYLE[s.status]
        table.add_row(
            s.model,
            s.version,
            f"[{style}]{s.status.replace('_', ' ')}[/]",
            _time(s.since),
            ", ".join(f"{m.monitor}: {m.status.replace('_', ' ')}" for m in s.monitors),
            _time(s.last_run_at),
        )
    console.print(table)
    if holder is None:
        console.print("scheduler: no leader has run yet")
    else:
        console.print(f"scheduler leader: {holder} (last heartbeat {_time(heartbeat)})")


def _time(moment: datetime | None) -> str:
    return "-" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@app.command()
def worker(config: ConfigOption = None) -> None:
    """Schedule and run monitors without serving HTTP (one leader among all processes)."""
    import signal
    import threading

    from monitor.db.engine import make_sessionmaker
    from monitor.pipeline import ReferenceCache
    from monitor.scheduler import Worker

    settings = _settings(config)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    engine = _engine(settings)
    sessions = make_sessionmaker(engine)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if settings.metrics_port:
        from prometheus_client import start_http_server

        from monitor.observability.registry import Exposition
        from monitor.observability.results import ResultsCollector

        exposition = Exposition(ResultsCollector(sessions, settings.metrics_cache_seconds))
        try:
            start_http_server(settings.metrics_port, settings.host, registry=exposition)
        except OSError as exc:
            console.print(
                f"[red]cannot serve metrics on {settings.host}:{settings.metrics_port}: {exc}[/] "
                "(set metrics_port to a free port, or 0 to turn metrics off)"
            )
            raise typer.Exit(2) from None
        console.print(f"metrics on http://{settings.host}:{settings.metrics_port}/metrics")
    with Worker(settings, engine, sessions, ReferenceCache(settings.reference_cache_size)):
        console.print("tidewatch worker running (Ctrl-C to stop)")
        stop.wait()


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def main() -> None:
    os.environ.setdefault("DO_NOT_TRACK", "1")  # library usage telemetry stays off
    app()
