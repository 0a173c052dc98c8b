"""Which records a deployed module sends: every one, a random share, or a per-class share.

A sampler runs in the caller's thread on every ``log()``: ``keep(record)`` is cheap, thread-safe
and never raises on odd records. It returns None to leave the record out, or the probability
with which this record was kept; the client sends that probability with the batch
(``sampling_rate``), so weighting each record by ``1 / rate`` gives unbiased counts.

>>> sampler = make_sampler("stratified:0.1")
>>> sampler.keep({"prediction": {"label": "rare-diatom"}})  # the first of its class this window
1.0
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

Clock = Callable[[], float]


def _check_rate(rate: float) -> float:
    rate = float(rate)
    if not 0.0 < rate <= 1.0:
        raise ValueError(f"rate must be in (0, 1], got {rate}")
    return rate


class KeepAll:
    """Every record, with probability 1."""

    def keep(self, record: Mapping[str, Any]) -> float | None:
        return 1.0


class Sampler(Protocol):
    """Decides in the caller's thread whether a record is sent (see :mod:`collectors.sampling`):
    None drops it; a float keeps it with that inclusion probability."""

    def keep(self, record: Mapping[str, Any]) -> float | None: ...


class Reservoir(Protocol):
    """Holds records until its window ends (:class:`collectors.sampling.ReservoirSampler`)."""

    def offer(self, record: Mapping[str, Any]) -> None: ...

    def drain(self, now: float | None = None) -> list[tuple[Mapping[str, Any], float]]: ...


class RateSampler:
    """Each record independently with probability ``rate`` (seeded: reproducible).

    >>> sampler = RateSampler(rate=0.5, seed=1)
    >>> [sampler.keep({}) for _ in range(4)]
    [0.5, None, None, 0.5]
    """

    def __init__(self, *, rate: float, seed: int | None = None) -> None:
        self.rate = _check_rate(rate)
        self.seed = seed
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def keep(self, record: Mapping[str, Any]) -> float | None:
        with self._lock:
            draw = self._random.random()
        return self.rate if draw < self.rate else None


def predicted_label(record: Mapping[str, Any]) -> str | None:
    """The record's predicted label, or None when it has none (never raises)."""
    try:
        label = record["prediction"]["label"]
    except (KeyError, TypeError, IndexError):
        return None
    return None if label is None else str(label)


class StratifiedSampler:
    """Keeps rare predicted classes: in each time window the first ``min_per_class`` records of
    every class are kept for sure, later ones with probability ``rate``.

    The probability returned is the one used for that record, so ``1 / rate`` weights sum to
    the class counts in expectation for common and rare classes alike. Records without a label
    form a stratum of their own.

    >>> sampler = StratifiedSampler(rate=0.2, min_per_class=1, seed=0)
    >>> [sampler.keep({"prediction": {"label": "a"}}) for _ in range(3)]
    [1.0, None, None]
    """

    def __init__(
        self,
        *,
        rate: float,
        min_per_class: int = 20,
        window_seconds: float = 60.0,
        seed: int | None = None,
        label: Callable[[Mapping[str, Any]], str | None] = predicted_label,
        clock: Clock = time.monotonic,
    ) -> None:
        if min_per_class < 0:
            raise ValueError("min_per_class must be >= 0")
        if window_seconds <= 0:
            raise ValueError("window_seconds must be > 0")
        self.rate = _check_rate(rate)
        self.min_per_class = min_per_class
        self.window_seconds = window_seconds
        self.seed = seed
        self.label = label
        self.clock = clock
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._window_end = clock() + window_seconds
        self._seen: dict[str | None, int] = {}

    def keep(self, record: Mapping[str, Any]) -> float | None:
        try:
            stratum = self.label(record)
        except Exception:  # a custom label function must not break a prediction
            stratum = None
        with self._lock:
            now = self.clock()
            if now >= self._window_end:
                self._seen.clear()
                self._window_end = now + self.window_seconds
            seen = self._seen.get(stratum, 0)
            self._seen[stratum] = seen + 1
            if seen < self.min_per_class:
                return 1.0
            draw = self._random.random()
        return self.rate if draw < self.rate else None


class ReservoirSampler:
    """A uniform sample of at most ``size`` records per time window (Algorithm R).

    A reservoir's choice is final only when its window ends, so this is not a ``keep()``
    sampler: ``offer()`` each record, and ``drain()`` returns the finished windows' records with
    their inclusion probability (kept / seen in that window).

    >>> sampler = ReservoirSampler(size=2, window_seconds=60, seed=0, clock=lambda: 0.0)
    >>> for i in range(4):
    ...     sampler.offer({"id": i})
    >>> [(r["id"], p) for r, p in sampler.drain(now=61.0)]
    [(0, 0.5), (2, 0.5)]
    """

    def __init__(
        self,
        *,
        size: int,
        window_seconds: float,
        seed: int | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        if size < 1:
            raise ValueError("size must be >= 1")
        if window_seconds <= 0:
            raise ValueError("window_seconds must be > 0")
        self.size = size
        self.window_seconds = window_seconds
        self.seed = seed
        self.clock = clock
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._window_end = clock() + window_seconds
        self._reservoir: list[Mapping[str, Any]] = []
        self._seen = 0
        self._finished: list[tuple[Mapping[str, Any], float]] = []

    def _close_window(self, now: float) -> None:
        if self._seen:
            rate = len(self._reservoir) / self._seen
            self._finished.extend((r, rate) for r in self._reservoir)
        self._reservoir, self._seen = [], 0
        self._window_end = now + self.window_seconds

    def offer(self, record: Mapping[str, Any]) -> None:
        with self._lock:
            now = self.clock()
            if now >= self._window_end:
                self._close_window(now)
            self._seen += 1
            if len(self._reservoir) < self.size:
                self._reservoir.append(record)
            else:
                j = self._random.randrange(self._seen)
                if j < self.size:
                    self._reservoir[j] = record

    def drain(self, now: float | None = None) -> list[tuple[Mapping[str, Any], float]]:
        """Records of the windows that have ended, with their inclusion probability."""
        with self._lock:
            current = self.clock() if now is None else now
            if current >= self._window_end:
                self._close_window(current)
            finished, self._finished = self._finished, []
        return finished


def make_sampler(spec: str | float | None) -> KeepAll | RateSampler | StratifiedSampler:
    """None: every record; 0.1 (or "0.1", "rate:0.1"): a 10% random sample;
    "stratified:0.1": rare classes kept.

    >>> make_sampler("0.25").rate, make_sampler("stratified:0.1").rate
    (0.25, 0.1)
    """
    if spec is None:
        return KeepAll()
    if isinstance(spec, (int, float)):
        return RateSampler(rate=float(spec))
    try:
        rate = float(spec)  # a bare number, as environment variables give it
    except ValueError:
        pass
    else:
        return RateSampler(rate=rate)
    kind, _, value = spec.partition(":")
    if kind == "rate" and value:
        return RateSampler(rate=float(value))
    if kind == "stratified" and value:
        return StratifiedSampler(rate=float(value))
    raise ValueError(f"unknown sampler {spec!r}; use a rate, 'rate:0.1' or 'stratified:0.1'")
