"""Response bodies of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from monitor.api.deps import MAX_ID
from monitor.api.effect_schemas import Effect, effect_of
from monitor.data.checks import check_timestamp
from monitor.data.errors import SchemaError
from monitor.db.tables import DetectionResult, DetectionRun, PerformanceResult, QualityResult
from monitor.spec.model import ModelSpec


class ReadyOut(BaseModel):
    """``/readyz``: 200 when the database answers, 503 otherwise."""

    status: Literal["ready", "unavailable"]


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
    ignored_features: dict[str, int] = Field(
        default_factory=dict,
        description="features the model does not declare, left out: name -> records with it",
    )


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
    effect: Effect | None = Field(
        default=None, description="how much the feature moved, in its own units (None for '*')"
    )

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
            effect=effect_of(row.effect),
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


class PerformanceOut(BaseModel):
    metric: str
    value: float | None
    threshold: float | None
    problem: bool
    n_labels: int

    @classmethod
    def of(cls, row: PerformanceResult) -> PerformanceOut:
        return cls(
            metric=row.metric,
            value=row.value,
            threshold=row.threshold,
            problem=row.problem,
            n_labels=row.n_labels,
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
    trigger: str
    window_key: str | None
    # records of this window that arrived after the run was computed (a backfill includes them)
    late_records: int = 0
    results: list[ResultOut]
    quality: list[QualityOut]
    performance: list[PerformanceOut]

    @classmethod
    def of(
        cls,
        run: DetectionRun,
        model: str,
        version: str,
        results: list[DetectionResult],
        quality: list[QualityResult],
        performance: list[PerformanceResult] | None = None,
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
            trigger=run.trigger,
            window_key=run.window_key,
            late_records=run.late_records or 0,
            results=[ResultOut.of(r) for r in results],
            quality=[QualityOut.of(q) for q in quality],
            performance=[PerformanceOut.of(p) for p in performance or []],
        )


class RunsPage(BaseModel):
    runs: list[RunOut]
    next_before: int | None


class MonitorStatusOut(BaseModel):
    monitor: str
    status: str  # ok | warning | drift | no_data
    since: datetime | None
    last_run_id: int | None
    last_run_at: datetime | None
    # records that arrived after their window was computed, the windows they fell in, and the
    # span of those windows: `tidewatch backfill --from late_from --to late_to` recomputes them
    late_records: int = 0
    late_windows: int = 0
    late_from: datetime | None = None
    late_to: datetime | None = None
    untested: list[str] = Field(
        default_factory=list,
        description="input features of a kind this monitor's drift tests leave out",
    )


class ModelStatusOut(BaseModel):
    model: str
    version: str
    status: str  # the worst of its monitors: drift > warning > ok > no_data
    since: datetime | None
    last_run_at: datetime | None
    monitors: list[MonitorStatusOut]
    ignored_features: dict[str, int] = Field(
        default_factory=dict,
        description="undeclared features left out of the latest telemetry (the last 20 "
        "batches that left any out, within 24 hours): name -> records",
    )
    estimator: str | None = Field(
        default=None,
        description="the label-free performance estimator the model's estimates use (cbpe, "
        "iw-cbpe), as a backtest on its labelled history chose it; null before any estimate",
    )
    estimator_error: float | None = Field(
        default=None,
        description="mean absolute error of that estimator's accuracy over the backtest's past "
        "windows; null when the history was too short for a backtest",
    )
    estimator_windows: int = Field(default=0, description="past windows the backtest used")
    estimator_reason: str = Field(default="", description="why the backtest chose it")


class StatusOut(BaseModel):
    leader: str | None
    leader_heartbeat: datetime | None
    models: list[ModelStatusOut]


class PromoteIn(BaseModel):
    """A window of production data to become the reference: a run's window, or a span."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        # one of the two forms (the route refuses anything else); "run" wins when both come
        json_schema_extra={
            "anyOf": [
                {"required": ["run"], "properties": {"run": {"type": "integer"}}},
                {
                    "required": ["from", "to"],
                    "properties": {"from": {"type": "string"}, "to": {"type": "string"}},
                },
            ]
        },
    )
    # a database id: beyond it the driver would fail (a 500), not find nothing
    run: int | None = Field(default=None, ge=1, le=MAX_ID)
    start: datetime | None = Field(default=None, alias="from")
    end: datetime | None = Field(default=None, alias="to")

    @field_validator("start", "end")
    @classmethod
    def _utc(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        # a time without a zone means UTC, as everywhere in Tidewatch; telemetry lies between
        # 1970 and 2200, and 0001-01-01T00:00+01:00 has no UTC time at all
        if value is None:
            return None
        try:
            return check_timestamp(value, info.field_name or "")
        except SchemaError as exc:  # pydantic names the field ("from" or "to") itself
            raise ValueError(exc.message) from None
