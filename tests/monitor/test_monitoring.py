"""Scheduled monitors under a controllable clock: window edges, catch-up, delayed labels,
restarts in the middle of a stream, and two runners at once (SQLite and PostgreSQL)."""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select

from detectors.performance.classification import classification_metrics
from detectors.streaming import StreamingDriftDetector
from monitor.db.tables import DetectionRun, MonitorState, PerformanceResult
from monitor.runs.monitoring import backfill, run_due
from monitor.runs.pipeline import ReferenceCache
from monitor.runs.status import model_statuses
from tests.monitor.monitoring_helpers import CLASSES, T0, Clock, Db, make_db, records, spec

TUMBLING_MINUTE = {"type": "tumbling", "by": "time", "seconds": 60}


def _monitor(db: Db, name: str = "drift") -> Any:
    return next(m for m in db.registered.spec.monitors if m.name == name)


def _runs(db: Db) -> list[DetectionRun]:
    with db.sessions() as session:
        return list(session.scalars(select(DetectionRun).order_by(DetectionRun.id)))


def _state(db: Db, monitor: str = "drift") -> MonitorState:
    with db.sessions() as session:
        state = session.get(MonitorState, (db.registered.version.id, monitor))
        assert state is not None
        return state


def test_time_windows_edges_no_double_runs_and_catch_up(db_url: str) -> None:
    db = make_db(db_url, spec([{"window": TUMBLING_MINUTE, "min_samples": 20}]))
    db.post(records(T0, 50, seconds=60, prefix="a"))  # last one at T0 + 58.8 s
    edge = records(T0 + timedelta(seconds=60), 1, seconds=1, prefix="edge")
    db.post(edge)  # exactly on the edge: the second window's, not the first's
    db.post(records(T0 + timedelta(seconds=60.5), 50, seconds=59, prefix="b"))
    cache, clock = ReferenceCache(), Clock(T0 + timedelta(seconds=59))
    monitor = _monitor(db)

    assert run_due(db.sessions, db.registered, monitor, cache, now=clock()) == []

    clock.now = T0 + timedelta(seconds=60)
    (first,) = run_due(db.sessions, db.registered, monitor, cache, now=clock())
    assert (first.window_start, first.window_end) == (T0, T0 + timedelta(seconds=60))
    assert first.n_current == 50 and first.status == "ok"
    assert first.window_key == "t:" + T0.isoformat() and first.trigger == "schedule"
    # the same moment again: nothing new is due, nothing is computed twice
    assert run_due(db.sessions, db.registered, monitor, cache, now=clock()) == []

    # the scheduler was down for two windows: both are computed, oldest first
    clock.now = T0 + timedelta(seconds=185)
    second, third = run_due(db.sessions, db.registered, monitor, cache, now=clock())
    assert second.window_start == T0 + timedelta(seconds=60)
    assert second.n_current == 51  # 50 plus the edge record
    assert third.window_start == T0 + timedelta(seconds=120)
    assert third.n_current == 0 and third.status == "insufficient_data"
    assert [r.id for r in _runs(db)] == [first.id, second.id, third.id]

    state = _state(db)
    assert state.cursor == {
        "start": (T0 + timedelta(seconds=180)).isoformat(),
        "window": "time:60.0",
    }
    assert state.status == "no_data" and state.status_since == T0 + timedelta(seconds=180)
    (status,) = model_statuses(db.sessions())
    assert status.status == "no_data" and status.last_run_at == third.finished_at


def test_status_changes_and_since(db_url: str) -> None:
    db = make_db(db_url, spec([{"window": TUMBLING_MINUTE, "min_samples": 20}]))
    db.post(records(T0, 100, seconds=120, prefix="calm"))  # two calm windows
    db.post(records(T0 + timedelta(seconds=120), 100, seconds=120, shift=2.0, prefix="shift"))
    cache, monitor = ReferenceCache(), _monitor(db)
    for minute in (1, 2, 3, 4):
        run_due(db.sessions, db.registered, monitor, cache, now=T0 + timedelta(minutes=minute))
        state = _state(db)
        expected = "ok" if minute <= 2 else "drift"
        assert state.status == expected, minute
    # "since" is when the drift began (end of the first drifted window), not the last run
    assert state.status_since == T0 + timedelta(minutes=3)
    (status,) = model_statuses(db.sessions())
    assert (status.status, status.since) == ("drift", T0 + timedelta(minutes=3))


