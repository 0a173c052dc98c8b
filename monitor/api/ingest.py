"""What deployed modules and operators send: telemetry, delayed labels, reference data."""

from __future__ import annotations

from typing import IO, Literal

import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from collectors.wire import LabelBatch, Record, TelemetryBatch
from monitor.api.deps import (
    ServiceState,
    StateDep,
    find_model,
    in_thread,
    model_or_404,
    read_body,
    require,
    spool_body,
)
from monitor.api.errors import invalid
from monitor.api.schemas import IngestOut, LabelsOut, ReferenceOut
from monitor.data import undeclared
from monitor.data.errors import SchemaError
from monitor.data.from_flat import flat_to_table
from monitor.data.from_records import records_to_table
from monitor.data.reference_files import read_reference
from monitor.db import telemetry
from monitor.db.models import RegisteredModel, get_model
from monitor.db.references import save_reference
from monitor.observability.service import DUPLICATES, INGESTED, count_ignored
from monitor.spec.model import NAME_PATTERN, reference_minimum

router = APIRouter(prefix="/api/v1", tags=["ingest"])


class ReferenceRecord(Record):
    """A reference row: the telemetry record format with an optional id."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(default="", max_length=200)  # ids are optional in a reference


class ReferenceBody(BaseModel):
    """JSON body of ``POST /api/v1/models/{name}/reference``."""

    model_config = ConfigDict(extra="forbid")
    records: list[ReferenceRecord] = Field(min_length=1)


_BATCH = TypeAdapter(TelemetryBatch)
_LABELS = TypeAdapter(LabelBatch)
_REFERENCE = TypeAdapter(ReferenceBody)
_CONTENT_TYPES = {
    "application/json": "json",
    "text/csv": "csv",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
}


def _store_telemetry(state: ServiceState, registered: RegisteredModel, body: bytes) -> IngestOut:
    batch = _BATCH.validate_json(body)
    limit = state.settings.max_batch_records
    if len(batch.records) > limit:
        raise HTTPException(413, f"{len(batch.records)} records in one batch; the limit is {limit}")
    ignored = undeclared.in_records(batch.records, registered.spec)
    table = records_to_table(batch.records, registered.spec)
    outcome = telemetry.ingest(
        state.sessions, state.engine, registered, table, batch.sampling_rate, ignored
    )
    return _counted(registered, outcome, ignored)


def _counted(
    registered: RegisteredModel, outcome: telemetry.IngestOutcome, ignored: dict[str, int]
) -> IngestOut:
    name = registered.spec.name
    INGESTED.labels(name).inc(outcome.accepted)
    DUPLICATES.labels(name).inc(outcome.duplicates)
    count_ignored(name, ignored)
    return IngestOut(
        accepted=outcome.accepted, duplicates=outcome.duplicates, ignored_features=ignored
    )


def _store_flat_telemetry(
    state: ServiceState, registered: RegisteredModel, body: bytes, fmt: str, sampling_rate: float
) -> IngestOut:
    import io

    import pyarrow as pa

    try:
        if fmt == "csv":
            options = pa_csv.ConvertOptions(strings_can_be_null=True)
            flat = pa_csv.read_csv(io.BytesIO(body), convert_options=options)
        else:
            flat = pq.read_table(io.BytesIO(body))
    except (pa.ArrowInvalid, OSError) as exc:
        raise invalid("body", f"could not read the {fmt} body: {exc}", "unreadable") from None
    limit = state.settings.max_batch_records
    if flat.num_rows > limit:
        raise HTTPException(413, f"{flat.num_rows} records in one batch; the limit is {limit}")
    if flat.num_rows == 0:
        raise invalid("body", "the batch holds no rows", "empty")
    # without ids a resend would count twice: batch files must name their records
    ignored = undeclared.in_flat(flat, registered.spec)
    table = flat_to_table(flat, registered.spec, require_ids=True, absent_as_missing=True)
    outcome = telemetry.ingest(
        state.sessions, state.engine, registered, table, sampling_rate, ignored
    )
    return _counted(registered, outcome, ignored)


@router.post(
    "/models/{name}/telemetry",
    response_model=IngestOut,
    dependencies=[Depends(require("ingest:{name}"))],
)
async def post_telemetry(
    name: str,
    request: Request,
    state: StateDep,
    sampling_rate: float = Query(
        default=1.0, gt=0.0, le=1.0, description="for CSV and Parquet bodies"
    ),
) -> IngestOut:
    """A batch of records; idempotent by record id. Answers once the batch is committed.

    JSON (``{"records": [...]}``) from the collectors, or a flat CSV or Parquet table (the
    reference's column layout plus an ``id`` column) from ``tidewatch collect``.
    """
    registered = await in_thread(find_model, state, name)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    fmt = _CONTENT_TYPES.get(content_type, "json")
    body = await read_body(request, state.settings.max_body_bytes)
    if fmt == "json":
        return await in_thread(_store_telemetry, state, registered, body)
    return await in_thread(_store_flat_telemetry, state, registered, body, fmt, sampling_rate)


def _store_labels(state: ServiceState, registered: RegisteredModel, body: bytes) -> LabelsOut:
    batch = _LABELS.validate_json(body)
    output = registered.spec.output
    for i, label in enumerate(batch.labels):
        if output.task == "classification" and label.label not in output.classes:
            raise SchemaError(
                f"labels[{i}].label", f"expected one of the model's classes {output.classes}"
            )
        if output.task == "regression" and (
            label.value is None or label.value != label.value or abs(label.value) == float("inf")
        ):
            raise SchemaError(f"labels[{i}].value", "a regression label needs a finite 'value'")
        for j, box in enumerate(label.boxes or []):
            if box.label not in output.classes:
                raise SchemaError(f"labels[{i}].boxes[{j}].label", f"unknown class {box.label!r}")
    stored, matched = telemetry.save_labels(state.sessions, state.engine, registered, batch.labels)
    return LabelsOut(stored=stored, matched=matched)


@router.post(
    "/models/{name}/labels",
    response_model=LabelsOut,
    dependencies=[Depends(require("ingest:{name}"))],
)
async def post_labels(name: str, request: Request, state: StateDep) -> LabelsOut:
    """Delayed true labels, joined to earlier records by id (a later label replaces one before)."""
    registered = await in_thread(find_model, state, name)
    body = await read_body(request, state.settings.max_body_bytes)
    return await in_thread(_store_labels, state, registered, body)


def _reference_format(request: Request, fmt: str | None) -> str:
    if fmt is not None:  # json, csv or parquet: the query parameter's type checked it
        return fmt
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in _CONTENT_TYPES:
        return _CONTENT_TYPES[content_type]
    raise HTTPException(
        415,
        "send the reference as application/json, text/csv or application/vnd.apache.parquet "
        "(or name it with ?format=json|csv|parquet)",
    )


def _json_reference(raw: bytes) -> ReferenceBody:
    """A JSON reference file; one that is not JSON at all is an unreadable file (422), as a CSV
    or Parquet one is, whatever its Content-Type said (?format=json decides)."""
    try:
        return _REFERENCE.validate_json(raw)
    except ValidationError as exc:
        malformed = next((e for e in exc.errors() if e["type"] == "json_invalid"), None)
        if malformed is None:
            raise
        msg = f"could not read the json file: {malformed['msg']}"
        raise invalid("body", msg, "unreadable") from None


def _store_reference(
    state: ServiceState, registered: RegisteredModel, spool: IO[bytes], fmt: str
) -> ReferenceOut:
    import pyarrow as pa

    try:
        if fmt == "json":
            body = _json_reference(spool.read())
            undeclared.in_records(body.records, registered.spec)  # refused, or left out
            for i, record in enumerate(body.records):
                record.id = record.id or f"ref-{i}"
            table = records_to_table(body.records, registered.spec)
        else:  # block by block: a wrong file is refused after its first block
            table = read_reference(spool, fmt, registered.spec)
    except (pa.ArrowInvalid, OSError) as exc:
        raise invalid("body", f"could not read the {fmt} file: {exc}", "unreadable") from None
    if table.num_rows == 0:
        raise invalid("body", "the reference holds no rows", "empty")
    need, who = reference_minimum(registered.spec)
    if table.num_rows < need:
        msg = f"the reference holds {table.num_rows} rows; {who} needs at least {need}"
        raise invalid("body", msg, "too_short")
    with state.sessions() as session:
        row = save_reference(session, registered, table)
        return ReferenceOut(
            model=registered.spec.name,
            version=registered.spec.version,
            rows=row.n_rows,
            sha256=row.sha256,
        )


def _reference_target(state: ServiceState, name: str, version: str | None) -> RegisteredModel:
    with state.sessions() as session:
        registered = model_or_404(session, name)
        if version is None or version == registered.spec.version:
            return registered
        found = get_model(session, name, version)
    if found is None:
        raise HTTPException(404, f"model {name!r} has no version {version!r}")
    return found


@router.post(
    "/models/{name}/reference",
    response_model=ReferenceOut,
    dependencies=[Depends(require("admin"))],
)
async def post_reference(
    name: str,
    request: Request,
    state: StateDep,
    format: Literal["json", "csv", "parquet"] | None = Query(
        default=None, description="json, csv or parquet (default: from the Content-Type)"
    ),
    version: str | None = Query(
        default=None, pattern=NAME_PATTERN, description="default: the current version"
    ),
) -> ReferenceOut:
    """Reference data for one version of the model: JSON records, CSV or Parquet.

    Each version has its own reference (a new version brings its own); this replaces the
    version's earlier one. The body is streamed to a temporary file and read from there, so it
    is not held twice.
    """
    registered = await in_thread(_reference_target, state, name, version)
    fmt = _reference_format(request, format)
    spool = await spool_body(request, state.settings.max_reference_bytes)
    try:
        return await in_thread(_store_reference, state, registered, spool, fmt)
    finally:
        spool.close()
