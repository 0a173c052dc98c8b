"""On SQLite, a detection run computing a window does not hold the write lock ingest needs.

The run used to be inserted before its computation, so SQLite's write lock was held for the
whole computation and a 100-record batch waited 10.8 s behind it. Here the computation is held
open on purpose (a detector that waits for the test's signal) while a batch is ingested: the
batch must be stored while the computation is still waiting.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from detectors.univariate.weighted_ks import KSWeightedKSTest
from monitor.runs.monitoring import run_due
from monitor.runs.pipeline import ReferenceCache
from tests.monitor.monitoring_helpers import T0, make_db, records, spec


def test_ingest_proceeds_while_a_window_computes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = make_db(f"sqlite:///{tmp_path / 'tw.db'}", spec([{"name": "drift", "min_samples": 10}]))
    db.post(records(T0, 60, seconds=60, prefix="a"))
    (monitor,) = db.registered.spec.monitors
    # a first run creates the monitor's state row: the held run below is a steady-state one
    run_due(db.sessions, db.registered, monitor, ReferenceCache(1), device="cpu")
    computing, release = threading.Event(), threading.Event()
    score = KSWeightedKSTest.score

    def held_score(self: KSWeightedKSTest, current: Any) -> Any:
        computing.set()
        release.wait(timeout=60)
        return score(self, current)

    monkeypatch.setattr(KSWeightedKSTest, "score", held_score)
    runs: list[Any] = []
    detection = threading.Thread(
        target=lambda: runs.extend(
            run_due(db.sessions, db.registered, monitor, ReferenceCache(1), device="cpu")
        )
    )
    detection.start()
    try:
        assert computing.wait(timeout=60), "the detection run never reached its computation"
        stored: list[int] = []
        ingest = threading.Thread(
            target=lambda: stored.append(
                db.post(records(T0 + timedelta(minutes=5), 100, seconds=60, prefix="b"))
            )
        )
        ingest.start()
        # generous: a locked database makes ingest wait for the release, which never comes
        ingest.join(timeout=20)
        assert not ingest.is_alive(), "ingest waited for the detection run's write lock"
        assert stored == [100]
        assert detection.is_alive()  # the computation was still going on
    finally:
        release.set()
        detection.join(timeout=60)
    assert len(runs) == 1 and runs[0].status in ("ok", "warning", "drift")
