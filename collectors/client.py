"""The telemetry client that deployed modules embed.

``log()`` only samples the record and puts it on a bounded queue: it never blocks and never
raises because of Tidewatch. A background thread batches records by size and time and posts
them with httpx. A 4xx (bad data) is not retried: it is logged with the server's message and
counted. While Tidewatch is unreachable or answers 5xx, batches go to a bounded on-disk spool
(:mod:`collectors.spool`) and are sent, oldest first, once it answers again; record ids make a
resend after a lost answer harmless.

Memory is bounded: at most ``max_queue`` records wait in the queue and ``batch_size`` more per
sampling rate in the batches being filled; beyond that ``log()`` drops the record and counts it.
The client is safe to share between threads, and after ``fork`` (DEEPaaS runs predictions in a
process pool) the child starts its own empty queue, thread and connections.

``flush()`` and ``close()`` answer True only when every record logged so far reached Tidewatch
(sent, found to be a duplicate, or refused for good with a 4xx): records waiting in the spool,
or lost (dropped, failed, pushed out of a full spool), make them answer False. An overloaded
Tidewatch answers 503 with ``Retry-After``: the client waits that long before trying again.
"""

from __future__ import annotations

import atexit
import itertools
import json
import logging
import os
import random
import threading
import time
import weakref
from collections import deque
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import httpx

from collectors.sampling import Reservoir, Sampler
from collectors.spool import Spool, default_spool_dir
from collectors.transport import retry_after, to_json

log = logging.getLogger("tidewatch.collectors")


COUNTERS = (
    "logged",  # accepted by log()
    "sampled_out",  # left out by the sampler
    "dropped",  # queue full, or still unsent when close() gave up
    "sent",  # accepted by Tidewatch (directly or later from the spool)
    "duplicates",  # already stored (a resend)
    "spooled",  # written to the on-disk spool
    "spool_dropped",  # oldest spooled records deleted because the spool was full
    "rejected",  # refused by Tidewatch (4xx): bad data, not retried
    "failed",  # given up after retries with no spool to keep them
)
# outcomes of records that never reached Tidewatch and never will
LOST = ("dropped", "failed", "spool_dropped")