def _with_labels(db: Db, recs: list[Any], error_rate: float, seed: int) -> np.ndarray:
    """Labels for ``recs``: the prediction, flipped with probability ``error_rate``."""
    rng = np.random.default_rng(seed)
    wrong = rng.random(len(recs)) < error_rate
    pairs = []
    for rec, flip in zip(recs, wrong, strict=True):
        predicted = rec.prediction.label
        truth = CLASSES[1 - CLASSES.index(predicted)] if flip else predicted
        pairs.append((rec.id, truth))
    db.label(pairs)
    return wrong


PERFORMANCE_ONLY = {
    "window": {**TUMBLING_MINUTE, "delay_seconds": 30},
    "detectors": {},
    "quality": False,
    "performance": {"metrics": ["accuracy", "f1_macro"], "thresholds": {"accuracy": 0.9}},
}


def test_delayed_labels_join_by_id_on_prediction_time(db_url: str) -> None:
    db = make_db(db_url, spec([{"name": "perf", **PERFORMANCE_ONLY}]))
    window = records(T0, 80, seconds=60, prefix="p")
    db.post(window)
    cache, clock, monitor = (
        ReferenceCache(),
        Clock(T0 + timedelta(seconds=80)),
        _monitor(db, "perf"),
    )
    # the window closed at T0+60 but waits 30 s for labels
    assert run_due(db.sessions, db.registered, monitor, cache, now=clock()) == []
    # labels for 60 of the 80 records arrive after the window closed, in a different order
    labelled = window[::-1][:60]
    wrong = _with_labels(db, labelled, 0.3, seed=1)
    clock.now = T0 + timedelta(seconds=90)
    (run,) = run_due(db.sessions, db.registered, monitor, cache, now=clock())
    with db.sessions() as session:
        rows = {
            r.metric: r
            for r in session.scalars(
                select(PerformanceResult).where(PerformanceResult.run_id == run.id)
            )
        }
    truth = [
        CLASSES[1 - CLASSES.index(r.prediction.label)] if w else r.prediction.label
        for r, w in zip(labelled, wrong, strict=True)
    ]
    expected = classification_metrics(
        truth, [r.prediction.label for r in labelled], classes=CLASSES
    )
    assert rows["accuracy"].n_labels == 60
    assert rows["accuracy"].value == pytest.approx(expected.accuracy, abs=1e-12)
    assert rows["f1_macro"].value == pytest.approx(expected.f1_macro, abs=1e-12)
    assert rows["accuracy"].value < 0.9 and rows["accuracy"].problem
    assert run.status == "drift"
    # the message says which way, in three significant digits (the threshold here is 0.9)
    assert f"accuracy {rows['accuracy'].value:.3g} below 0.9" in run.message, run.message

    # the next window is computed before any of its labels came: no metrics yet ...
    late = records(T0 + timedelta(seconds=60), 80, seconds=60, prefix="q", seed=3)
    db.post(late)
    clock.now = T0 + timedelta(seconds=150)
    (unlabelled,) = run_due(db.sessions, db.registered, monitor, cache, now=clock())
    assert unlabelled.status == "insufficient_data"
    # ... the labels arrive a day later; a backfill recomputes that window in place
    _with_labels(db, late, 0.0, seed=4)
    (redone,) = backfill(
        db.sessions,
        db.registered,
        monitor,
        cache,
        T0 + timedelta(seconds=60),
        T0 + timedelta(seconds=120),
    )
    assert redone.window_key == unlabelled.window_key and redone.trigger == "backfill"
    keys = [r.window_key for r in _runs(db)]
    assert keys.count(unlabelled.window_key) == 1  # replaced, not added
    assert redone.status == "ok" and "performance on 80 labels" in redone.message


STREAMING = {
    "window": TUMBLING_MINUTE,
    "min_samples": 20,
    "performance": {"metrics": ["accuracy"], "streaming": {"name": "ddm"}},
}


def _stream_fixture(url: str) -> Db:
    db = make_db(url, spec([STREAMING]))
    for minute in range(10):
        start = T0 + timedelta(minutes=minute)
        recs = records(start, 120, seconds=60, prefix=f"m{minute}-", seed=minute)
        db.post(recs)
        _with_labels(db, recs, 0.05 if minute < 5 else 0.5, seed=100 + minute)
    return db


