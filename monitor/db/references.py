"""Reference sets: one per model version, stored as one compressed Arrow blob."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.db.models import RegisteredModel
from monitor.db.tables import ReferenceSet

if TYPE_CHECKING:  # Arrow loads when a reference is saved, not when one is counted
    import pyarrow as pa


def save_reference(session: Session, registered: RegisteredModel, table: pa.Table) -> ReferenceSet:
    """Store (or replace) the reference of the model's version."""
    from monitor.data.layout import to_bytes

    blob = to_bytes(table)
    row = session.scalar(
        select(ReferenceSet).where(ReferenceSet.model_version_id == registered.version.id)
    )
    if row is None:
        row = ReferenceSet(model_version_id=registered.version.id, n_rows=0, sha256="", data=b"")
        session.add(row)
    row.n_rows = table.num_rows
    row.sha256 = hashlib.sha256(blob).hexdigest()
    row.data = blob
    session.commit()
    return row


def get_reference(session: Session, registered: RegisteredModel) -> ReferenceSet | None:
    return session.scalar(
        select(ReferenceSet).where(ReferenceSet.model_version_id == registered.version.id)
    )


def promote_window(
    session: Session, registered: RegisteredModel, start: datetime, end: datetime
) -> ReferenceSet:
    """Make the production records with ``start <= ts < end`` the version's new reference.

    For after a retraining on recent data: the data the new model was trained on is the data
    its drift should be measured against. Raises ValueError when the span holds no records.
    """
    from monitor.runs.windows import load_span

    table = load_span(session, registered, start, end)
    if table is None:
        raise ValueError(
            f"no telemetry of {registered.spec.name} v{registered.spec.version} "
            f"between {start.isoformat()} and {end.isoformat()}"
        )
    return save_reference(session, registered, table)
