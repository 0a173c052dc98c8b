"""The registered models as the listings read them, with SQLAlchemy Core only.

``tidewatch models list`` and ``tidewatch status`` read a few columns and print a table. They
query the Core tables of :mod:`monitor.db.schema` on a plain ``Connection``, so neither imports
the ORM nor declares its mapped classes (a quarter of their start-up, issue 17); the service
calls the same functions with its ORM ``Session``, which executes Core queries alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, select

from monitor.db.schema import model_versions, models, reference_sets, telemetry_batches

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


@dataclass(frozen=True)
class StoredModel:
    """A model at its current version, its spec as stored and not validated.

    What listing models and reading statuses need, without loading the spec's models, the
    detectors' registry and the alert rules (about 30 ms of a 0.5 s command line). A stored spec
    is a validated spec's JSON (:func:`monitor.db.models.upsert_model`), so these fields are
    always there.
    """

    name: str
    version: str
    version_id: int
    spec: dict[str, Any]

    @property
    def task(self) -> str:
        return str(self.spec["output"]["task"])

    @property
    def n_features(self) -> int:
        return len(self.spec["features"])

    @property
    def monitor_names(self) -> list[str]:
        return [str(m["name"]) for m in self.spec["monitors"]]


def stored_models(reader: Connection | Session) -> list[StoredModel]:
    """Every model at its current version, by name, in one query."""
    query = (
        select(models.c.name, model_versions.c.version, model_versions.c.id, model_versions.c.spec)
        .join_from(
            models,
            model_versions,
            (model_versions.c.model_id == models.c.id)
            & (model_versions.c.version == models.c.current_version),
        )
        .order_by(models.c.name)
    )
    return [StoredModel(*row) for row in reader.execute(query)]


def count_records(reader: Connection | Session, version_id: int) -> int:
    """Telemetry records stored for the model version (here, not beside the telemetry code,
    so that listing models loads no Arrow)."""
    total = reader.scalar(
        select(func.coalesce(func.sum(telemetry_batches.c.n_records), 0)).where(
            telemetry_batches.c.model_version_id == version_id
        )
    )
    return int(total or 0)


def reference_rows(reader: Connection | Session, version_id: int) -> int | None:
    """Rows of the version's reference set; None without one. Reads the count, not the blob."""
    found: int | None = reader.scalar(
        select(reference_sets.c.n_rows).where(reference_sets.c.model_version_id == version_id)
    )
    return found
