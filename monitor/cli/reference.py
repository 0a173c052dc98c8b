"""``tidewatch reference``: upload and promote reference data (over HTTP, like a module)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from monitor.cli.common import (
    DEFAULT_URL,
    KeyOption,
    UrlOption,
    console,
    parse_when,
    progress_bar,
    refused,
    unreachable,
)

group = typer.Typer(help="Reference data.", no_args_is_help=True)


_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".json": "json"}


@group.command("upload")
def reference_upload(
    model: str,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV, Parquet or JSON")],
    url: UrlOption = DEFAULT_URL,
    key: KeyOption = "",
) -> None:
    """Upload the reference of MODEL's current version, streamed, with a progress bar."""
    fmt = _FORMATS.get(file.suffix.lower())
    if fmt is None:
        console.print(f"[red]unknown file type {file.suffix!r}; use .csv, .parquet or .json[/]")
        raise typer.Exit(2)
    import httpx  # here: the commands on the database never load it
    from rich.progress import DownloadColumn, TransferSpeedColumn

    size = file.stat().st_size
    with progress_bar(DownloadColumn(), TransferSpeedColumn()) as progress:
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
            unreachable(url, exc)
    if response.status_code >= 300:
        refused(response)
    body = response.json()
    console.print(f"reference of {body['model']} v{body['version']}: {body['rows']} rows stored")


@group.command("promote")
def reference_promote(
    model: str,
    start: Annotated[str, typer.Option("--from", help="start, ISO 8601 (UTC by default)")],
    end: Annotated[str, typer.Option("--to", help="end (excluded), ISO 8601")],
    url: UrlOption = DEFAULT_URL,
    key: KeyOption = "",
) -> None:
    """Make MODEL's production records between --from and --to its current version's reference.

    For after a retraining: drift is then measured against the data the new model learnt from.
    """
    import httpx

    t1, t2 = parse_when(start), parse_when(end)
    try:
        response = httpx.post(
            f"{url.rstrip('/')}/api/v1/models/{model}/reference/promote",
            json={"from": t1.isoformat(), "to": t2.isoformat()},
            headers={"Authorization": f"Bearer {key}"},
            timeout=None,
        )
    except httpx.HTTPError as exc:
        unreachable(url, exc)
    if response.status_code >= 300:
        refused(response)
    body = response.json()
    console.print(
        f"reference of {body['model']} v{body['version']}: {body['rows']} production records"
    )
