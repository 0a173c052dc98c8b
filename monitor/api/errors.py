"""Every error answer of the API, in one of two shapes, both declared in the OpenAPI document.

* 422, and 400 for malformed JSON: ``{"detail": [{"loc": ..., "msg": ..., "type": ...}]}``
  (:class:`ValidationErrorOut`). ``loc`` is one string, a path the user can find in what they
  sent (``records[3].features.depth``, ``query.before``, ``path.alert_id``), not FastAPI's array
  of parts: people and the CLI read it, and it is what :class:`SchemaError` names.
* every other 4xx, and 503: ``{"detail": "message"}`` (:class:`ErrorOut`), with the exception's
  headers (``WWW-Authenticate`` on 401).

Whatever raises the error (FastAPI's parameter checks, a pydantic model, a :class:`SchemaError`,
an ``HTTPException(422, ...)`` with a string or a list), the handlers here answer in that form,
so that the published schema is what the server sends.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from monitor.data.errors import SchemaError
from monitor.db.models import SchemaConflict

# where a 422 points when its raiser named no field (a bare ``HTTPException(422, "message")``)
WHOLE_REQUEST = "request"


class FieldError(BaseModel):
    loc: str = Field(
        description="where, as a path into the request: records[3].features.depth, "
        "query.before, path.alert_id; 'body' or 'request' for the whole of it"
    )
    msg: str
    type: str = Field(description="the kind of error, e.g. missing, json_invalid, schema")


class ValidationErrorOut(BaseModel):
    """422 (and 400 for malformed JSON): what is wrong, field by field."""

    detail: list[FieldError]


class ErrorOut(BaseModel):
    """Every other error: one message."""

    detail: str


def _loc(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def invalid(loc: str, msg: str, type: str = "value_error") -> HTTPException:
    """A 422 naming ``loc``, for the checks a route makes itself (raise it)."""
    return HTTPException(422, [{"loc": loc, "msg": msg, "type": type}])


def invalid_body(
    error: ValidationError, moved: Mapping[str, tuple[str | int, ...]]
) -> HTTPException:
    """A 422 for a model built from the request body and more, pointing into the body.

    A route that validates a whole :class:`ModelSpec` built from a partial body gets locs in
    the spec (``monitors[0].window``); ``moved`` maps the spec's fields to where they are in
    the body (``{"monitors": ()}`` for a body that is the list itself), so that ``loc`` names
    what the user sent. Locs elsewhere in the spec are kept: they name what the change broke.
    """
    detail = []
    for e in error.errors(include_url=False, include_input=False, include_context=False):
        loc = tuple(e["loc"])
        if loc and isinstance(loc[0], str) and loc[0] in moved:
            loc = moved[loc[0]] + loc[1:]
        detail.append({"loc": _loc(loc), "msg": e["msg"], "type": e["type"]})
    return HTTPException(422, detail)


def field_errors(errors: Iterable[Mapping[str, Any]]) -> tuple[int, list[dict[str, str]]]:
    """(status, detail) of pydantic-style errors: 400 for malformed JSON, else 422.

    ``loc`` may be a tuple of parts (pydantic, FastAPI) or already a path (kept as it is).
    """
    errors = list(errors)
    malformed = next((e for e in errors if e.get("type") == "json_invalid"), None)
    if malformed is not None:
        msg = f"malformed JSON: {malformed.get('msg', '')}"
        return 400, [{"loc": "body", "msg": msg, "type": "json_invalid"}]
    if any(e.get("type") == "model_type" and not e.get("loc") for e in errors):
        return 422, [{"loc": "body", "msg": "expected a JSON object", "type": "model_type"}]
    detail = []
    for e in errors:
        loc = e.get("loc", ())
        detail.append(
            {
                "loc": loc if isinstance(loc, str) else _loc(loc),
                "msg": str(e.get("msg", "")),
                "type": str(e.get("type", "value_error")),
            }
        )
    return 422, detail


def validation_detail(error: ValidationError) -> tuple[int, list[dict[str, str]]]:
    """(status, detail): 400 for malformed JSON, 422 for a body that does not fit the schema."""
    return field_errors(error.errors(include_url=False, include_input=False))


def _unprocessable(detail: Any) -> list[dict[str, str]]:
    """The detail of an ``HTTPException(422, detail)`` in the list form, whatever it was."""
    if isinstance(detail, list) and all(isinstance(e, Mapping) for e in detail) and detail:
        return field_errors(detail)[1]
    return [{"loc": WHOLE_REQUEST, "msg": str(detail), "type": "value_error"}]


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

    @app.exception_handler(RequestValidationError)
    async def _request_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own check of path and query parameters: its loc is an array of parts
        status, detail = field_errors(exc.errors())
        return JSONResponse(status_code=status, content={"detail": detail})

    # Starlette's class, not FastAPI's subclass: the router's own 404 and 405 come through here
    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 422:
            return JSONResponse(
                status_code=422, content={"detail": _unprocessable(exc.detail)}, headers=exc.headers
            )
        headers = exc.headers
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": ", ".join(_allowed_methods(request))}
        return JSONResponse(
            status_code=exc.status_code,
            content={"detail": exc.detail if isinstance(exc.detail, str) else str(exc.detail)},
            headers=headers,
        )


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> list[str]:
    """Every method the request's path answers to.

    Starlette's 405 names only the methods of the first route whose path matches, but GET and
    POST /api/v1/models (and the like) are two routes: its ``Allow`` would leave one out. Asking
    the router which methods fully match the path works whatever the nesting of routers.
    """
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes
        )
    ]
