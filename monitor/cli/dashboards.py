"""``tidewatch dashboards``: Grafana dashboards generated from code (files, Grafana's API)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from monitor.cli.common import (
    console,
)

group = typer.Typer(help="Grafana dashboards generated from code.", no_args_is_help=True)


@group.command("build")
def dashboards_build(
    directory: Annotated[Path, typer.Argument(file_okay=False, help="where to write the JSON")],
) -> None:
    """Write every dashboard as Grafana JSON (sorted keys) into DIRECTORY."""
    from dashboards.build import write_all

    directory.mkdir(parents=True, exist_ok=True)
    for path in write_all(directory):
        console.print(f"wrote {path}")


@group.command("push")
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