class TelemetryClient:
    """Send sampled predictions to Tidewatch without slowing the caller.

    >>> client = TelemetryClient(
    ...     "http://127.0.0.1:9", "plankton", "tw_key", flush_interval=0.05, spool_dir=False
    ... )
    >>> client.log({"brightness": 0.4}, {"label": "copepod"})  # returns at once
    '...'
    >>> client.close(timeout=0.1)  # nobody listens on port 9: the batch is counted, not raised
    False

    ``spool_dir``: where batches wait while Tidewatch is down (default
    :func:`default_spool_dir`); ``False`` turns the spool off, and batches are then given up
    after ``max_retries``. ``sampler``: which records to send (default all).
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
        max_retries: int = 3,
        backoff: float = 0.2,
        max_backoff: float = 30.0,
        sampler: Sampler | Reservoir | None = None,
        spool_dir: str | os.PathLike[str] | Literal[False] | None = None,
        spool_max_bytes: int = 256 * 2**20,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.model = model
        self.key = key
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_queue = max_queue
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.sampler = sampler
        # a sampler with offer()/drain() (collectors.sampling.ReservoirSampler) holds records
        # until its window ends instead of deciding per record
        self._reservoir: Reservoir | None = sampler if hasattr(sampler, "drain") else None  # type: ignore[assignment]
        self.transport = transport
        self._endpoint = f"{self.url}/api/v1/models/{model}/telemetry"
        self._spool: Spool | None = None
        if spool_dir is not False:
            folder = default_spool_dir(model) if spool_dir is None else Path(spool_dir)
            try:
                self._spool = Spool(folder, max_bytes=spool_max_bytes)
            except OSError as exc:  # a read-only container must not break the model
                log.warning("no telemetry spool at %s (%s): batches may be lost", folder, exc)
        self._stats = dict.fromkeys(COUNTERS, 0)
        self._closed = False
        self._start_fresh()
        atexit.register(self.close)
        reference = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _after_fork(reference))

    def _start_fresh(self) -> None:
        """Buffer, locks, connections and thread of this process (again after a fork)."""
        self._pid = os.getpid()
        # log() appends to a deque (atomic, never blocks) and wakes the sender only when a batch
        # is full: a queue.Queue woke it on every record, and the two threads then took turns
        # on the GIL in the caller's time
        self._buffer: deque[tuple[float, Mapping[str, Any]]] = deque()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0
        self._wake = threading.Event()
        # flush() takes a ticket; the sender serves every ticket taken before a round in which
        # it sent the buffer, the batches and the spool (a bare flag could be cleared by a round
        # that started before the flush() asked)
        self._flush_asked = 0
        self._flush_done = 0
        self._stopped = False  # the sender has ended: nothing will change any more
        # record ids: a random per-process prefix and a counter (uuid4 costs a 16-byte
        # getrandom call per record); a forked child draws its own prefix
        self._ids = itertools.count()
        self._id_prefix = os.urandom(8).hex()
        self._retry_at = 0.0  # monotonic time before which Tidewatch is taken to be down
        self._down_for = 0.0
        self._stop = threading.Event()
        self._http = httpx.Client(
            timeout=self.timeout,
            transport=self.transport,
            headers={"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"},
        )
        self._thread = threading.Thread(target=self._run, name="tidewatch-telemetry", daemon=True)
        self._thread.start()

    # -- the caller's side: cheap and non-blocking ------------------------------------------
    def log(
        self,
        features: Mapping[str, Any],
        prediction: Mapping[str, Any] | None = None,
        *,
        id: str | None = None,
        timestamp: datetime | None = None,
        sampling_rate: float | None = None,
    ) -> str:
        """Queue one record and return its id; a full queue drops the record (counted).

        ``sampling_rate``: the caller sampled this record already, with that inclusion
        probability (see :meth:`sample`), and the client's sampler is skipped.
        """
        record_id = id or f"{self._id_prefix}{next(self._ids):x}"
        record = {
            "id": record_id,
            "timestamp": timestamp or datetime.now(timezone.utc),
            "features": features,
            "prediction": prediction,
        }
        if sampling_rate is not None:
            rate = float(sampling_rate)
        elif self._reservoir is not None:
            # a reservoir decides when its window ends: the background thread drains it
            try:
                self._reservoir.offer(record)
            except Exception:
                log.exception("the telemetry reservoir failed; the record is left out")
            return record_id
        else:
            kept = self.sample(record)
            if kept is None:
                return record_id
            rate = kept
        with self._lock:
            if self._closed or len(self._buffer) >= self.max_queue:
                self._stats["dropped"] += 1
                return record_id
            self._pending += 1
            self._stats["logged"] += 1
        self._buffer.append((rate, record))
        if len(self._buffer) >= self.batch_size and not self._wake.is_set():
            self._wake.set()
        return record_id

    @property
    def samples_later(self) -> bool:
        """True with a reservoir sampler: it chooses records when its window ends."""
        return self._reservoir is not None

    def sample(self, record: Mapping[str, Any]) -> float | None:
        """The sampler's verdict on a record: its inclusion probability, or None (counted as
        sampled out). For integrations that decide before paying for a record's features
        (:mod:`collectors.deepaas` describes images only for the records kept); a reservoir
        sampler decides later, so it keeps every record here."""
        if self.sampler is None or self._reservoir is not None:
            return 1.0
        try:
            kept = self.sampler.keep(record)  # type: ignore[union-attr]
        except Exception:  # a sampler bug must not break a prediction
            log.exception("the telemetry sampler failed; the record is kept")
            return 1.0
        if kept is None:
            with self._lock:
                self._stats["sampled_out"] += 1
            return None
        return float(kept)

    def flush(self, timeout: float | None = None) -> bool:
        """Send what was logged so far, then try the spool once (even while backing off).

        True only when every record logged so far reached Tidewatch; False when some are still
        queued or spooled (Tidewatch down, or ``timeout`` passed) or were lost (see ``LOST``).
        Without a timeout it waits for one round of sending, never for Tidewatch to come back.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            self._flush_asked += 1
            ticket = self._flush_asked
        self._wake.set()  # partial batches go now, not at the end of the interval
        with self._idle:
            while not self._stopped and (self._pending or self._flush_done < ticket):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return self._all_arrived()

    def _all_arrived(self) -> bool:
        """Nothing logged so far waits in memory or in the spool, and nothing was lost."""
        with self._lock:
            if self._pending or any(self._stats[outcome] for outcome in LOST):
                return False
        return self._spool is None or self._spool.records() == 0

    def close(self, timeout: float | None = 30.0) -> bool:
        """Flush (up to ``timeout``), stop the background thread, close the connection pool.

        Records still unsent when the timeout passes go to the spool, or are counted as
        dropped without one. True only when every record reached Tidewatch (as for
        :meth:`flush`); what is left in the spool is logged and counted in ``stats``.
        """
        with self._lock:
            closed_before, self._closed = self._closed, True
        if closed_before:
            return self._all_arrived()
        self._drain_reservoir(final=True)  # the window in progress ends with the client
        self.flush(timeout)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)
        self._http.close()
        atexit.unregister(self.close)
        self._warn_if_spooled()
        return self._all_arrived()

    def _warn_if_spooled(self) -> None:
        # the owner of the process should know that its telemetry is not at Tidewatch yet, and
        # where it waits (the next client of this model with the same folder sends it)
        waiting = self._spool.records() if self._spool is not None else 0
        if waiting and self._spool is not None:
            log.warning(
                "closed with %d telemetry records waiting in the spool at %s: a client of "
                "model %r using that folder sends them once Tidewatch answers",
                waiting,
                self._spool.folder,
                self.model,
            )

    def count_dropped(self, n: int = 1) -> None:
        """Count records that an integration had to leave out before ``log()`` (for example
        :mod:`collectors.deepaas` when its background thread falls behind)."""
        self._count(n, "dropped")

    @property
    def stats(self) -> dict[str, int]:
        """Counters (see ``COUNTERS``), plus ``spool_waiting``: records on disk right now."""
        with self._lock:
            stats = dict(self._stats)
        stats["spool_waiting"] = self._spool.records() if self._spool is not None else 0
        return stats

    def __enter__(self) -> TelemetryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the background thread ---------------------------------------------------------------
    def _count(self, n: int, outcome: str) -> None:
        with self._lock:
            self._stats[outcome] += n

    def _settle(self, n: int, outcome: str) -> None:
        with self._idle:
            self._stats[outcome] += n
            self._pending -= n
            if self._pending <= 0:
                self._pending = 0
                self._idle.notify_all()

    def _run(self) -> None:
        batches: dict[float, list[Mapping[str, Any]]] = {}  # one batch per sampling rate
        deadline = time.monotonic() + self.flush_interval
        while not self._stop.is_set():
            self._wake.wait(max(0.0, deadline - time.monotonic()))
            self._wake.clear()
            # read before taking the buffer: what was logged before that flush() is in it
            asked = self._flush_asked
            self._fill(batches)
            forced = asked > self._flush_done
            if forced or time.monotonic() >= deadline:
                self._drain_reservoir()
                self._fill(batches)  # what the reservoir released
                for rate in list(batches):
                    self._deliver(batches.pop(rate), rate)
                self._drain_spool(force=forced)
                self._served(asked)
                deadline = time.monotonic() + self.flush_interval
        self._spool_the_rest(batches)
        with self._idle:
            self._stopped = True
            self._idle.notify_all()  # no flush() waits for a round that will not come

    def _fill(self, batches: dict[float, list[Mapping[str, Any]]]) -> None:
        """Move the buffer into the batches, sending each batch that is full."""
        while self._buffer and not self._stop.is_set():
            rate, record = self._buffer.popleft()
            batches.setdefault(rate, []).append(record)
            if len(batches[rate]) >= self.batch_size:
                self._deliver(batches.pop(rate), rate)

    def _served(self, asked: int) -> None:
        with self._idle:
            self._flush_done = max(self._flush_done, asked)
            self._idle.notify_all()

    def _spool_the_rest(self, batches: dict[float, list[Mapping[str, Any]]]) -> None:
        """Stopped: what close() could not flush in time goes to the spool, or is given up."""
        while self._buffer:
            rate, record = self._buffer.popleft()
            batches.setdefault(rate, []).append(record)
        for rate, records in batches.items():
            if self._spool is not None:
                self._to_spool(self._body(records, rate), len(records))
            else:
                self._settle(len(records), "dropped")

    def _drain_reservoir(self, final: bool = False) -> None:
        if self._reservoir is None:
            return
        finished = self._reservoir.drain(now=float("inf") if final else None)
        if not finished:
            return
        with self._lock:
            self._pending += len(finished)
            self._stats["logged"] += len(finished)
        # the reservoir's size bounds this, so the queue bound does not apply
        self._buffer.extend((float(rate), record) for record, rate in finished)
        self._wake.set()

    @staticmethod
    def _body(records: list[Mapping[str, Any]], rate: float) -> bytes:
        return json.dumps({"records": records, "sampling_rate": rate}, default=to_json).encode()

    def _deliver(self, records: list[Mapping[str, Any]], rate: float) -> None:
        body, n = self._body(records, rate), len(records)
        if self._spool is not None and (time.monotonic() < self._retry_at or len(self._spool)):
            # Tidewatch is down, or older batches wait: queue behind them to keep the order
            self._to_spool(body, n)
            return
        outcome, duplicates = self._post(body, n, retries=self.max_retries)
        if outcome == "ok":
            self._settle(duplicates, "duplicates")
            self._settle(n - duplicates, "sent")
        elif outcome == "rejected":
            self._settle(n, "rejected")
        elif self._spool is not None:
            self._to_spool(body, n)
            self._mark_down()
        else:
            log.warning("giving up on %d records: Tidewatch did not answer", n)
            self._settle(n, "failed")

    def _to_spool(self, body: bytes, n: int) -> None:
        assert self._spool is not None
        try:
            dropped = self._spool.push(body, n)
        except OSError as exc:
            log.warning("could not spool %d records (%s): given up", n, exc)
            self._settle(n, "failed")
            return
        if dropped:
            log.warning("telemetry spool full: dropped the %d oldest records", dropped)
            self._count(dropped, "spool_dropped")
        self._settle(n, "spooled")

    def _drain_spool(self, force: bool = False) -> None:
        """Send spooled batches, oldest first, while Tidewatch answers; ``force``: even while
        backing off (a flush() asks whether Tidewatch is back now)."""
        if self._spool is None or (time.monotonic() < self._retry_at and not force):
            return
        while not self._stop.is_set():
            item = self._spool.claim()
            if item is None:
                return
            outcome, duplicates = self._post(self._spool.read(item), item.records, retries=0)
            if outcome == "retry":
                self._spool.release(item)
                self._mark_down()
                return
            # counted before the file goes, so that no moment shows the records nowhere
            if outcome == "ok":
                self._count(duplicates, "duplicates")
                self._count(item.records - duplicates, "sent")
            else:
                self._count(item.records, "rejected")
            self._spool.done(item)
            self._down_for = 0.0

    def _mark_down(self) -> None:
        # try again after a growing pause with full jitter, so many replicas coming back after
        # an outage do not all retry at once
        self._down_for = min(self.max_backoff, max(self.backoff, self._down_for * 2))
        self._retry_at = time.monotonic() + random.uniform(self._down_for / 2, self._down_for)

    def _post(self, body: bytes, n: int, *, retries: int) -> tuple[str, int]:
        """The outcome and the number of duplicates: "ok", "rejected" (a 4xx, logged) or
        "retry" (unreachable or 5xx after ``retries`` more tries)."""
        problem = ""
        for attempt in range(retries + 1):
            try:
                response = self._http.post(self._endpoint, content=body)
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 300:
                    return "ok", int(response.json().get("duplicates", 0))
                if response.status_code < 500 and response.status_code != 429:
                    log.error(
                        "Tidewatch refused a batch of %d records (%d): %s",
                        n,
                        response.status_code,
                        response.text[:500],
                    )
                    return "rejected", 0
                problem = f"HTTP {response.status_code}"
                # an overloaded Tidewatch says when to come back (503/429 with Retry-After)
                after = retry_after(response)
                if after is not None:
                    if attempt < retries and self._stop.wait(min(after, self.max_backoff)):
                        break
                    continue
            # full jitter; a stop request (close) interrupts the wait
            if attempt < retries and self._stop.wait(random.uniform(0, self.backoff * 2**attempt)):
                break
        log.warning("Tidewatch unreachable for %d records: %s", n, problem)
        return "retry", 0


def _after_fork(reference: weakref.ref[TelemetryClient]) -> None:
    """In a forked child: the parent's queue and thread are not this process's to use."""
    client = reference()
    if client is not None and not client._closed:
        client._start_fresh()