def _drifts(db: Db) -> list[tuple[str | None, float | None]]:
    with db.sessions() as session:
        rows = session.execute(
            select(DetectionRun.window_key, PerformanceResult.value)
            .join(PerformanceResult, PerformanceResult.run_id == DetectionRun.id)
            .where(PerformanceResult.metric == "stream.ddm.drifts")
            .order_by(DetectionRun.window_start)
        )
        return [(k, v) for k, v in rows]


def test_restart_in_the_middle_of_a_stream_continues_where_it_stopped(
    tmp_path: Any, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the uninterrupted run, on its own SQLite file
    straight = _stream_fixture(f"sqlite:///{tmp_path / 'straight.db'}")
    for minute in range(1, 11):
        run_due(
            straight.sessions,
            straight.registered,
            _monitor(straight),
            ReferenceCache(),
            now=T0 + timedelta(minutes=minute),
        )
    expected = _drifts(straight)
    assert len(expected) == 10
    assert sum(v or 0 for _, v in expected[:5]) == 0 and sum(v or 0 for _, v in expected[5:]) >= 1

    db = _stream_fixture(db_url)
    for minute in range(1, 5):
        run_due(
            db.sessions,
            db.registered,
            _monitor(db),
            ReferenceCache(),
            now=T0 + timedelta(minutes=minute),
        )

    # the process dies while computing the fifth window: nothing of it is kept
    import monitor.runs.monitoring as monitoring

    real = monitoring.evaluate

    def crash(*args: Any, **kwargs: Any) -> Any:
        real(*args, **kwargs)
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(monitoring, "evaluate", crash)
    with pytest.raises(KeyboardInterrupt):
        run_due(
            db.sessions,
            db.registered,
            _monitor(db),
            ReferenceCache(),
            now=T0 + timedelta(minutes=10),
        )
    monkeypatch.setattr(monitoring, "evaluate", real)
    assert len(_runs(db)) == 4
    seen_before = _state(db).stream_seen
    assert seen_before == 4 * 120

    # a new process: new engine, new cache; it continues at the fifth window
    db.engine.dispose()
    restarted = make_db(db_url, db.registered.spec)
    run_due(
        restarted.sessions,
        restarted.registered,
        _monitor(restarted),
        ReferenceCache(),
        now=T0 + timedelta(minutes=10),
    )
    assert _drifts(restarted) == expected
    state, reference = _state(restarted), _state(straight)
    assert state.stream_seen == reference.stream_seen == 1200
    resumed = StreamingDriftDetector.from_state(state.stream_state or b"")
    uninterrupted = StreamingDriftDetector.from_state(reference.stream_state or b"")
    assert resumed.n_seen == uninterrupted.n_seen
    assert resumed.state() == uninterrupted.state()


def test_count_windows_follow_arrival_order(db_url: str) -> None:
    db = make_db(
        db_url,
        spec([{"window": {"type": "tumbling", "by": "count", "size": 100}, "min_samples": 20}]),
    )
    recs = records(T0, 200, seconds=200, prefix="c")
    for lo, hi in ((0, 30), (30, 80), (80, 120)):
        db.post(recs[lo:hi])
    cache, monitor = ReferenceCache(), _monitor(db)
    later = datetime.now(UTC) + timedelta(seconds=10)  # past the settle time of the batches
    (first,) = run_due(db.sessions, db.registered, monitor, cache, now=later)
    assert first.n_current == 100
    assert run_due(db.sessions, db.registered, monitor, cache, now=later) == []  # 20 waiting
    db.post(recs[120:200])
    later = datetime.now(UTC) + timedelta(seconds=10)
    (second,) = run_due(db.sessions, db.registered, monitor, cache, now=later)
    assert second.n_current == 100 and second.window_key != first.window_key
    # together the two windows hold each record exactly once
    assert (first.window_start, second.window_end) == (recs[0].timestamp, recs[199].timestamp)
    assert first.window_end < second.window_start
    cursor = _state(db).cursor
    assert cursor is not None and cursor["row"] == 80  # the whole fourth batch was used


def test_two_runners_at_once_compute_each_window_once(db_url: str) -> None:
    db = make_db(db_url, spec([{"window": TUMBLING_MINUTE, "min_samples": 5}]))
    db.post(records(T0, 400, seconds=20 * 60, prefix="w"))
    now = T0 + timedelta(minutes=20)
    failures: list[BaseException] = []

    def runner() -> None:
        try:
            run_due(db.sessions, db.registered, _monitor(db), ReferenceCache(), now=now)
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=runner) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    # whatever one runner left undone (SQLite refuses the loser's write), one more run finishes
    run_due(db.sessions, db.registered, _monitor(db), ReferenceCache(), now=now)
    with db.sessions() as session:
        keys = list(session.scalars(select(DetectionRun.window_key)))
        distinct = session.scalar(select(func.count(func.distinct(DetectionRun.window_key))))
    assert len(keys) == distinct == 20


