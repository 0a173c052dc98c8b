"""A monitor's ``detectors`` mapping changes only the kinds it names; a kind left untested on
purpose ("none") is said on the status, never silent."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from typer.testing import CliRunner

from monitor.cli import app
from monitor.settings import Settings
from monitor.spec.model import MonitorConfig
from tests.conftest import SPEC


def test_a_mapping_overrides_only_the_kinds_it_names() -> None:
    psi = MonitorConfig.model_validate({"detectors": {"numeric": "psi"}})
    assert psi.detectors == {"numeric": "psi", "categorical": "chi2", "vector": "ks_mmd"}
    assert psi.tested_kinds() == ["numeric", "categorical", "vector"]
    no_vectors = MonitorConfig.model_validate({"detectors": {"vector": "none"}})
    assert no_vectors.tested_kinds() == ["numeric", "categorical"]
    assert MonitorConfig.model_validate({"detectors": {}}).tested_kinds() == []  # performance
    assert MonitorConfig().tested_kinds() == ["numeric", "categorical", "vector"]
    with pytest.raises(ValidationError, match="unknown column kind"):
        MonitorConfig.model_validate({"detectors": {"image": "none"}})
    # what is stored reads back the same
    again = MonitorConfig.model_validate(no_vectors.model_dump(mode="json"))
    assert again.detectors == no_vectors.detectors


def test_the_status_names_features_left_untested(
    client: TestClient, admin: dict[str, str], settings: Settings
) -> None:
    spec: dict[str, Any] = {
        **SPEC,
        "monitors": [
            {"name": "drift"},
            {"name": "tabular", "detectors": {"vector": "none"}},
            {"name": "performance", "detectors": {}},  # tests no kind: nothing to say
        ],
    }
    assert client.post("/api/v1/models", json=spec, headers=admin).status_code == 200
    status = client.get("/api/v1/models/plankton/status", headers=admin).json()
    untested = {m["monitor"]: m["untested"] for m in status["monitors"]}
    assert untested == {"drift": [], "tabular": ["emb"], "performance": []}
    shown = CliRunner().invoke(
        app, ["status"], env={"TIDEWATCH_DATABASE_URL": settings.database_url, "COLUMNS": "200"}
    )
    assert shown.exit_code == 0, shown.output
    assert "plankton / tabular: no drift test on emb" in shown.output
    assert "plankton / drift: no drift test" not in shown.output
