"""The telemetry client that deployed modules embed.

``log()`` only samples the record and puts it on a bounded queue: it never blocks and never
raises because of Tidewatch. ``log_labels()`` queues delayed true labels the same way (never
sampled). A background thread batches records by size and time and posts them with httpx
(:mod:`collectors.outbox`). A 4xx (bad data) is not retried: it is logged with the server's
message and counted. While Tidewatch is unreachable or answers 5xx, batches go to a bounded
on-disk spool (:mod:`collectors.spool`) and are sent, oldest first, once it answers again;
record ids make a resend after a lost answer harmless.

Memory is bounded: at most ``max_queue`` records wait in the queue and ``batch_size`` more per
sampling rate in the batches being filled; beyond that ``log()`` drops the record and counts it.
The client is safe to share between threads, and after ``fork`` (DEEPaaS runs predictions in a
process pool) the child starts its own empty queue, thread and connections.

``flush()`` and ``close()`` answer True only when every record logged so far reached Tidewatch
(sent, found to be a duplicate, or refused for good with a 4xx): records waiting in the spool,
or lost (dropped, failed, pushed out of a full spool), make them answer False. ``close()`` (and
so the end of a ``with`` block and the interpreter's exit) keeps trying the spool for
``drain_timeout`` seconds, then logs a WARNING naming what is left, where, and the command that
sends it later (``tidewatch collect MODEL --drain DIR``). An overloaded Tidewatch answers 503
with ``Retry-After``: the client waits that long before trying again.
"""

from __future__ import annotations

import atexit
import itertools
import json
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, Union

import httpx

