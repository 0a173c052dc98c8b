"""``tidewatch serve``, ``worker`` and ``demo``: the processes of the service."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from monitor.cli.common import (
    ConfigOption,
    console,
    engine_of,
    settings_of,
)
from monitor.cli.logging_options import service_logging


def serve(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="bind address")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port")] = None,
) -> None:
    """Run the HTTP service (migrations run at start unless migrate_on_start is false)."""
    from monitor.server import serve as run

    settings = settings_of(config, host=host, port=port)
    service_logging(settings)
    run(settings)


def worker(config: ConfigOption = None) -> None:
    """Schedule and run monitors without serving HTTP (one leader among all processes)."""
    import signal
    import threading

    from monitor.db.engine import make_sessionmaker
    from monitor.runs.pipeline import ReferenceCache
    from monitor.scheduling.scheduler import Worker

    settings = settings_of(config)
    service_logging(settings)
    engine = engine_of(settings, migrate=True)
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


def demo(
    workdir: Annotated[Path | None, typer.Option(help="keep the demo's data here")] = None,
    records: Annotated[int, typer.Option(min=400, help="telemetry records to stream")] = 3000,
) -> None:
    """The whole loop on embedded defaults: serve, register, reference, stream, detect."""
    from monitor.demo.run import run_demo

    run_demo(workdir, records=records, console=console)


COMMANDS: list[Callable[..., None]] = [serve, worker, demo]
