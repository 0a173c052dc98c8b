"""Where the client's finished batches go: to Tidewatch, or to the on-disk spool while it is
away, and from the spool, oldest first, once it answers again.

The client's background thread is the only caller; the client keeps the counters, so the
outbox reports every outcome through two callbacks: ``settle`` for items taken from the
client's queue (they stop being pending) and ``count`` for items already settled before (a
spooled batch sent later, records pushed out of a full spool).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

import httpx

from collectors.spool import LABELS, TELEMETRY, Spool
from collectors.transport import post

log = logging.getLogger("tidewatch.collectors")
Tally = Callable[[int, str], None]  # (how many, outcome): an outcome of COUNTERS


def noun(kind: str) -> str:
    return "labels" if kind == LABELS else "records"


class Outbox:
    """Sends batch bodies of one kind (telemetry or labels) to their route, or spools them."""

    def __init__(
        self,
        http: httpx.Client,
        url: str,
        model: str,
        spool: Spool | None,
        *,
        max_retries: int,
        backoff: float,
        max_backoff: float,
        stop: threading.Event,
        settle: Tally,
        count: Tally,
    ) -> None:
        self.http = http
        self.spool = spool
        # one route per kind of batch: /telemetry and /labels
        self.endpoints = {k: f"{url}/api/v1/models/{model}/{k}" for k in (TELEMETRY, LABELS)}
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.stop = stop  # set when the client closes: pauses end at once
        self.settle = settle
        self.count = count
        self.retry_at = 0.0  # monotonic time before which Tidewatch is taken to be down
        self.down_for = 0.0
        self.problem = ""  # why the last try failed, for the warning at close

    def deliver(self, body: bytes, n: int, kind: str) -> None:
        """Send a batch of ``n`` items from the queue, or spool it."""
        if self.spool is not None and (time.monotonic() < self.retry_at or len(self.spool)):
            # Tidewatch is down, or older batches wait: queue behind them to keep the order
            self.to_spool(body, n, kind)
            return
        outcome, duplicates = self._post(body, n, kind, retries=self.max_retries)
        if outcome == "ok":
            self._taken(kind, n, duplicates, self.settle)
        elif outcome == "rejected":
            self.settle(n, "rejected")
        elif self.spool is not None:
            self.to_spool(body, n, kind)
            self._mark_down()
        else:
            log.warning("giving up on %d %s: Tidewatch did not answer", n, noun(kind))
            self.settle(n, "failed")

    def to_spool(self, body: bytes, n: int, kind: str) -> None:
        assert self.spool is not None
        try:
            dropped = self.spool.push(body, n, kind)
        except OSError as exc:
            log.warning("could not spool %d %s (%s): given up", n, noun(kind), exc)
            self.settle(n, "failed")
            return
        if dropped:
            log.warning("telemetry spool full: dropped the %d oldest records", dropped)
            self.count(dropped, "spool_dropped")
        self.settle(n, "spooled")

    def drain(self, force: bool = False) -> None:
        """Send spooled batches, oldest first, while Tidewatch answers; ``force``: even while
        backing off (a flush() asks whether Tidewatch is back now)."""
        if self.spool is None or (time.monotonic() < self.retry_at and not force):
            return
        while not self.stop.is_set():
            item = self.spool.claim()
            if item is None:
                return
            body = self.spool.read(item)
            outcome, duplicates = self._post(body, item.records, item.kind, retries=0)
            if outcome == "retry":
                self.spool.release(item)
                self._mark_down()
                return
            # counted before the file goes, so that no moment shows the records nowhere
            if outcome == "ok":
                self._taken(item.kind, item.records, duplicates, self.count)
            else:
                self.count(item.records, "rejected")
            self.spool.done(item)
            self.down_for = 0.0

    @staticmethod
    def _taken(kind: str, n: int, duplicates: int, tally: Tally) -> None:
        if kind == LABELS:
            tally(n, "labels_sent")  # a label sent again replaces the one before
        else:
            tally(duplicates, "duplicates")
            tally(n - duplicates, "sent")

    def _mark_down(self) -> None:
        # try again after a growing pause with full jitter, so many replicas coming back after
        # an outage do not all retry at once
        self.down_for = min(self.max_backoff, max(self.backoff, self.down_for * 2))
        self.retry_at = time.monotonic() + random.uniform(self.down_for / 2, self.down_for)

    def _post(self, body: bytes, n: int, kind: str, *, retries: int) -> tuple[str, int]:
        """The outcome and the number of duplicates: "ok", "rejected" (a 4xx, logged) or
        "retry" (unreachable or 5xx after ``retries`` more tries)."""
        answer = post(
            self.http,
            self.endpoints[kind],
            body,
            retries=retries,
            backoff=self.backoff,
            max_backoff=self.max_backoff,
            wait=lambda seconds: self.stop.wait(seconds),  # close() interrupts the pauses
        )
        if answer.outcome == "rejected":
            log.error(
                "Tidewatch refused a batch of %d %s (%s): %s",
                n,
                noun(kind),
                answer.status,
                answer.problem,
            )
        elif answer.outcome == "retry":
            self.problem = answer.problem
            # said once when Tidewatch goes away; while it stays away, retries are not news
            level = logging.WARNING if self.down_for == 0.0 else logging.DEBUG
            log.log(level, "Tidewatch unreachable for %d %s: %s", n, noun(kind), answer.problem)
        return answer.outcome, answer.duplicates