from collectors.environment import read_config
from collectors.outbox import Outbox
from collectors.sampling import Reservoir, Sampler, make_sampler
from collectors.spool import LABELS, TELEMETRY, Spool, default_spool_dir
from collectors.transport import to_json

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
    "labels_logged",  # labels accepted by log_labels() (the counters above count them too)
    "labels_sent",  # labels stored by Tidewatch
)
# outcomes of records that never reached Tidewatch and never will
LOST = ("dropped", "failed", "spool_dropped")
# what a batch is keyed by while it fills: a sampling rate (telemetry) or LABELS
Key = Union[float, str]


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
    ``drain_timeout``: how long ``close()`` keeps trying to send the spool (seconds).
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
        drain_timeout: float = 10.0,
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
        self.drain_timeout = drain_timeout
        # a sampler with offer()/drain() (collectors.sampling.ReservoirSampler) holds records
        # until its window ends instead of deciding per record
        self._reservoir: Reservoir | None = sampler if hasattr(sampler, "drain") else None  # type: ignore[assignment]
        self.transport = transport
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

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        url: str | None = None,
        model: str | None = None,
        key: str | None = None,
        **options: Any,
    ) -> TelemetryClient:
        """A client for ``TIDEWATCH_URL``, ``TIDEWATCH_MODEL`` and ``TIDEWATCH_KEY``, sampling
        as ``TIDEWATCH_SAMPLER`` says (``0.1``, ``rate:0.1``, ``stratified:0.1``; default all).

        ``url``, ``model`` and ``key`` given here win over the variables, and so does a
        ``sampler`` among ``options`` (the constructor's other parameters). Raises ValueError
        naming each variable that is missing or invalid (see :mod:`collectors.environment`).
        """
        config = read_config(environ, url=url, model=model, key=key)
        if config.sampler is not None and options.get("sampler") is None:
            options["sampler"] = make_sampler(config.sampler)
        return cls(config.url, config.model, config.key, **options)

    def _start_fresh(self) -> None:
        """Buffer, locks, connections and thread of this process (again after a fork)."""
        self._pid = os.getpid()
        # log() appends to a deque (atomic, never blocks) and wakes the sender only when a batch
        # is full: a queue.Queue woke it on every record, and the two threads then took turns
        # on the GIL in the caller's time
        self._buffer: deque[tuple[Key, Mapping[str, Any]]] = deque()
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
        self._stop = threading.Event()
        self._http = httpx.Client(
            timeout=self.timeout,
            transport=self.transport,
            headers={"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"},
        )
        self._outbox = Outbox(
            self._http,
            self.url,
            self.model,
            self._spool,
            max_retries=self.max_retries,
            backoff=self.backoff,
            max_backoff=self.max_backoff,
            stop=self._stop,
            settle=self._settle,
            count=self._count,
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

    def log_labels(self, labels: Iterable[Mapping[str, Any]]) -> int:
        """Queue true labels for earlier records; returns how many were queued (a full queue
        drops the rest, counted).

        Each label names its record's ``id`` and holds ``label`` (classification), ``value``
        (regression) or ``boxes`` (detection), optionally with a ``timestamp``. Labels are never
        sampled; they are batched, retried and spooled like records, and a label sent again
        replaces the one before, so a resend is harmless.

        >>> client = TelemetryClient("http://127.0.0.1:9", "m", "k", spool_dir=False)
        >>> client.log_labels([{"id": "r1", "label": "copepod"}, {"id": "r2", "label": "diatom"}])
        2
        >>> client.close(timeout=0.1, drain_timeout=0)
        False
        """
        queued = 0
        for label in labels:
            with self._lock:
                if self._closed or len(self._buffer) >= self.max_queue:
                    self._stats["dropped"] += 1
                    continue
                self._pending += 1
                self._stats["labels_logged"] += 1
            self._buffer.append((LABELS, label))
            queued += 1
        if len(self._buffer) >= self.batch_size and not self._wake.is_set():
            self._wake.set()
        return queued

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

    def close(self, timeout: float | None = 30.0, drain_timeout: float | None = None) -> bool:
        """Flush (up to ``timeout``), try the spool again for up to ``drain_timeout`` seconds
        (default: the client's), stop the background thread, close the connection pool.

        Records still unsent when the timeout passes go to the spool, or are counted as
        dropped without one. True only when every record reached Tidewatch (as for
        :meth:`flush`); what is left in the spool is logged (WARNING) and counted in ``stats``.
        """
        with self._lock:
            closed_before, self._closed = self._closed, True
        if closed_before:
            return self._all_arrived()
        self._drain_reservoir(final=True)  # the window in progress ends with the client
        self.flush(timeout)
        self._retry_spool(self.drain_timeout if drain_timeout is None else drain_timeout)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)
        self._http.close()
        atexit.unregister(self.close)
        self._warn_if_spooled()
        return self._all_arrived()

    def _retry_spool(self, seconds: float) -> None:
        """While the spool holds batches, ask the sender to try it again, with growing pauses,
        until it is empty or ``seconds`` have passed (a short outage ends within a close)."""
        deadline = time.monotonic() + seconds
        pause = self.backoff
        while self._spool is not None and self._spool.records() and not self._stopped:
            if deadline - time.monotonic() <= 0:
                return
            self.flush(deadline - time.monotonic())  # a flush tries the spool now
            if not self._spool.records():
                return
            time.sleep(max(0.0, min(pause, deadline - time.monotonic())))
            pause = min(2 * pause, self.max_backoff)

    def _warn_if_spooled(self) -> None:
        # the owner of the process should know that data is not at Tidewatch yet, where it
        # waits, and how to send it
        if self._spool is None or not self._spool.records():
            return
        records, labels = self._spool.records(TELEMETRY), self._spool.records(LABELS)
        waiting = " and ".join(
            f"{n} {what}{'s' * (n != 1)}"
            for n, what in ((records, "telemetry record"), (labels, "label"))
            if n
        )
        log.warning(
            "closed with %s still in the spool at %s (%s). "
            "Send them with `tidewatch collect %s --drain %s`; a client of model %r with that "
            "spool folder also sends them once Tidewatch answers",
            waiting,
            self._spool.folder,
            self._outbox.problem or "Tidewatch did not answer",
            self.model,
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
        batches: dict[Key, list[Mapping[str, Any]]] = {}  # per sampling rate, and the labels
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
                for key in list(batches):
                    self._send(batches.pop(key), key)
                self._outbox.drain(force=forced)
                self._served(asked)
                deadline = time.monotonic() + self.flush_interval
        self._spool_the_rest(batches)
        with self._idle:
            self._stopped = True
            self._idle.notify_all()  # no flush() waits for a round that will not come

    def _fill(self, batches: dict[Key, list[Mapping[str, Any]]]) -> None:
        """Move the buffer into the batches, sending each batch that is full."""
        while self._buffer and not self._stop.is_set():
            key, item = self._buffer.popleft()
            batches.setdefault(key, []).append(item)
            if len(batches[key]) >= self.batch_size:
                self._send(batches.pop(key), key)

    def _served(self, asked: int) -> None:
        with self._idle:
            self._flush_done = max(self._flush_done, asked)
            self._idle.notify_all()

    def _spool_the_rest(self, batches: dict[Key, list[Mapping[str, Any]]]) -> None:
        """Stopped: what close() could not flush in time goes to the spool, or is given up."""
        while self._buffer:
            key, item = self._buffer.popleft()
            batches.setdefault(key, []).append(item)
        for key, items in batches.items():
            if self._spool is not None:
                self._outbox.to_spool(self._body(items, key), len(items), _kind(key))
            else:
                self._settle(len(items), "dropped")

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
    def _body(items: list[Mapping[str, Any]], key: Key) -> bytes:
        body = {"labels": items} if key == LABELS else {"records": items, "sampling_rate": key}
        return json.dumps(body, default=to_json).encode()

    def _send(self, items: list[Mapping[str, Any]], key: Key) -> None:
        self._outbox.deliver(self._body(items, key), len(items), _kind(key))


def _kind(key: Key) -> str:
    return LABELS if key == LABELS else TELEMETRY


def _after_fork(reference: weakref.ref[TelemetryClient]) -> None:
    """In a forked child: the parent's queue and thread are not this process's to use."""
    client = reference()
    if client is not None and not client._closed:
        client._start_fresh()
