"""Response bodies of the HTTP API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from monitor.db.tables import DetectionResult, DetectionRun, QualityResult
from monitor.schema import ModelSpec


class ModelOut(BaseModel):
    name: str
    version: str
    created: bool = False
    spec: ModelSpec
    reference_rows: int | None = None
    records: int = 0


class IngestOut(BaseModel):
    accepted: int
    duplicates: int


class LabelsOut(BaseModel):
    stored: int
    matched: int


class ReferenceOut(BaseModel):
    model: str
    version: str
    rows: int
    sha256: str


class ResultOut(BaseModel):
    feature: str
    method: str
    statistic: float | None
    p_value: float | None
    p_adjusted: float | None
    drift: bool
    n_reference: int
    n_current: int

    @classmethod
    def of(cls, row: DetectionResult) -> ResultOut:
        return cls(
            feature=row.feature,
            method=row.method,
            statistic=row.statistic,
            p_value=row.p_value,
            p_adjusted=row.p_adjusted,
            drift=row.drift,
            n_reference=row.n_reference,
            n_current=row.n_current,
        )


class QualityOut(BaseModel):
    feature: str
    check: str
    value: float | None
    reference_value: float | None
    problem: bool

    @classmethod
    def of(cls, row: QualityResult) -> QualityOut:
        return cls(
            feature=row.feature,
            check=row.check,
            value=row.value,
            reference_value=row.reference_value,
            problem=row.problem,
        )


class RunOut(BaseModel):
    id: int
    model: str
    version: str
    monitor: str
    status: str
    message: str
    started_at: datetime
    finished_at: datetime | None
    window_start: datetime | None
    window_end: datetime | None
    n_reference: int
    n_current: int
    drifted_share: float | None
    correction: str
    alpha: float
    results: list[ResultOut]
    quality: list[QualityOut]

    @classmethod
    def of(
        cls,
        run: DetectionRun,
        model: str,
        version: str,
        results: list[DetectionResult],
        quality: list[QualityResult],
    ) -> RunOut:
        return cls(
            id=run.id,
            model=model,
            version=version,
            monitor=run.monitor,
            status=run.status,
            message=run.message,
            started_at=run.started_at,
            finished_at=run.finished_at,
            window_start=run.window_start,
            window_end=run.window_end,
            n_reference=run.n_reference,
            n_current=run.n_current,
            drifted_share=run.drifted_share,
            correction=run.correction,
            alpha=run.alpha,
            results=[ResultOut.of(r) for r in results],
            quality=[QualityOut.of(q) for q in quality],
        )


class RunsPage(BaseModel):
    runs: list[RunOut]
    next_before: int | None
