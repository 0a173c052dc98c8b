"""Reference uploads that would exhaust the server or break every later run are refused early."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from monitor.data import reference_files

REFERENCE = "/api/v1/models/plankton/reference"
HEADER = "brightness,site,emb_0,emb_1,emb_2\n"


def test_a_reference_too_small_for_its_detectors_is_refused(
    client: TestClient, admin: dict[str, str], model: dict[str, Any]
) -> None:
    """One row passed before, then every run failed: "an embedding needs at least two
    complete reference rows"."""
    one = HEADER + "0.5,a,0.1,0.2,0.3\n"
    answer = client.post(REFERENCE, content=one, headers=admin | {"Content-Type": "text/csv"})
    assert answer.status_code == 422
    assert "ks_mmd" in answer.text and "at least 2" in answer.text
    two = one + "0.6,b,0.2,0.1,0.3\n"
    fine = client.post(REFERENCE, content=two, headers=admin | {"Content-Type": "text/csv"})
    assert fine.status_code == 200 and fine.json()["rows"] == 2


def test_a_large_file_with_the_wrong_columns_is_refused_after_its_first_block(
    client: TestClient,
    admin: dict[str, str],
    model: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    blocks: list[int] = []
    convert = reference_files.flat_to_table

    def counted(*args: Any, **kwargs: Any) -> Any:
        blocks.append(1)
        return convert(*args, **kwargs)

    monkeypatch.setattr(reference_files, "flat_to_table", counted)
    monkeypatch.setattr(reference_files, "BLOCK_BYTES", 4096)
    wrong = "weight,site,emb_0,emb_1,emb_2\n" + "0.5,a,0.1,0.2,0.3\n" * 20_000  # ~100 blocks
    answer = client.post(REFERENCE, content=wrong, headers=admin | {"Content-Type": "text/csv"})
    assert answer.status_code == 422 and "brightness" in answer.text
    assert len(blocks) == 1  # the rest of the file was never converted

    good = HEADER + "0.5,a,0.1,0.2,0.3\n" * 20_000
    bad_late = good + "x,a,0.1,0.2,0.3\n"
    answer = client.post(REFERENCE, content=bad_late, headers=admin | {"Content-Type": "text/csv"})
    assert answer.status_code == 422 and "brightness" in answer.text
    blocks.clear()
    fine = client.post(REFERENCE, content=good, headers=admin | {"Content-Type": "text/csv"})
    assert fine.status_code == 200 and fine.json()["rows"] == 20_000
    assert len(blocks) > 10  # read block by block
