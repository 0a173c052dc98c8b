"""Request bodies in the OpenAPI document for routes that read the raw body.

Telemetry, labels, models and references are read as raw bytes (to enforce the size limit while
streaming and to answer with our own 4xx messages), so FastAPI cannot infer their schemas. They
are added here so that /docs shows what to send.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from collectors.wire import LabelBatch, TelemetryBatch
from monitor.api.ingest import ReferenceBody
from monitor.spec.model import ModelSpec

_JSON_BODIES: dict[tuple[str, str], type[BaseModel]] = {
    ("/api/v1/models", "post"): ModelSpec,
    ("/api/v1/models/{name}/telemetry", "post"): TelemetryBatch,
    ("/api/v1/models/{name}/labels", "post"): LabelBatch,
}
_REFERENCE = ("/api/v1/models/{name}/reference", "post")


def _register(components: dict[str, Any], model: type[BaseModel]) -> dict[str, str]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(schema.pop("$defs", {}))
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def install_openapi(app: FastAPI) -> None:
    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for (path, method), model in _JSON_BODIES.items():
            schema["paths"][path][method]["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _register(components, model)}},
            }
        path, method = _REFERENCE
        schema["paths"][path][method]["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": _register(components, ReferenceBody)},
                "text/csv": {"schema": {"type": "string"}},
                "application/vnd.apache.parquet": {
                    "schema": {"type": "string", "format": "binary"}
                },
            },
        }
        app.openapi_schema = schema
        return schema

    app.openapi = build  # type: ignore[method-assign]
