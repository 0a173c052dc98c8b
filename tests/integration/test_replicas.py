"""A platform in miniature on one PostgreSQL: two ``tidewatch serve`` API replicas (not
scheduling) and two ``tidewatch worker`` processes, telemetry posted through both APIs at once.
Then no record is lost or counted twice, every window is computed once, the alert is mailed once;
after ``kill -9`` of the leading worker the other one leads and no window is skipped. Also: an
API replica told to stop finishes the batch it is receiving."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from monitor.db.engine import make_engine, make_sessionmaker
from monitor.db.tables import DetectionRun, TelemetryRecord
from monitor.scheduling.leader import current_leader
from monitor.server import free_port
from tests.conftest import Inbox
from tests.integration.serve_process import BIN, ServeProcess, tidewatch_serve
from tests.monitor.monitoring_helpers import CLASSES

pytestmark = pytest.mark.integration

SPEC = {
    "name": "plankton",
    "features": [{"name": "x", "kind": "numeric"}, {"name": "y", "kind": "numeric"}],
    "output": {"task": "classification", "classes": CLASSES},
    "monitors": [
        {
            "name": "live",
            # closed 2 s after it ends: every record stamped inside it has arrived by then
            "window": {"type": "tumbling", "by": "time", "seconds": 1, "delay_seconds": 2},
            "min_samples": 5,
            "schedule": {"every": 1},
        }
    ],
    "alerts": [{"name": "drift", "kind": "drift", "renotify_seconds": None}],
    "alert_recipients": ["owner@example.org"],
}


def _wait(condition: Any, what: str, logs: list[Path], timeout: float = 120.0) -> None:
    # a deadline for a hung test, not a speed requirement (measured times are printed)
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            tails = "\n".join(p.read_text()[-1500:] for p in logs if p.exists())
            pytest.fail(f"timed out waiting for {what}\n{tails}")
        time.sleep(0.1)


def _records(start: datetime, ids: list[str], shift: float) -> list[dict[str, Any]]:
    n = len(ids)
    return [
        {
            "id": rid,
            "timestamp": (start + timedelta(seconds=i / n)).isoformat(),
            "features": {"x": shift + (i % 7) / 7, "y": (i % 5) / 5},
            "prediction": {"label": CLASSES[i % 2], "probabilities": [0.6, 0.4]},
        }
        for i, rid in enumerate(ids)
    ]


def test_two_apis_and_two_workers_on_one_postgres(
    pg_url: str, tmp_path: Path, smtp: tuple[int, Inbox]
) -> None:
    smtp_port, inbox = smtp
    common = {
        "TIDEWATCH_DEVICE": "cpu",
        "TIDEWATCH_LEADER_POLL_SECONDS": "0.5",
        "TIDEWATCH_SCHEDULER_SYNC_SECONDS": "1",
        "TIDEWATCH_ALERT_DELIVERY_SECONDS": "1",
        "TIDEWATCH_SMTP_HOST": "127.0.0.1",
        "TIDEWATCH_SMTP_PORT": str(smtp_port),
        "TIDEWATCH_LOG_LEVEL": "warning",
    }
    api_env = {**common, "TIDEWATCH_SCHEDULER": "false"}  # the API replicas only serve
    logs = [tmp_path / f"{name}.log" for name in ("api-a", "api-b", "worker-a", "worker-b")]
    engine = make_engine(pg_url)
    sessions = make_sessionmaker(engine)
    with (
        tidewatch_serve(pg_url, logs[0], extra_env=api_env) as api_a,
        tidewatch_serve(pg_url, logs[1], extra_env=api_env) as api_b,
    ):
        key = api_a.cli("keys", "create", "--scope", "admin").splitlines()[-1]
        auth = {"Authorization": f"Bearer {key}"}
        assert httpx.post(f"{api_a.url}/api/v1/models", json=SPEC, headers=auth).status_code == 200
        reference = _records(datetime(2026, 1, 1, tzinfo=UTC), [f"ref{i}" for i in range(400)], 0)
        answer = httpx.post(
            f"{api_b.url}/api/v1/models/plankton/reference",
            json={"records": reference},
            headers=auth,
        )
        assert answer.status_code == 200, answer.text

        workers = []
        for log in logs[2:]:
            env = {
                **os.environ,
                **common,
                "TIDEWATCH_DATABASE_URL": pg_url,
                "TIDEWATCH_METRICS_PORT": str(free_port()),
            }
            with log.open("wb") as out:
                workers.append(
                    subprocess.Popen(
                        [str(BIN / "tidewatch"), "worker"], env=env, stdout=out, stderr=out
                    )
                )

        stop = threading.Event()
        posted: set[str] = set()
        lock = threading.Lock()
        failures: list[str] = []

        def post(api: ServeProcess, name: str, other: ServeProcess) -> None:
            client = httpx.Client(headers=auth, timeout=60)
            for n in itertools.count():
                if stop.is_set():
                    break
                ids = [f"{name}-{n}-{i}" for i in range(25)]
                body = {"records": _records(datetime.now(UTC) - timedelta(seconds=1), ids, 3.0)}
                for target in (api, other) if n % 5 == 0 else (api,):  # some sent twice
                    reply = client.post(f"{target.url}/api/v1/models/plankton/telemetry", json=body)
                    if reply.status_code != 200:
                        failures.append(reply.text)
                with lock:
                    posted.update(ids)
                stop.wait(0.2)
            client.close()

        posters = [
            threading.Thread(target=post, args=(api_a, "a", api_b)),
            threading.Thread(target=post, args=(api_b, "b", api_a)),
        ]
        try:
            for t in posters:
                t.start()

            def leader_pid() -> int | None:
                with sessions() as session:
                    row = current_leader(session)
                return None if row is None else int(row.holder.split(":")[1])

            def windows() -> list[DetectionRun]:
                with sessions() as session:
                    return list(
                        session.scalars(select(DetectionRun).order_by(DetectionRun.window_start))
                    )

            _wait(lambda: leader_pid() in {w.pid for w in workers}, "a leading worker", logs)
            _wait(
                lambda: len(windows()) >= 3 and len(inbox.messages) >= 1, "windows and a mail", logs
            )
            leader = next(w for w in workers if w.pid == leader_pid())
            follower = next(w for w in workers if w is not leader)
            leader.send_signal(signal.SIGKILL)
            leader.wait(timeout=30)
            killed = time.monotonic()
            _wait(lambda: leader_pid() == follower.pid, "the other worker to lead", logs)
            print(f"takeover after kill -9: {time.monotonic() - killed:.2f} s")
            before = len(windows())
            _wait(lambda: len(windows()) >= before + 3, "windows after the takeover", logs)
        finally:
            stop.set()
            for t in posters:
                t.join(timeout=60)
            for w in workers:
                if w.poll() is None:
                    w.terminate()
                    w.wait(timeout=30)
    assert not failures, failures[:3]
    with sessions() as session:
        stored = session.scalar(select(func.count()).select_from(TelemetryRecord))
        stored_ids = set(session.scalars(select(TelemetryRecord.record_id)))
    # no record lost, none counted twice (a fifth of the batches went to both APIs)
    assert stored == len(posted)
    assert stored_ids == posted
    runs = windows()
    assert len({r.window_start for r in runs}) == len(runs)  # each window once
    edges = [(a.window_end, b.window_start) for a, b in itertools.pairwise(runs)]
    assert all(end == start for end, start in edges), edges  # none skipped, across the kill
    runners = {int((r.runner or "x:0").split(":")[1]) for r in runs}
    assert runners <= {w.pid for w in workers} and follower.pid in runners  # API replicas idle
    # the drift alert fired once and stayed firing: one e-mail from the whole platform
    assert len(inbox.messages) == 1
    engine.dispose()


def test_a_stopping_api_finishes_the_batch_it_is_receiving(pg_url: str, tmp_path: Path) -> None:
    log = tmp_path / "api.log"
    with tidewatch_serve(pg_url, log, extra_env={"TIDEWATCH_SCHEDULER": "false"}) as api:
        key = api.cli("keys", "create", "--scope", "admin").splitlines()[-1]
        auth = {"Authorization": f"Bearer {key}"}
        assert httpx.post(f"{api.url}/api/v1/models", json=SPEC, headers=auth).status_code == 200
        ids = [f"slow-{i}" for i in range(2000)]
        body = httpx.Request(
            "POST", "/", json={"records": _records(datetime.now(UTC), ids, 0.0)}
        ).content
        half = len(body) // 2
        halfway = threading.Event()

        def slowly() -> Iterator[bytes]:
            yield body[:half]
            halfway.set()
            time.sleep(2.0)  # SIGTERM arrives while the rest of the body is still to come
            yield body[half:]

        reply: dict[str, Any] = {}

        def send() -> None:
            reply["response"] = httpx.post(
                f"{api.url}/api/v1/models/plankton/telemetry",
                content=slowly(),
                headers={**auth, "Content-Type": "application/json"},
                timeout=60,
            )

        sender = threading.Thread(target=send)
        sender.start()
        assert halfway.wait(30)
        time.sleep(0.3)
        api.proc.send_signal(signal.SIGTERM)
        sender.join(timeout=60)
        api.proc.wait(timeout=60)
    response = reply["response"]
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 2000
    engine = make_engine(pg_url)
    with make_sessionmaker(engine)() as session:
        assert session.scalar(select(func.count()).select_from(TelemetryRecord)) == 2000
    engine.dispose()
