"""The OpenAPI document: what each route reads, and every answer it can give.

Request bodies: telemetry, labels, models, references, monitors, alert rules and alert actions
are read as raw bytes (to enforce the size limit while streaming and to answer with our own 4xx
messages), so FastAPI cannot infer their schemas. They are added here so that /docs shows what
to send and clients (and property-based tests) can generate it.

Responses: FastAPI documents only the 200 and its own 422 shape (``loc`` an array), which is not
what this service sends (see :mod:`monitor.api.errors`). Every status each operation can answer
is declared here, in one table, with the two error shapes the server really sends; the key
(``Authorization: Bearer``) is declared as a security scheme.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, TypeAdapter

from collectors.wire import LabelBatch, TelemetryBatch
from monitor.api.admission import UNSHED
from monitor.api.alerts import AckIn, SilenceIn
from monitor.api.errors import ErrorOut, ValidationErrorOut
from monitor.api.ingest import ReferenceBody
from monitor.api.monitors import AlertsIn
from monitor.api.schemas import PromoteIn, ReadyOut
from monitor.spec.model import ModelSpec, MonitorConfig

API = "/api/v1"
_JSON_BODIES: dict[tuple[str, str], Any] = {
    (f"{API}/models", "post"): ModelSpec,
    (f"{API}/models/{{name}}/telemetry", "post"): TelemetryBatch,
    (f"{API}/models/{{name}}/labels", "post"): LabelBatch,
    (f"{API}/models/{{name}}/monitors", "put"): list[MonitorConfig],
    (f"{API}/models/{{name}}/alerts/rules", "put"): AlertsIn,
    (f"{API}/models/{{name}}/reference/promote", "post"): PromoteIn,
    (f"{API}/alerts/{{alert_id}}/silence", "post"): SilenceIn,
}
# an empty body acknowledges anonymously
_OPTIONAL_BODIES: dict[tuple[str, str], type[BaseModel]] = {
    (f"{API}/alerts/{{alert_id}}/ack", "post"): AckIn,
}
_REFERENCE = (f"{API}/models/{{name}}/reference", "post")
_REPORT = (f"{API}/models/{{name}}/report", "get")
_CANDIDATES = (f"{API}/models/{{name}}/runs/{{run_id}}/label-candidates.csv", "get")
_LINKED = (_REPORT, _CANDIDATES)  # a run's signed report link opens these too

# The statuses each operation answers besides 200, read off its code. Two come on top, by rule:
# 401 and 403 on every /api/v1 route (the key check, a dependency of each), and 503 on every
# route that admission control may shed (all but UNSHED). A route missing here gets those and
# FastAPI's 422 if it has parameters (tests/monitor/test_schemathesis.py checks it is here).
_BODY = (400, 413, 422)  # malformed JSON, over max_body_bytes, does not fit the schema
ANSWERS: dict[tuple[str, str], tuple[int, ...]] = {
    ("/healthz", "get"): (),
    ("/readyz", "get"): (503,),
    (f"{API}/models", "get"): (),
    (f"{API}/models", "post"): (*_BODY, 409),
    (f"{API}/models/{{name}}", "get"): (404,),
    (f"{API}/models/{{name}}/telemetry", "post"): (404, *_BODY),
    (f"{API}/models/{{name}}/labels", "post"): (404, *_BODY),
    (f"{API}/models/{{name}}/reference", "post"): (404, *_BODY, 415),
    (f"{API}/models/{{name}}/detect", "post"): (404, 422),  # 422: a query parameter repeated
    (f"{API}/models/{{name}}/results", "get"): (404, 422),
    (f"{API}/models/{{name}}/runs/{{run_id}}", "get"): (404, 422),
    (f"{API}/models/{{name}}/report", "get"): (404, 422),
    _CANDIDATES: (404, 422),
    (f"{API}/models/{{name}}/monitors", "get"): (404,),
    (f"{API}/models/{{name}}/monitors", "put"): (404, *_BODY),
    (f"{API}/status", "get"): (),
    (f"{API}/models/{{name}}/status", "get"): (404,),
    (f"{API}/models/{{name}}/reference/promote", "post"): (404, *_BODY),
    (f"{API}/models/{{name}}/alerts/rules", "get"): (404,),
    (f"{API}/models/{{name}}/alerts/rules", "put"): (404, *_BODY),
    (f"{API}/alerts", "get"): (422,),
    (f"{API}/alerts/{{alert_id}}", "get"): (404, 422),
    (f"{API}/alerts/{{alert_id}}/ack", "post"): (404, 409, *_BODY),
    (f"{API}/alerts/{{alert_id}}/silence", "post"): (404, *_BODY),
    (f"{API}/alerts/{{alert_id}}/silence", "delete"): (404, 422),
}
_DESCRIPTIONS = {
    400: "malformed JSON",
    401: "no API key, or an unknown, revoked or expired one",
    403: "the key lacks the scope this route needs",
    404: "not found: the model, version, monitor, run or alert named does not exist",
    409: "conflict with the stored state",
    413: "the body is larger than the service accepts",
    415: "a body in a format this route does not read",
    422: "the request does not fit the schema (or the model's): what, field by field",
    503: "Tidewatch is at its limit of requests at once: retry after Retry-After seconds",
}
# where one operation's reason is more precise than the default
_SPECIFIC: dict[tuple[str, str, int], str] = {
    (f"{API}/models", "post", 409): "this version is registered with a different schema",
    (f"{API}/alerts/{{alert_id}}/ack", "post", 409): "the alert is not firing",
    (f"{API}/models/{{name}}/telemetry", "post", 413): (
        "the body is over max_body_bytes, or the batch over max_batch_records"
    ),
    (*_REFERENCE, 413): "the file is over max_reference_bytes",
    (*_REFERENCE, 415): (
        "not application/json, text/csv or application/vnd.apache.parquet, and no ?format"
    ),
}
_HEADERS = {
    401: {
        "WWW-Authenticate": {
            "description": "Bearer: send 'Authorization: Bearer <key>'",
            "required": True,
            "schema": {"type": "string"},
        }
    },
    503: {
        "Retry-After": {
            "description": "seconds to wait before trying again",
            "required": True,
            "schema": {"type": "integer"},
        }
    },
}
KEY_SCHEME = "bearerKey"
LINK_SCHEME = "reportLink"
_SECURITY_SCHEMES = {
    KEY_SCHEME: {
        "type": "http",
        "scheme": "bearer",
        "description": "an API key (`tidewatch keys create`) with the scope the route needs: "
        "read, admin, or ingest:<model>",
    },
    LINK_SCHEME: {
        "type": "apiKey",
        "in": "query",
        "name": "token",
        "description": "the token of a signed report link from an alert e-mail (with its "
        "expires); it opens that one run's report and its label candidates",
    },
}


@dataclass(frozen=True)
class Shapes:
    """References to the bodies of answers other than 200."""

    error: dict[str, Any]  # {"detail": "message"}
    validation: dict[str, Any]  # {"detail": [{"loc": ..., "msg": ..., "type": ...}]}
    ready: dict[str, Any]  # /readyz: {"status": "ready" | "unavailable"}


def _register(components: dict[str, Any], tp: Any) -> dict[str, Any]:
    """The schema of ``tp``: a reference to a component for a model, else inline."""
    schema = TypeAdapter(tp).json_schema(ref_template="#/components/schemas/{model}")
    components.update(schema.pop("$defs", {}))
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        components[tp.__name__] = schema
        return {"$ref": f"#/components/schemas/{tp.__name__}"}
    return schema


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _request_bodies(paths: dict[str, Any], components: dict[str, Any]) -> None:
    for (path, method), tp in _JSON_BODIES.items():
        paths[path][method]["requestBody"] = {
            "required": True,
            "content": _json(_register(components, tp)),
        }
    for (path, method), model in _OPTIONAL_BODIES.items():
        paths[path][method]["requestBody"] = {
            "required": False,
            "content": _json(_register(components, model)),
        }
    path, method = _REFERENCE
    paths[path][method]["requestBody"] = {
        "required": True,
        "content": {
            **_json(_register(components, ReferenceBody)),
            "text/csv": {"schema": {"type": "string"}},
            "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
        },
    }


def _codes(path: str, method: str, operation: dict[str, Any]) -> set[int]:
    codes = set(ANSWERS.get((path, method), ()))
    if (path, method) not in ANSWERS and operation.get("parameters"):
        codes.add(422)  # unknown to the table: FastAPI's parameter check, at least
    if path.startswith(f"{API}/"):
        codes |= {401, 403}
    if path not in UNSHED:
        codes.add(503)
    return codes


def _answer(path: str, method: str, code: int, given: dict[str, Any], shapes: Shapes) -> Any:
    description = given.get("description") or _SPECIFIC.get(
        (path, method, code), _DESCRIPTIONS[code]
    )
    answer: dict[str, Any] = {
        "description": description,
        "content": _json(shapes.validation if code in (400, 422) else shapes.error),
    }
    if code in _HEADERS:
        answer["headers"] = _HEADERS[code]
    return answer


def _responses(paths: dict[str, Any], shapes: Shapes) -> None:
    for path, operations in paths.items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            codes = _codes(path, method, operation)
            for status in [s for s in responses if s.isdigit() and int(s) >= 400]:
                if int(status) not in codes:
                    del responses[status]  # FastAPI's 422 where no parameter can be wrong
            for code in sorted(codes):
                given = responses.get(str(code), {})
                responses[str(code)] = _answer(path, method, code, given, shapes)
            if path.startswith(f"{API}/"):
                operation["security"] = [{KEY_SCHEME: []}]
                if (path, method) in _LINKED:
                    operation["security"].append({LINK_SCHEME: []})
    # the probe answers its own body, ready or not, not an error
    for answer in paths["/readyz"]["get"]["responses"].values():
        answer["content"] = _json(shapes.ready)
        answer.pop("headers", None)


def install_openapi(app: FastAPI) -> None:
    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = schema.setdefault("components", {})
        models = components.setdefault("schemas", {})
        _request_bodies(schema["paths"], models)
        shapes = Shapes(
            error=_register(models, ErrorOut),
            validation=_register(models, ValidationErrorOut),
            ready=_register(models, ReadyOut),
        )
        _responses(schema["paths"], shapes)
        # FastAPI's own 422 shape: no answer uses it any more
        for unused in ("HTTPValidationError", "ValidationError"):
            models.pop(unused, None)
        components["securitySchemes"] = _SECURITY_SCHEMES
        app.openapi_schema = schema
        return schema

    app.openapi = build  # type: ignore[method-assign]