def test_a_gap_without_telemetry_is_one_no_data_run(db_url: str) -> None:
    db = make_db(db_url, spec([{"window": TUMBLING_MINUTE, "min_samples": 20}]))
    db.post(records(T0, 50, seconds=60, prefix="a"))
    cache, monitor = ReferenceCache(), _monitor(db)
    day = timedelta(days=1)
    # a day later, nothing came after the first minute: one run covers the silent day
    first, silent = run_due(
        db.sessions, db.registered, monitor, cache, now=T0 + day + timedelta(seconds=30)
    )
    assert first.n_current == 50
    assert (silent.window_start, silent.window_end) == (T0 + timedelta(seconds=60), T0 + day)
    assert silent.n_current == 0 and silent.status == "insufficient_data"
    # telemetry resumes two days in: the gap up to its window is one run, then the window itself
    db.post(records(T0 + 2 * day + timedelta(seconds=5), 50, seconds=50, prefix="b"))
    gap, resumed = run_due(
        db.sessions, db.registered, monitor, cache, now=T0 + 2 * day + timedelta(seconds=60)
    )
    assert (gap.window_start, gap.window_end) == (T0 + day, T0 + 2 * day)
    assert (resumed.window_start, resumed.n_current) == (T0 + 2 * day, 50)
    runs = _runs(db)
    assert all(a.window_end == b.window_start for a, b in itertools.pairwise(runs))


def test_a_backfill_never_blocks_the_live_monitor(db_url: str) -> None:
    db = make_db(db_url, spec([{"window": TUMBLING_MINUTE, "min_samples": 20}]))
    db.post(records(T0, 300, seconds=300, prefix="a"))
    cache, monitor = ReferenceCache(), _monitor(db)
    (live,) = run_due(db.sessions, db.registered, monitor, cache, now=T0 + timedelta(seconds=70))
    # a backfill over more than the live monitor has reached, at a moment when 3 windows are due
    done = backfill(
        db.sessions,
        db.registered,
        monitor,
        cache,
        T0,
        T0 + timedelta(minutes=10),
        now=T0 + timedelta(seconds=190),
    )
    # only what is behind the live cursor: the windows ahead are the live monitor's
    assert [r.window_start for r in done] == [T0]
    later = run_due(db.sessions, db.registered, monitor, cache, now=T0 + timedelta(seconds=190))
    assert [r.window_start for r in later] == [T0 + timedelta(minutes=m) for m in (1, 2)]
    # a backfill without a live cursor (the monitor never ran) may run ahead; the live monitor
    # then passes over the windows already stored instead of stopping at them
    fresh = make_db(
        db_url.replace("tidewatch.db", "fresh.db") if "sqlite" in db_url else db_url,
        spec([{"name": "other", "window": TUMBLING_MINUTE, "min_samples": 20}]),
    )
    other = _monitor(fresh, "other")
    fresh.post(records(T0, 300, seconds=300, prefix="o"))
    now = T0 + timedelta(minutes=5)
    ahead = backfill(fresh.sessions, fresh.registered, other, cache, T0, now, now=now)
    assert len(ahead) == 5
    assert run_due(fresh.sessions, fresh.registered, other, cache, now=now) == []
    state = _state(fresh, "other")
    assert state.cursor is not None and state.cursor["start"] == now.isoformat()
    assert live.window_key is not None


