"""How batches travel: records as JSON, one POST with its retries, and what an overloaded
Tidewatch asks of the client (``Retry-After``)."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

log = logging.getLogger("tidewatch.collectors")
# undeclared feature names already reported by this process: each is said once, not per batch
_said_ignored: set[str] = set()
_said_lock = threading.Lock()


def report_ignored(answer: Any) -> None:
    """Warn once per name about features Tidewatch left out because the model does not declare
    them (the batch itself was stored)."""
    ignored = answer.get("ignored_features") if isinstance(answer, dict) else None
    if not ignored:
        return
    with _said_lock:
        new = sorted(set(ignored) - _said_ignored)
        _said_ignored.update(new)
    if new:
        log.warning(
            "Tidewatch stores the records but leaves out features the model does not declare: "
            "%s (declare them in the model's spec to monitor them)",
            ", ".join(new),
        )


def to_json(value: Any) -> Any:
    """numpy scalars and arrays (and anything with ``tolist``) become plain JSON values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot send a {type(value).__name__} as telemetry")


def retry_after(response: httpx.Response) -> float | None:
    """Seconds from a ``Retry-After: <seconds>`` header (the HTTP-date form is not used here)."""
    value = response.headers.get("retry-after", "")
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


@dataclass(frozen=True)
class Answer:
    """What became of one POST: ``outcome`` is "ok", "rejected" (a 4xx other than 429: the
    request itself is wrong, sending it again would not help) or "retry" (unreachable, or a
    5xx/429 after every try)."""

    outcome: str
    duplicates: int = 0
    status: int | None = None  # the last HTTP status; None when Tidewatch did not answer
    problem: str = ""  # the server's message (rejected) or why it did not answer (retry)


def post(
    http: httpx.Client,
    url: str,
    body: bytes,
    *,
    retries: int,
    backoff: float,
    max_backoff: float,
    wait: Callable[[float], bool],
) -> Answer:
    """POST ``body`` with up to ``retries`` more tries after a failure.

    Between tries it waits what a 503/429 asks (``Retry-After``, at most ``max_backoff``), else
    a random pause below ``backoff * 2**attempt`` (full jitter, so many replicas coming back
    after an outage do not retry at once). ``wait(seconds)`` does the waiting and answers True
    to give up now (a client being closed).
    """
    problem, status = "", None
    for attempt in range(retries + 1):
        try:
            response = http.post(url, content=body)
        except httpx.HTTPError as exc:
            problem, status = f"{type(exc).__name__}: {exc}", None
        else:
            status = response.status_code
            if status < 300:
                answer = response.json()
                report_ignored(answer)
                return Answer("ok", int(answer.get("duplicates", 0)), status)
            if status < 500 and status != 429:
                return Answer("rejected", 0, status, response.text[:500])
            problem = f"HTTP {status}"
            after = retry_after(response)
            if after is not None:
                if attempt < retries and wait(min(after, max_backoff)):
                    break
                continue
        if attempt < retries and wait(random.uniform(0, backoff * 2**attempt)):
            break
    return Answer("retry", 0, status, problem)
