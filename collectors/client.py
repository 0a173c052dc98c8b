"""The telemetry client that deployed modules embed.

``log()`` only puts the record on a bounded queue and returns: it never blocks and never
raises because of Tidewatch. A background thread batches records by size and time and posts
them with httpx, retrying connection errors and 5xx answers with exponential backoff and
jitter. A 4xx (bad data) is not retried: it is logged with the server's message and counted.

Memory is bounded: at most ``max_queue`` records wait in the queue and ``batch_size`` more in
the batch being sent; beyond that ``log()`` drops the record and counts it.
"""

from __future__ import annotations

import atexit
import json
import logging
import queue
import random
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

log = logging.getLogger("tidewatch.collectors")


def _to_json(value: Any) -> Any:
    """numpy scalars and arrays (and anything with ``tolist``) become plain JSON values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot send a {type(value).__name__} as telemetry")


class TelemetryClient:
    """Send sampled predictions to Tidewatch without slowing the caller.

    >>> client = TelemetryClient("http://127.0.0.1:9", "plankton", "tw_key", flush_interval=0.05)
    >>> client.log({"brightness": 0.4}, {"label": "copepod"})  # returns at once
    '...'
    >>> client.close(timeout=0.1)  # nobody listens on port 9: the batch is counted, not raised
    False
    """

    def __init__(
        self,
        url: str,
        model: str,
        key: str,
        *,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        max_queue: int = 100_000,
        timeout: float = 10.0,
        max_retries: int = 5,
        backoff: float = 0.2,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.model = model
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_retries = max_retries
        self.backoff = backoff
        self._endpoint = f"{self.url}/api/v1/models/{model}/telemetry"
        self._http = httpx.Client(
            timeout=timeout,
            transport=transport,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0
        self._stats = {
            "logged": 0,
            "dropped": 0,
            "sent": 0,
            "duplicates": 0,
            "rejected": 0,
            "failed": 0,
        }
        self._closed = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tidewatch-telemetry", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    # -- the caller's side: cheap and non-blocking ------------------------------------------
    def log(
        self,
        features: Mapping[str, Any],
        prediction: Mapping[str, Any] | None = None,
        *,
        id: str | None = None,
        timestamp: datetime | None = None,
    ) -> str:
        """Queue one record and return its id; a full queue drops the record (counted)."""
        record_id = id or uuid.uuid4().hex
        record = {
            "id": record_id,
            "timestamp": timestamp or datetime.now(UTC),
            "features": features,
            "prediction": prediction,
        }
        with self._lock:
            if self._closed:
                self._stats["dropped"] += 1
                return record_id
            self._pending += 1
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self._settle(1, "dropped")
        else:
            with self._lock:
                self._stats["logged"] += 1
        return record_id

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued record was sent or given up on; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while self._pending:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return self._stats["failed"] == 0

    def close(self, timeout: float | None = 30.0) -> bool:
        """Flush (up to ``timeout``), stop the background thread, close the connection pool.

        Records still unsent when the timeout passes are counted as dropped.
        """
        with self._lock:
            if self._closed:
                return self._stats["failed"] == 0
            self._closed = True
        done = self.flush(timeout)
        self._stop.set()
        self._thread.join(timeout=10)
        self._http.close()
        atexit.unregister(self.close)
        return done

    @property
    def stats(self) -> dict[str, int]:
        """Counters: logged, dropped (queue full), sent, duplicates, rejected (4xx), failed."""
        with self._lock:
            return dict(self._stats)

    def __enter__(self) -> TelemetryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the background thread ---------------------------------------------------------------
    def _settle(self, n: int, outcome: str) -> None:
        with self._idle:
            self._stats[outcome] += n
            self._pending -= n
            if self._pending <= 0:
                self._pending = 0
                self._idle.notify_all()

    def _run(self) -> None:
        batch: list[dict[str, Any]] = []
        deadline = time.monotonic() + self.flush_interval
        while not self._stop.is_set():
            try:
                # short waits so a stop request is seen promptly
                item = self._queue.get(timeout=min(0.1, max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                item = None
            if item is not None:
                batch.append(item)
            if len(batch) >= self.batch_size or (batch and time.monotonic() >= deadline):
                self._send(batch)
                batch = []
            if time.monotonic() >= deadline:
                deadline = time.monotonic() + self.flush_interval
        # stopped: whatever close() could not flush in time is given up
        leftover = len(batch)
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
            leftover += 1
        if leftover:
            self._settle(leftover, "dropped")

    def _send(self, batch: list[dict[str, Any]]) -> None:
        body = json.dumps({"records": batch}, default=_to_json).encode()
        for attempt in range(self.max_retries + 1):
            try:
                response = self._http.post(self._endpoint, content=body)
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 300:
                    answer = response.json()
                    self._settle(answer.get("duplicates", 0), "duplicates")
                    self._settle(len(batch) - answer.get("duplicates", 0), "sent")
                    return
                if response.status_code < 500 and response.status_code != 429:
                    log.error(
                        "Tidewatch refused a batch of %d records (%d): %s",
                        len(batch),
                        response.status_code,
                        response.text[:500],
                    )
                    self._settle(len(batch), "rejected")
                    return
                problem = f"HTTP {response.status_code}"
            # full jitter spreads the retries of many replicas after an outage; a stop request
            # (close) interrupts the wait
            if attempt < self.max_retries and self._stop.wait(
                random.uniform(0, self.backoff * 2**attempt)
            ):
                break
        log.warning(
            "giving up on %d records after %d tries: %s", len(batch), self.max_retries + 1, problem
        )
        self._settle(len(batch), "failed")