def test_changing_the_window_rebases_the_cursor(db_url: str) -> None:
    db = make_db(
        db_url,
        spec([{"window": {"type": "tumbling", "by": "count", "size": 50}, "min_samples": 20}]),
    )
    db.post(records(T0, 100, seconds=100, prefix="a"))
    cache = ReferenceCache()
    later = datetime.now(UTC) + timedelta(seconds=10)
    assert len(run_due(db.sessions, db.registered, _monitor(db), cache, now=later)) == 2
    # the operator switches to one-minute windows of prediction time
    minutely = spec([{"window": TUMBLING_MINUTE, "min_samples": 20}]).monitors[0]
    moment = T0 + timedelta(seconds=130)
    assert run_due(db.sessions, db.registered, minutely, cache, now=moment) == []
    state = _state(db)
    assert state.cursor is not None and state.cursor["window"] == "time:60.0"
    # ... continuing at the first whole window after the moment the switch was seen (the count
    # windows may have covered records up to then), never back
    assert datetime.fromisoformat(state.cursor["start"]) == T0 + timedelta(seconds=180)
    db.post(records(T0 + timedelta(seconds=180), 60, seconds=60, prefix="b"))
    (run,) = run_due(db.sessions, db.registered, minutely, cache, now=T0 + timedelta(seconds=240))
    assert (run.window_start, run.n_current) == (T0 + timedelta(seconds=180), 60)
    # and back to count windows: they continue with the batches that arrive from now on
    counting = spec([{"window": {"type": "tumbling", "by": "count", "size": 30}}]).monitors[0]
    assert run_due(db.sessions, db.registered, counting, cache, now=later) == []
    db.post(records(T0 + timedelta(seconds=200), 30, seconds=30, prefix="c"))
    later = datetime.now(UTC) + timedelta(seconds=10)
    (counted,) = run_due(db.sessions, db.registered, counting, cache, now=later)
    assert counted.n_current == 30 and counted.window_start == T0 + timedelta(seconds=200)


def test_a_failing_window_is_recorded_and_the_monitor_goes_on(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = make_db(db_url, spec([STREAMING]))
    for minute in range(3):
        recs = records(T0 + timedelta(minutes=minute), 60, seconds=60, prefix=f"f{minute}-")
        db.post(recs)
        _with_labels(db, recs, 0.1, seed=minute)
    import monitor.runs.monitoring as monitoring

    real, calls = monitoring.evaluate, []

    def failing_once(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise ValueError("a detector could not handle this window")
        return real(*args, **kwargs)

    monkeypatch.setattr(monitoring, "evaluate", failing_once)
    runs = run_due(
        db.sessions, db.registered, _monitor(db), ReferenceCache(), now=T0 + timedelta(minutes=3)
    )
    assert [r.status for r in runs][1] == "error"
    assert "could not handle this window" in runs[1].message
    assert runs[0].status != "error" and runs[2].status != "error"
    # the failed window's labelled records were not fed to the stream: 2 windows of 60
    assert _state(db).stream_seen == 120


def test_an_unreadable_stream_state_starts_a_new_detector(db_url: str) -> None:
    db = make_db(db_url, spec([STREAMING]))
    recs = records(T0, 60, seconds=60)
    db.post(recs)
    _with_labels(db, recs, 0.1, seed=0)
    with db.sessions() as session:
        session.add(
            MonitorState(
                model_version_id=db.registered.version.id,
                monitor="drift",
                stream_method="ddm",
                stream_state=b"TWSTREAM\x00\x63garbage",  # a future format version
                stream_seen=999,
                status="ok",
            )
        )
        session.commit()
    (run,) = run_due(
        db.sessions, db.registered, _monitor(db), ReferenceCache(), now=T0 + timedelta(minutes=1)
    )
    assert run.status != "error"
    assert _state(db).stream_seen == 60  # a fresh detector saw this window only


def test_labels_outside_the_classes_do_not_break_a_window(db_url: str) -> None:
    db = make_db(db_url, spec([{"name": "perf", **PERFORMANCE_ONLY}]))
    recs = records(T0, 60, seconds=60)
    db.post(recs)
    db.label([(r.id, "jellyfish") for r in recs])  # not a declared class
    (run,) = run_due(
        db.sessions,
        db.registered,
        _monitor(db, "perf"),
        ReferenceCache(),
        now=T0 + timedelta(minutes=2),
    )
    assert run.status == "insufficient_data"
    with db.sessions() as session:
        values = list(
            session.scalars(
                select(PerformanceResult.value).where(PerformanceResult.run_id == run.id)
            )
        )
    assert all(v is None for v in values)  # no metric from labels that fit no class
