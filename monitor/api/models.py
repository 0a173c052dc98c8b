"""Registering models and reading them back."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import TypeAdapter
from sqlalchemy.orm import Session

from monitor.api.deps import (
    ServiceState,
    SessionDep,
    StateDep,
    in_thread,
    model_or_404,
    read_body,
    require,
)
from monitor.api.schemas import ModelOut
from monitor.db.listing import count_records, reference_rows
from monitor.db.models import RegisteredModel, list_models, upsert_model
from monitor.spec.model import ModelSpec

router = APIRouter(prefix="/api/v1", tags=["models"])
_SPEC = TypeAdapter(ModelSpec)


def _out(session: Session, registered: RegisteredModel, created: bool = False) -> ModelOut:
    return ModelOut(
        name=registered.spec.name,
        version=registered.spec.version,
        created=created,
        spec=registered.spec,
        reference_rows=reference_rows(session, registered.version.id),
        records=count_records(session, registered.version.id),
    )


@router.post(
    "/models", response_model=ModelOut, dependencies=[Depends(require("admin"))], status_code=200
)
async def post_model(request: Request, state: StateDep) -> ModelOut:
    """Create a model (or a new version of it), or update its description and monitors."""
    spec = _SPEC.validate_json(await read_body(request, state.settings.max_body_bytes))
    return await in_thread(_upsert, state, spec)


def _upsert(state: ServiceState, spec: ModelSpec) -> ModelOut:
    with state.sessions() as session:
        registered, created = upsert_model(session, spec)
        return _out(session, registered, created)


@router.get("/models", response_model=list[ModelOut], dependencies=[Depends(require("read"))])
def get_models(session: SessionDep) -> list[ModelOut]:
    return [_out(session, m) for m in list_models(session)]


@router.get("/models/{name}", response_model=ModelOut, dependencies=[Depends(require("read"))])
def get_one_model(name: str, session: SessionDep) -> ModelOut:
    return _out(session, model_or_404(session, name))
