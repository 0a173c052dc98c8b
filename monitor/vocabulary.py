"""The words Tidewatch stores and compares: run and model statuses, window keys, result keys.

A leaf module: it imports nothing of Tidewatch's, so ``monitor``, ``alerts`` and ``dashboards``
all take these words from here (the one import of ``monitor`` that ``alerts`` and
``dashboards`` make). Statuses are ``StrEnum``: stored and sent as their plain string values,
so databases and JSON written before this module existed read back unchanged.

>>> RunStatus("insufficient_data").verdict, RunStatus.DRIFT.model_status
(False, <ModelStatus.DRIFT: 'drift'>)
>>> worst([ModelStatus.OK, ModelStatus.DRIFT, ModelStatus.NO_DATA])
<ModelStatus.DRIFT: 'drift'>
>>> WindowKey.parse("c:12.0")
WindowKey(kind=<WindowKind.COUNT: 'c'>, value='12.0')
>>> ResultKey.parse("estimated.accuracy")
ResultKey(kind=<ResultKind.ESTIMATED: 'estimated'>, name='accuracy')
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum


class ModelStatus(StrEnum):
    """A model's (or a monitor's) status: what its latest windows say."""

    NO_DATA = "no_data"
    OK = "ok"
    WARNING = "warning"
    DRIFT = "drift"

    @property
    def rank(self) -> int:
        """Higher is worse; ``no_data`` ranks below ``ok`` (it says nothing)."""
        return _MODEL_RANK[self]

    @property
    def label(self) -> str:
        """For people: ``no data`` rather than ``no_data``."""
        return self.value.replace("_", " ")


_MODEL_RANK = {
    ModelStatus.NO_DATA: 0,
    ModelStatus.OK: 1,
    ModelStatus.WARNING: 2,
    ModelStatus.DRIFT: 3,
}


def worst(statuses: Iterable[ModelStatus | str]) -> ModelStatus:
    """The worst of some statuses (``no_data`` when there are none)."""
    return max(
        (ModelStatus(s) for s in statuses), key=_MODEL_RANK.__getitem__, default=ModelStatus.NO_DATA
    )


class RunStatus(StrEnum):
    """A detection run's outcome. The last three give no verdict about the data."""

    OK = "ok"
    WARNING = "warning"
    DRIFT = "drift"
    INSUFFICIENT_DATA = "insufficient_data"
    NO_REFERENCE = "no_reference"
    ERROR = "error"

    @property
    def verdict(self) -> bool:
        """Whether the run says something about the data (ok, warning or drift)."""
        return self not in NO_VERDICT

    @property
    def model_status(self) -> ModelStatus:
        """The run's status as a model status: runs without a verdict count as no data."""
        return ModelStatus.NO_DATA if self in NO_VERDICT else ModelStatus(self.value)

    @property
    def severity(self) -> int:
        """For combining the steps of one run: higher is worse (error never combines)."""
        return self.model_status.rank


NO_VERDICT: frozenset[RunStatus] = frozenset(
    {RunStatus.INSUFFICIENT_DATA, RunStatus.NO_REFERENCE, RunStatus.ERROR}
)


class WindowKind(StrEnum):
    """The prefix of a window key: which kind of window a run covers."""

    TIME = "t"  # a tumbling time window: "t:<ISO start>"
    COUNT = "c"  # a tumbling count window: "c:<first batch>.<first row>"
    BACKFILL = "b"  # a count window of a backfill: "b:<first record id>"


@dataclass(frozen=True)
class WindowKey:
    """A tumbling window's unique key within its monitor, as stored in ``window_key``.

    >>> key = WindowKey.time(datetime(2026, 1, 1, tzinfo=UTC))
    >>> str(key), WindowKey.parse(str(key)) == key, key.spans_time
    ('t:2026-01-01T00:00:00+00:00', True, True)
    """

    kind: WindowKind
    value: str

    @classmethod
    def time(cls, start: datetime) -> WindowKey:
        return cls(WindowKind.TIME, start.astimezone(UTC).isoformat())

    @classmethod
    def count(cls, batch: int, row: int) -> WindowKey:
        return cls(WindowKind.COUNT, f"{batch}.{row}")

    @classmethod
    def backfill(cls, first_id: str) -> WindowKey:
        return cls(WindowKind.BACKFILL, first_id)

    @classmethod
    def parse(cls, text: str) -> WindowKey:
        prefix, sep, value = text.partition(":")
        if not sep:
            raise ValueError(f"not a window key: {text!r}")
        return cls(WindowKind(prefix), value)

    @staticmethod
    def is_time(text: str | None) -> bool:
        """Whether a stored key (or None, for sliding runs) names a time window."""
        return text is not None and text.startswith(WindowKind.TIME + ":")

    @property
    def spans_time(self) -> bool:
        return self.kind is WindowKind.TIME

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.value}"


class ResultKind(StrEnum):
    """The prefix of a performance result's metric name (realized metrics have none)."""

    REALIZED = ""
    ESTIMATED = "estimated"  # "estimated.<metric>": a label-free estimate (CBPE)
    STREAM = "stream"  # "stream.<detector>.<what>": a streaming concept-drift detector


@dataclass(frozen=True)
class ResultKey:
    """The stored name of a performance result.

    >>> str(ResultKey.estimated("f1_macro")), ResultKey.parse("f1_macro").kind.name
    ('estimated.f1_macro', 'REALIZED')
    >>> ResultKey.parse("stream.ddm.drifts").name
    'ddm.drifts'
    """

    kind: ResultKind
    name: str

    @classmethod
    def realized(cls, metric: str) -> ResultKey:
        return cls(ResultKind.REALIZED, metric)

    @classmethod
    def estimated(cls, metric: str) -> ResultKey:
        return cls(ResultKind.ESTIMATED, metric)

    @classmethod
    def stream(cls, method: str, what: str) -> ResultKey:
        return cls(ResultKind.STREAM, f"{method}.{what}")

    @classmethod
    def parse(cls, text: str) -> ResultKey:
        for kind in (ResultKind.ESTIMATED, ResultKind.STREAM):
            prefix = kind.value + "."
            if text.startswith(prefix):
                return cls(kind, text.removeprefix(prefix))
        return cls(ResultKind.REALIZED, text)

    def __str__(self) -> str:
        return self.name if self.kind is ResultKind.REALIZED else f"{self.kind.value}.{self.name}"
