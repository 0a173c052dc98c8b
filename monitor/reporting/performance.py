"""Realized and estimated performance of a run, side by side, and why the two can differ.

A run with a performance monitor stores each realized metric (on the window's records whose
labels have arrived, ``n_labels`` of them) and, with ``estimate: true``, CBPE's estimate of
the same metric under ``estimated.<metric>`` (from the predicted probabilities of every record
in the window, calibrated on ``n_labels`` labelled records *before* the window). The report
puts each pair on one row and says in one line why they need not agree.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.db.tables import PerformanceResult
from monitor.vocabulary import ResultKey, ResultKind


@dataclass(frozen=True)
class Pair:
    metric: str
    realized: PerformanceResult | None
    estimated: PerformanceResult | None


def pairs(rows: list[PerformanceResult]) -> list[Pair]:
    """One row per metric, realized beside estimated (either may be missing), stored order.
    A streaming detector's rows (``stream.*``) are not metrics and are left out."""
    realized: dict[str, PerformanceResult] = {}
    estimated: dict[str, PerformanceResult] = {}
    order: list[str] = []
    for row in rows:
        key = ResultKey.parse(row.metric)
        if key.kind == ResultKind.STREAM:
            continue
        (estimated if key.kind == ResultKind.ESTIMATED else realized)[key.name] = row
        if key.name not in order:
            order.append(key.name)
    return [Pair(m, realized.get(m), estimated.get(m)) for m in order]


def why_they_differ(found: list[Pair], n_window: int) -> str:
    """One line on why realized and estimated values differ; "" unless a metric has both.

    >>> r = PerformanceResult(metric="accuracy", value=0.71, n_labels=40, problem=True)
    >>> e = PerformanceResult(metric="estimated.accuracy", value=0.9, n_labels=500, problem=False)
    >>> why_they_differ([Pair("accuracy", r, e)], 300)[:45]
    'Realized accuracy counts only the 40 labelled'
    """
    both = next((p for p in found if p.realized and p.estimated), None)
    if both is None or both.realized is None or both.estimated is None:
        return ""
    labelled, calibration = both.realized.n_labels, both.estimated.n_labels
    return (
        f"Realized {both.metric} counts only the {labelled} labelled records of this "
        f"window's {n_window} (labels arrive late, and the records people label first need "
        "not be typical ones); the estimate covers every record, from its predicted "
        f"probabilities, and trusts their calibration on {calibration} labelled records from "
        "before the window, which a drift can break. Far apart, the two say the model is "
        "less calibrated on this data than before: believe the labels, and label more."
    )
