"""The `tidewatch` command line."""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Iterator
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
app.add_typer(db_app, name="db")
app.add_typer(models_app, name="models")
app.add_typer(keys_app, name="keys")
app.add_typer(reference_app, name="reference")
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


@app.command()
def detect(
    model: str,
    monitor: Annotated[str | None, typer.Option(help="run only this monitor")] = None,
    config: ConfigOption = None,
) -> None:
    """Run MODEL's monitors now against the database and print the results."""
    from monitor.db.engine import make_sessionmaker
    from monitor.db.models import get_model
    from monitor.db.results import run_results
    from monitor.pipeline import ReferenceCache, run_monitor

    settings = _settings(config)
    with make_sessionmaker(_engine(settings))() as session:
        registered = get_model(session, model)
        if registered is None:
            console.print(f"[red]unknown model {model!r}[/]")
            raise typer.Exit(1)
        monitors = [m for m in registered.spec.monitors if monitor is None or m.name == monitor]
        if not monitors:
            console.print(f"[red]model {model!r} has no monitor {monitor!r}[/]")
            raise typer.Exit(1)
        for config_ in monitors:
            run = run_monitor(
                session, registered, config_, ReferenceCache(1), device=settings.device
            )
            table = Table(
                "feature",
                "test",
                "statistic",
                "p-value",
                "adjusted",
                "drift",
                title=f"{model} / {config_.name}: {run.status} ({run.message})",
            )
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


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def main() -> None:
    os.environ.setdefault("DO_NOT_TRACK", "1")  # library usage telemetry stays off
    app()
