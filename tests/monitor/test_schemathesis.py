"""The whole HTTP API against its own OpenAPI document, property-based (schemathesis), on SQLite
and on PostgreSQL: no 5xx, and every answer (status, content type, body, headers) is one the
document declares. Valid and invalid requests both, with an admin key, on a registered model.

One pytest item per operation and backend (``test_api_answers_as_documented[POST /api/...]``),
each on a fresh database (the ``client`` fixture) holding the model of ``tests.conftest.SPEC``.
Nothing is left out: ``/metrics`` is not in the document (``include_in_schema=False``: its
Prometheus text has no schema), so it is not tried here (tests/monitor/test_metrics.py is).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
import schemathesis
import schemathesis.transport.requests
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from starlette.types import ASGIApp, Receive, Scope, Send

from monitor.api.openapi import ANSWERS
from monitor.app import create_app
from monitor.db import keys
from monitor.db.tables import ApiKey
from monitor.settings import Settings
from tests.conftest import SPEC
from tests.monitor.test_api_alerts import fire

# Bounded and reproducible: the same cases on every run (a failure replays the same way), about
# a minute per backend on the 2-core CI machine.
MAX_EXAMPLES = 25
SEED = 20260501
# An admin key stored in each test's database (a test value, not a secret): some cases are
# generated before their test's fixtures run (the coverage phase's, with the test), so the key
# they carry must be known then; the random one of the `admin` fixture is not.
KEY = "tw_schemathesis-admin-key"
# Where a request the document allows may still be refused with 422: its validity depends on
# what no static document can say (the registered model's features, classes and monitors; the
# records a span holds) or on rules across fields of a spec (a vector feature needs `dim`, a
# schedule exactly one of `every` and `cron`, a rule only the fields of its kind). The
# positive_data_acceptance check accepts 422 there; everywhere else a valid request must pass.
CHECKED_AGAINST_THE_MODEL = [
    "POST /api/v1/models",
    "POST /api/v1/models/{name}/telemetry",
    "POST /api/v1/models/{name}/labels",
    "POST /api/v1/models/{name}/reference",
    "PUT /api/v1/models/{name}/monitors",
    "PUT /api/v1/models/{name}/alerts/rules",
    "POST /api/v1/models/{name}/reference/promote",
]
CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "generation": {
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,
            "database": "none",  # nothing written under the checkout
        },
        # the key the document declares (securitySchemes.bearerKey), as configured credentials:
        # the negative cases that drop the header go without it, and ignored_auth retries each
        # accepted request without a key and with a wrong one
        "auth": {"openapi": {"bearerKey": {"bearer": KEY}}},
        "operations": [
            {
                "include-name": CHECKED_AGAINST_THE_MODEL,
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": ["2xx", "401", "403", "404", "409", "422"]
                    }
                },
            }
        ],
    }
)


class AppUnderTest:
    """The app of the running test, behind one ASGI callable that the schema is loaded from.

    The schema must exist when pytest collects (one item per operation), the app only in a
    test (its database comes from fixtures): each test points this at its own app. The app's
    lifespan runs under the ``client`` fixture, so the one schemathesis starts (once per
    process, on this object) is answered here and never reaches an app.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


def _document_app() -> ASGIApp:
    """An app that serves the OpenAPI document: it never connects to its database (no lifespan,
    no route that reads one), so the folder named in its URL need not outlive this call."""
    with tempfile.TemporaryDirectory(prefix="tidewatch-openapi-") as folder:
        url = f"sqlite:///{Path(folder) / 'unused.db'}"
        return create_app(Settings(database_url=url, migrate_on_start=False, scheduler=False))


UNDER_TEST = AppUnderTest(_document_app())
schema = schemathesis.openapi.from_asgi("/openapi.json", UNDER_TEST, config=CONFIG)
# The Parquet reference upload is "binary" in the document, a media type schemathesis has no
# serializer for (it would skip those cases, with a warning): the generated bytes go as they
# are. They are hardly ever a Parquet file, so they try how the server refuses a broken one.
schemathesis.serializer.alias("application/vnd.apache.parquet", "application/octet-stream")


@schema.hook("flatmap_path_parameters")
def _stored_rows(ctx: schemathesis.HookContext, path_parameters: dict[str, Any]) -> Any:
    """Random names and ids answer 404: half the cases name what each test stores instead (the
    model, its first run, its first alert), so that they reach what stands behind the 404."""
    if not path_parameters:
        return st.just(path_parameters)
    stored = {"name": SPEC["name"], "run_id": 1, "alert_id": 1}
    real = {**path_parameters, **{k: v for k, v in stored.items() if k in path_parameters}}
    return st.sampled_from([path_parameters, real])


@pytest.fixture
def under_test(
    client: TestClient, model: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Requests go to this test's app: its database, with the admin KEY and the model, its
    reference, telemetry, a drift run (id 1) and the alert it fired (id 1)."""
    with client.app.state.tidewatch.sessions() as session:  # type: ignore[attr-defined]
        row = ApiKey(key_hash=keys.hash_key(KEY), prefix=KEY[:10], scopes="admin")
        session.add(row)
        session.commit()
    fire(client, {"Authorization": f"Bearer {KEY}"})
    # grafana-client brings niquests, whose urllib3-future replaces urllib3 in place; its pool
    # container has no keys(), which schemathesis' requests transport reads to count the open
    # connections before it resends a request the server dropped. Requests to an ASGI app open
    # no connection: count none.
    monkeypatch.setattr(
        schemathesis.transport.requests, "_count_opened_connections", lambda session: 0
    )
    document_app, UNDER_TEST.app = UNDER_TEST.app, client.app
    yield
    UNDER_TEST.app = document_app


@schema.parametrize()
# the fixtures are per operation on purpose: the examples of one operation share its database,
# as a server's requests do, and each operation starts from a fresh one
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_api_answers_as_documented(case: schemathesis.Case, under_test: None) -> None:
    # every check: schemathesis' defaults, among them not_a_server_error, negative and positive
    # data, ignored auth, and the conformance of the status code, content type, headers and
    # body to the document
    case.call_and_validate()


def test_every_operation_says_what_it_answers() -> None:
    """The table of statuses in monitor/api/openapi.py covers every route in the document."""
    paths = schema.raw_schema["paths"]
    assert {(path, method) for path, ops in paths.items() for method in ops} == set(ANSWERS)
