"""``tidewatch models``: register and list models (on the database)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.markup import escape

from monitor.cli.common import (
    ConfigOption,
    console,
    engine_of,
    settings_of,
)
from monitor.cli.tables import Column, WideOption, fitted
from monitor.spec.errors import describe

group = typer.Typer(help="Register and list models.", no_args_is_help=True)


def _read_spec(path: Path) -> dict[str, Any]:
    text = path.read_text()
    data: dict[str, Any] = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    return data


@group.command("create")
def models_create(
    spec_file: Annotated[Path, typer.Argument(exists=True, help="model spec, JSON or TOML")],
    config: ConfigOption = None,
) -> None:
    """Register a model (or a new version, or new monitors) from a spec file."""
    from monitor.db.engine import make_sessionmaker
    from monitor.db.models import SchemaConflict, upsert_model
    from monitor.spec.model import ModelSpec

    try:
        spec = ModelSpec.model_validate(_read_spec(spec_file))
    except (ValidationError, ValueError) as exc:
        reason = describe(exc) if isinstance(exc, ValidationError) else str(exc)
        console.print("[red]invalid model spec:[/]", escape(reason))
        raise typer.Exit(2) from None
    with make_sessionmaker(engine_of(settings_of(config)))() as session:
        try:
            _, created = upsert_model(session, spec)
        except SchemaConflict as exc:
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(1) from None
    console.print(f"{'created' if created else 'updated'} {spec.name} version {spec.version}")


@group.command("list")
def models_list(wide: WideOption = False, config: ConfigOption = None) -> None:
    """The registered models with their current version and data volume."""
    # Core on a connection: the ORM and its mapped classes are a quarter of this command
    from monitor.db.listing import count_records, reference_rows, stored_models

    rows = []
    with engine_of(settings_of(config)).connect() as conn:
        for m in stored_models(conn):
            n_rows = reference_rows(conn, m.version_id)
            rows.append(
                [
                    m.name,
                    m.version,
                    m.task,
                    str(m.n_features),
                    "-" if n_rows is None else str(n_rows),
                    str(count_records(conn, m.version_id)),
                ]
            )
    console.print(fitted(console, MODEL_COLUMNS, rows, wide=wide))


MODEL_COLUMNS = [
    Column("model"),
    Column("version"),
    Column("task", drop=2),
    Column("features", drop=3, justify="right"),
    Column("reference rows", drop=1, justify="right"),
    Column("records", drop=1, justify="right"),
]
