"""The ``answers`` fixture of the deploy/ bundle tests: does a path answer on a running app?"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from monitor.app import create_app
from monitor.settings import Settings


@pytest.fixture(scope="module")
def answers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], None]]:
    """assert that GET path answers 200 on a running app (migrated SQLite, no scheduler).

    A request rather than a look at ``app.routes``: FastAPI lists included routers there, not
    their paths. A probe must also succeed on a healthy service, not only exist.
    """
    database = tmp_path_factory.mktemp("deploy") / "tidewatch.db"
    app = create_app(Settings(database_url=f"sqlite:///{database}", scheduler=False))
    with TestClient(app) as client:

        def check(path: str) -> None:
            response = client.get(path)
            assert response.status_code == 200, f"GET {path}: {response.status_code}"

        yield check
