"""``tidewatch collect``: send a batch file as telemetry, or a spool folder that a client left
behind (over HTTP, like a module)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from monitor.cli.common import (
    DEFAULT_URL,
    KeyOption,
    UrlOption,
    console,
    progress_bar,
)

if TYPE_CHECKING:
    import httpx


def collect(
    model: str,
    file: Annotated[
        Path | None,
        typer.Argument(exists=True, dir_okay=False, help="CSV, Parquet or NPZ"),
    ] = None,
    drain: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            file_okay=False,
            help="instead of FILE: a client's spool folder to send (records and labels)",
        ),
    ] = None,
    url: UrlOption = DEFAULT_URL,
    key: KeyOption = "",
    batch_rows: Annotated[int, typer.Option(min=1, help="records per request")] = 5_000,
    sampling_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="share of predictions the file holds")
    ] = 1.0,
) -> None:
    """Send the records of a batch file to MODEL as telemetry, with a progress bar; or, with
    --drain DIR, what a client left in its spool folder (it names the folder when it closes
    with batches unsent). Exits 1 when records remain unsent.

    Columns as for a reference file, plus optional id and timestamp; without ids each record
    is named after the file's digest and its row, so sending a file twice is harmless.
    """  # plain text: typer shows this docstring as the command's --help
    if (file is None) == (drain is None):
        console.print("[red]give either FILE or --drain DIR[/]")
        raise typer.Exit(2)
    if drain is not None:
        _drain(model, drain, url, key)
        return
    assert file is not None
    import httpx

    from monitor.data.batch_files import SUFFIXES, count_rows, read_chunks, to_parquet

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
        progress_bar("{task.completed:,} records") as progress,
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


def _drain(model: str, folder: Path, url: str, key: str) -> None:
    """Send a spool folder under a progress bar; exit 1 if anything stays in it."""
    from collectors.drain import send_spool, spool_records

    with progress_bar("{task.completed:,}/{task.total:,} records and labels") as progress:
        task = progress.add_task(f"draining {folder}", total=spool_records(folder))
        report = send_spool(folder, url, model, key, progress=lambda n: progress.advance(task, n))
    for problem in report.problems:
        console.print(problem, style="red", markup=False, highlight=False)
    if any(p.startswith("Tidewatch did not answer") for p in report.problems):
        console.print(
            "Is `tidewatch serve` running there? Set the address with --url or TIDEWATCH_URL."
        )
    console.print(
        f"{model}: {report.sent} records stored, {report.duplicates} already there, "
        f"{report.labels} labels stored; {report.remaining} left in {folder}"
    )
    if not report.complete:
        raise typer.Exit(1)


def _post_with_retries(
    http: httpx.Client, endpoint: str, body: bytes, headers: dict[str, str], rate: float
) -> dict[str, int]:
    import time

    import httpx

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


COMMANDS: list[Callable[..., None]] = [collect]
