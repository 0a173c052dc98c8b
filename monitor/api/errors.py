"""Turning errors a user can cause into clear 4xx answers that name the field."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from monitor.data.errors import SchemaError
from monitor.db.models import SchemaConflict


def _loc(parts: tuple[Any, ...]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def validation_detail(error: ValidationError) -> tuple[int, list[dict[str, Any]]]:
    """(status, detail): 400 for malformed JSON, 422 for a body that does not fit the schema."""
    errors = error.errors(include_url=False, include_input=False)
    if any(e["type"] == "json_invalid" for e in errors):
        msg = next(e["msg"] for e in errors if e["type"] == "json_invalid")
        return 400, [{"loc": "body", "msg": f"malformed JSON: {msg}", "type": "json_invalid"}]
    if any(e["type"] == "model_type" and not e["loc"] for e in errors):
        return 422, [{"loc": "body", "msg": "expected a JSON object", "type": "model_type"}]
    return 422, [{"loc": _loc(tuple(e["loc"])), "msg": e["msg"], "type": e["type"]} for e in errors]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SchemaError)
    async def _schema_error(_: Request, exc: SchemaError) -> JSONResponse:
        return JSONResponse(
            status_code=422,
            content={"detail": [{"loc": exc.field, "msg": exc.message, "type": "schema"}]},
        )

    @app.exception_handler(SchemaConflict)
    async def _conflict(_: Request, exc: SchemaConflict) -> JSONResponse:
        return JSONResponse(status_code=409, content={"detail": str(exc)})

    @app.exception_handler(ValidationError)
    async def _validation(_: Request, exc: ValidationError) -> JSONResponse:
        status, detail = validation_detail(exc)
        return JSONResponse(status_code=status, content={"detail": detail})
