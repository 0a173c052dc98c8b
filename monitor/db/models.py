"""Registered models and their versions.

The spec's pydantic models load where a spec is validated, not on import. Listing models and
reading their statuses needs only a few fields of the stored spec, read with Core in
:mod:`monitor.db.listing`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from monitor.db.tables import Model, ModelVersion

if TYPE_CHECKING:
    from monitor.spec.model import ModelSpec


class SchemaConflict(ValueError):
    """The same version was posted again with a different feature or output schema."""


@dataclass(frozen=True)
class RegisteredModel:
    model: Model
    version: ModelVersion
    spec: ModelSpec


def upsert_model(session: Session, spec: ModelSpec) -> tuple[RegisteredModel, bool]:
    """Create or update; a concurrent first registration of the same name is retried once."""
    try:
        return _upsert(session, spec)
    except IntegrityError:
        session.rollback()
        return _upsert(session, spec)


def _upsert(session: Session, spec: ModelSpec) -> tuple[RegisteredModel, bool]:
    """Create the model or version, or update its description and monitors.

    The feature and output schema of an existing version never change: stored telemetry was
    validated against it. A new schema needs a new version. Returns (model, created).
    """
    from monitor.spec.model import STORED, ModelSpec

    model = session.scalar(select(Model).where(Model.name == spec.name))
    created = False
    if model is None:
        model = Model(name=spec.name, current_version=spec.version)
        session.add(model)
        session.flush()
        created = True
    version = session.scalar(
        select(ModelVersion).where(
            ModelVersion.model_id == model.id, ModelVersion.version == spec.version
        )
    )
    payload = spec.model_dump(mode="json")
    if version is None:
        version = ModelVersion(model_id=model.id, version=spec.version, spec=payload)
        session.add(version)
        created = True
    else:
        old = ModelSpec.model_validate(version.spec, context=STORED)
        if old.features != spec.features or old.output != spec.output:
            raise SchemaConflict(
                f"model {spec.name!r} version {spec.version!r} already has a different schema; "
                "register the new schema under a new version"
            )
        version.spec = payload
    model.current_version = spec.version
    session.commit()
    return RegisteredModel(model, version, spec), created


def get_model(session: Session, name: str, version: str | None = None) -> RegisteredModel | None:
    """The model ``name`` at ``version`` (default: its current one); None when there is none.

    A name or version no spec can have (see NAME_PATTERN) names no model: it is answered
    without a query, since it may hold what a driver refuses (PostgreSQL text has no NUL).
    """
    from monitor.spec.model import NAME_PATTERN, STORED, ModelSpec

    if not re.fullmatch(NAME_PATTERN, name) or (
        version is not None and not re.fullmatch(NAME_PATTERN, version)
    ):
        return None
    model = session.scalar(select(Model).where(Model.name == name))
    if model is None:
        return None
    row = session.scalar(
        select(ModelVersion).where(
            ModelVersion.model_id == model.id,
            ModelVersion.version == (version or model.current_version),
        )
    )
    if row is None:
        return None
    return RegisteredModel(model, row, ModelSpec.model_validate(row.spec, context=STORED))


def list_models(session: Session) -> list[RegisteredModel]:
    names = session.scalars(select(Model.name).order_by(Model.name)).all()
    found = (get_model(session, name) for name in names)
    return [m for m in found if m is not None]
