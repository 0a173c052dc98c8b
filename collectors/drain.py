"""Sending a spool that a client left behind, by hand: ``tidewatch collect MODEL --drain DIR``.

A client that closes while Tidewatch is down leaves its batches in its spool folder (and says
so in a WARNING). :func:`send_spool` sends them, oldest first, each batch to its route
(telemetry or labels), and deletes each file once Tidewatch has it. Record ids make a batch
sent twice harmless, so it may run while a client with the same folder is running (claims are
atomic renames) or again after an interruption.

Unlike the client, it never deletes a refused batch: a wrong key or model name (401, 403, 404)
stops the drain at once, and a batch refused for its content stays in the folder, named in the
report, for a person to look at.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import httpx

from collectors.spool import LABELS, Spool, SpooledBatch
from collectors.transport import post

# refusals that are about the request's target, not the batch: every other batch would get them
_WRONG_TARGET = (401, 403, 404)


@dataclass
class DrainReport:
    """What a drain did: stored records (and how many were there already), stored labels,
    refused items left in the folder, and what remains there."""

    sent: int = 0
    duplicates: int = 0
    labels: int = 0
    refused: int = 0
    remaining: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.remaining == 0


def send_spool(
    folder: str | os.PathLike[str],
    url: str,
    model: str,
    key: str,
    *,
    retries: int = 3,
    backoff: float = 0.5,
    max_backoff: float = 30.0,
    timeout: float = 60.0,
    progress: Optional[Callable[[int], None]] = None,
    transport: Optional[httpx.BaseTransport] = None,
) -> DrainReport:
    """Send every batch in ``folder`` to ``model`` at ``url``; ``progress`` is called with the
    number of records (or labels) of each batch done. Stops when Tidewatch does not answer
    after ``retries`` more tries (with growing pauses, and as long as ``Retry-After`` asks)."""
    spool = Spool(folder)  # also releases batches claimed by a process that died
    endpoint = f"{url.rstrip('/')}/api/v1/models/{model}"
    report = DrainReport()
    kept: list[SpooledBatch] = []  # refused or unsent: back in the folder at the end
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    with httpx.Client(timeout=timeout, transport=transport, headers=headers) as http:
        try:
            while (item := spool.claim()) is not None:
                answer = post(
                    http,
                    f"{endpoint}/{item.kind}",
                    spool.read(item),
                    retries=retries,
                    backoff=backoff,
                    max_backoff=max_backoff,
                    wait=_sleep,
                )
                if answer.outcome == "ok":
                    _count(report, item, answer.duplicates)
                    spool.done(item)
                    if progress is not None:
                        progress(item.records)
                    continue
                kept.append(item)
                name = item.path.name.split(".sending.")[0]
                if answer.outcome == "rejected":
                    report.refused += item.records
                    report.problems.append(f"{name} refused ({answer.status}): {answer.problem}")
                    if answer.status not in _WRONG_TARGET:
                        continue
                else:
                    report.problems.append(f"Tidewatch did not answer: {answer.problem}")
                break
        finally:
            for item in kept:
                spool.release(item)
    report.remaining = spool.records()
    return report


def _count(report: DrainReport, item: SpooledBatch, duplicates: int) -> None:
    if item.kind == LABELS:
        report.labels += item.records
    else:
        report.duplicates += duplicates
        report.sent += item.records - duplicates


def _sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return False  # never asked to give up early


def spool_records(folder: str | os.PathLike[str]) -> int:
    """Records and labels waiting in a spool folder (for a progress bar's total)."""
    return Spool(Path(folder)).records()
