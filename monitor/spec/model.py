"""What a model declares: its input features, its output task and its monitors.

Validated when the model is created, so a bad monitor configuration is refused then and not
discovered when a job runs at night.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from alerts.rules import AlertRule
from detectors import CORRECTIONS
from detectors import registry as detector_registry
from monitor.spec.detector_defaults import (
    COLUMN_KINDS,
    DEFAULT_DETECTORS,
    NOT_TESTED,
    merged,
    tested_kinds,
)
from monitor.spec.joint_spec import JointSpec
from monitor.spec.stored import STORED, _stored

__all__ = ["STORED", "JointSpec"]  # re-exported: callers import them from here

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
FeatureKind = Literal["numeric", "categorical", "vector"]
Task = Literal["classification", "regression", "detection", "segmentation"]


class FeatureSpec(BaseModel):
    """One input feature. ``vector`` is an embedding of fixed ``dim``."""

    model_config = ConfigDict(extra="forbid")
    name: Name
    kind: FeatureKind
    dim: int | None = Field(default=None, ge=1, le=65536)
    # Missing values (JSON null, an absent key) are data-quality facts, so they are allowed by
    # default; NaN and infinity are almost always bugs upstream, so they are refused by default.
    allow_missing: bool = True
    allow_nonfinite: bool = False

    @model_validator(mode="after")
    def _dim_only_for_vectors(self) -> Self:
        if self.kind == "vector" and self.dim is None:
            raise ValueError(f"feature {self.name!r}: a vector feature needs 'dim'")
        if self.kind != "vector" and self.dim is not None:
            raise ValueError(f"feature {self.name!r}: 'dim' applies to vector features only")
        return self


class OutputSpec(BaseModel):
    """The model's output task; ``classes`` for classification, detection and segmentation.

    ``threshold`` (binary classification only): the model predicts ``classes[1]`` when that
    class's probability is at least this cut. Label-free estimates of accuracy and F1 use it;
    left out, it is read from the predicted labels and probabilities of labelled records.
    """

    model_config = ConfigDict(extra="forbid")
    task: Task
    classes: list[str] = Field(default_factory=list)
    threshold: float | None = Field(default=None, gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _classes_when_needed(self) -> Self:
        if self.task != "regression" and len(self.classes) < 1:
            raise ValueError(f"task {self.task!r} needs a non-empty 'classes' list")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError("'classes' has duplicates")
        if self.threshold is not None and not (
            self.task == "classification" and len(self.classes) == 2
        ):
            raise ValueError(
                "'threshold' is the cut of a binary classifier: it needs task "
                "'classification' with exactly 2 classes"
            )
        return self


class WindowSpec(BaseModel):
    """Which records a run compares with the reference.

    ``sliding`` (the default): at each run, the last ``size`` records (``by: count``) or the
    records of the last ``seconds`` (``by: time``). ``tumbling``: consecutive windows that never
    overlap and are each computed exactly once: ``seconds``-long spans of prediction time
    aligned on the Unix epoch (``by: time``), or runs of ``size`` records in arrival order
    (``by: count``). A time window is computed ``delay_seconds`` after it closes, which leaves
    late telemetry and delayed labels time to arrive.
    """

    model_config = ConfigDict(extra="forbid")
    type: Literal["sliding", "tumbling"] = "sliding"
    by: Literal["count", "time"] = "count"
    size: int | None = Field(default=1000, ge=1, le=10_000_000)
    seconds: float | None = Field(default=None, gt=0)
    delay_seconds: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _one_bound(self) -> Self:
        if self.by == "time" and self.seconds is None:
            raise ValueError("a time window needs 'seconds'")
        if self.by == "count" and self.size is None:
            raise ValueError("a count window needs 'size'")
        if self.delay_seconds and not (self.type == "tumbling" and self.by == "time"):
            raise ValueError("'delay_seconds' applies to tumbling time windows only")
        return self


class ScheduleSpec(BaseModel):
    """When the scheduler runs a monitor: ``every`` N seconds, or a 5-field ``cron`` in UTC."""

    model_config = ConfigDict(extra="forbid")
    every: float | None = Field(default=None, ge=1)
    cron: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.every is None) == (self.cron is None):
            raise ValueError("a schedule needs exactly one of 'every' (seconds) or 'cron'")
        if self.cron is not None:
            from apscheduler.triggers.cron import CronTrigger

            try:
                CronTrigger.from_crontab(self.cron, timezone="UTC")
            except ValueError as exc:
                raise ValueError(f"invalid cron expression {self.cron!r}: {exc}") from None
        return self


class StreamingChoice(BaseModel):
    """A streaming concept-drift detector fed each labelled prediction's error, in order.

    ``name`` defaults to ``glr`` (calibrated to a false-alarm rate per 10,000 errors), so
    ``streaming: {}`` is enough; configurations naming another detector keep it.
    """

    model_config = ConfigDict(extra="forbid")
    name: str = "glr"
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _buildable(self, info: ValidationInfo) -> Self:
        if _stored(info):
            return self
        from detectors.streaming import STREAMING_DETECTORS, make_streaming

        if self.name not in STREAMING_DETECTORS:
            raise ValueError(
                f"unknown streaming detector {self.name!r}; choose one of "
                f"{sorted(STREAMING_DETECTORS)}"
            )
        try:
            make_streaming(self.name, **self.params)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"streaming detector {self.name!r}: {exc}") from None
        return self


# Realized metrics a performance monitor can compute, by task; True when higher is better.
PERFORMANCE_METRICS: dict[str, dict[str, bool]] = {
    "classification": {
        "accuracy": True,
        "balanced_accuracy": True,
        "f1_macro": True,
        "precision_macro": True,
        "recall_macro": True,
        "roc_auc": True,
        "log_loss": False,
        "expected_calibration_error": False,
    },
    "regression": {"mae": False, "rmse": False, "mape": False, "r2": True},
}


class PerformanceSpec(BaseModel):
    """Realized performance of the window's predictions whose labels have arrived (by id).

    ``thresholds`` name the worst acceptable value per metric (a minimum for accuracy-like
    metrics, a maximum for errors); a breach makes the run's status ``drift``.
    """

    model_config = ConfigDict(extra="forbid")
    metrics: list[str] | None = None  # default: every metric of the task
    thresholds: dict[str, float] = Field(default_factory=dict)
    min_labels: int = Field(default=30, ge=1)
    streaming: StreamingChoice | None = None
    # classification: also estimate accuracy, F1 and ROC AUC of the whole window without its
    # labels (CBPE), calibrated on up to `calibration_rows` labelled records before the window
    estimate: bool = False
    calibration_rows: int = Field(default=5000, ge=100, le=1_000_000)


class DetectorChoice(BaseModel):
    """A detector by its registry name, with constructor parameters (validated on creation)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _current_name(cls, name: str) -> str:
        return detector_registry.canonical(name)  # "ks-pca" in stored configurations


def _default_detectors() -> dict[str, str | DetectorChoice]:
    return dict(DEFAULT_DETECTORS)


class MonitorConfig(BaseModel):
    """A drift monitor: which detector runs on which kind of column, over which window."""

    model_config = ConfigDict(extra="forbid")
    name: Name = "drift"
    window: WindowSpec = Field(default_factory=WindowSpec)
    min_samples: int = Field(default=100, ge=1)
    alpha: float = Field(default=0.05, gt=0.0, lt=1.0)
    correction: str = "bh"
    # detector per column kind: a registry name, or {"name": ..., "params": {...}}, or "none";
    # a mapping overrides the defaults only for the kinds it names ({} tests nothing)
    detectors: dict[str, str | DetectorChoice] = Field(default_factory=_default_detectors)
    # restrict to these features (default: all declared features and the prediction)
    features: list[str] | None = None
    # data-quality checks of the declared input features in every run
    quality: bool = True
    # the run's status is "drift" when at least this share of the tested features drifted
    # (0: any drifted feature), "warning" when some drifted below it or data quality failed
    drift_share: float = Field(default=0.0, ge=0.0, le=1.0)
    # the joint test over the numeric features together; null: per-feature tests only
    joint: JointSpec | None = Field(default_factory=JointSpec)
    schedule: ScheduleSpec = Field(default_factory=lambda: ScheduleSpec(every=300))
    performance: PerformanceSpec | None = None

    @field_validator("detectors", mode="before")
    @classmethod
    def _over_the_defaults(cls, detectors: Any) -> Any:
        # {"numeric": "psi"} changes the numeric test only: replacing every default silently
        # left the other kinds untested. {} still means no drift test (performance only).
        return merged(detectors) if isinstance(detectors, dict) else detectors

    @field_validator("detectors")
    @classmethod
    def _current_names(cls, detectors: dict[str, Any]) -> dict[str, Any]:
        return {
            kind: detector_registry.canonical(v) if isinstance(v, str) and v != NOT_TESTED else v
            for kind, v in detectors.items()
        }

    @model_validator(mode="after")
    def _known_detectors(self, info: ValidationInfo) -> Self:
        if self.correction not in CORRECTIONS:
            raise ValueError(f"unknown correction {self.correction!r}; choose one of {CORRECTIONS}")
        for kind in self.detectors:
            if kind not in COLUMN_KINDS:
                raise ValueError(f"unknown column kind {kind!r}; choose from {COLUMN_KINDS}")
            if kind not in self.tested_kinds():
                continue
            choice = self.detector(kind)
            params = None if _stored(info) else choice.params
            detector_registry.check(choice.name, params, kind=kind)
        if self.performance and self.performance.streaming and self.window.type != "tumbling":
            raise ValueError(
                "a streaming detector sees every labelled prediction once, in order: "
                "it needs a tumbling window"
            )
        return self

    def detector(self, kind: str) -> DetectorChoice:
        """The detector chosen for a column kind, as name and parameters."""
        value = self.detectors[kind]
        return DetectorChoice(name=value) if isinstance(value, str) else value

    def tested_kinds(self) -> list[str]:
        """The column kinds this monitor runs a drift test on."""
        return tested_kinds(self.detectors)


class ModelSpec(BaseModel):
    """Body of ``POST /api/v1/models``: a model version, its schema and its monitors."""

    model_config = ConfigDict(extra="forbid")
    name: Name
    version: Name = "1"
    description: str = ""
    features: list[FeatureSpec] = Field(min_length=1)
    output: OutputSpec
    monitors: list[MonitorConfig] = Field(default_factory=lambda: [MonitorConfig()])
    # when to alert (see alerts/rules.py) and who gets the e-mails of this model
    alerts: list[AlertRule] = Field(default_factory=list)
    alert_recipients: list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]] = Field(
        default_factory=list
    )
    # Features a batch carries that are not declared: dropped, counted and named in the answer
    # (whylogs' and Evidently's users expect extra columns to be ignored), or the batch refused.
    undeclared_features: Literal["ignore", "refuse"] = "ignore"

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Self:
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            raise ValueError("feature names must be unique")
        monitor_names = [m.name for m in self.monitors]
        if len(set(monitor_names)) != len(monitor_names):
            raise ValueError("monitor names must be unique")
        known = set(names) | set(prediction_columns(self.output))
        for monitor in self.monitors:
            unknown = set(monitor.features or []) - known
            if unknown:
                raise ValueError(
                    f"monitor {monitor.name!r} names unknown features {sorted(unknown)}"
                )
            if monitor.performance is not None:
                _check_performance(
                    monitor.name, monitor.performance, self.output.task, _stored(info)
                )
        _check_alerts(self, known)
        return self

    def feature(self, name: str) -> FeatureSpec | None:
        return next((f for f in self.features if f.name == name), None)


def reference_minimum(spec: ModelSpec) -> tuple[int, str]:
    """The fewest reference rows every detector of the model's monitors can fit on, and which
    detector needs that many (a reference below it is refused at upload, not at 3 a.m.)."""
    kinds = {f.kind for f in spec.features}
    need, who = 1, "every detector"
    for monitor in spec.monitors:
        for kind in sorted(kinds & set(monitor.tested_kinds())):
            choice = monitor.detector(kind)
            detector = detector_registry.build(choice.name, choice.params, device="cpu")
            rows = int(detector.min_reference_rows())
            if rows > need:
                need, who = rows, f"monitor {monitor.name!r} ({choice.name} on {kind} features)"
    return need, who


def prediction_columns(output: OutputSpec) -> list[str]:
    """Names under which prediction drift is reported (they share the feature namespace)."""
    return {
        "classification": ["prediction.label", "prediction.confidence", "prediction.entropy"],
        "regression": ["prediction.value"],
        "detection": [
            "prediction.boxes",
            "prediction.box_class",
            "prediction.box_area",
            "prediction.box_aspect",
            "prediction.box_score",
        ],
        "segmentation": [f"prediction.area.{c}" for c in output.classes],
    }[output.task]


def performance_metrics(spec: PerformanceSpec, task: str) -> list[str]:
    """The metrics a performance monitor computes for a task, in a stable order."""
    return spec.metrics if spec.metrics is not None else list(PERFORMANCE_METRICS[task])


def _check_performance(monitor: str, spec: PerformanceSpec, task: str, stored: bool) -> None:
    known = PERFORMANCE_METRICS.get(task)
    if known is None:
        raise ValueError(
            f"monitor {monitor!r}: realized performance is computed for classification and "
            f"regression models, not {task!r}"
        )
    wanted = performance_metrics(spec, task)
    unknown = (set(wanted) | set(spec.thresholds)) - set(known)
    if unknown:
        raise ValueError(
            f"monitor {monitor!r}: unknown {task} metrics {sorted(unknown)}; "
            f"choose from {sorted(known)}"
        )
    missing = set(spec.thresholds) - set(wanted)
    if missing:
        raise ValueError(
            f"monitor {monitor!r}: thresholds on metrics not computed {sorted(missing)}"
        )
    if spec.estimate and task != "classification":
        raise ValueError(
            f"monitor {monitor!r}: 'estimate' (CBPE) applies to classification models only"
        )
    if spec.streaming is not None and not stored:
        from detectors.streaming import STREAMING_DETECTORS

        values = STREAMING_DETECTORS[spec.streaming.name].spec.values
        if task == "regression" and values in ("binary", "unit"):
            raise ValueError(
                f"monitor {monitor!r}: {spec.streaming.name!r} takes 0/1 or [0, 1] values; a "
                "regression model's absolute errors need glr, adwin, page_hinkley, cusum or kswin"
            )


def _check_alerts(spec: ModelSpec, columns: set[str]) -> None:
    """Rules must name monitors, features and metrics that exist."""
    names = [r.name for r in spec.alerts]
    if len(set(names)) != len(names):
        raise ValueError("alert rule names must be unique")
    monitors = {m.name: m for m in spec.monitors}
    for rule in spec.alerts:
        if rule.monitor is not None and rule.monitor not in monitors:
            raise ValueError(f"alert rule {rule.name!r} names unknown monitor {rule.monitor!r}")
        if rule.kind == "no_telemetry":
            continue
        if not monitors:
            raise ValueError(f"alert rule {rule.name!r} needs a monitor")
        monitor = monitors[rule.monitor] if rule.monitor else spec.monitors[0]
        unknown = set(rule.features or []) - columns
        if unknown:
            raise ValueError(f"alert rule {rule.name!r} names unknown features {sorted(unknown)}")
        if rule.kind == "performance":
            if monitor.performance is None:
                raise ValueError(
                    f"alert rule {rule.name!r}: monitor {monitor.name!r} computes no performance"
                )
            if rule.estimated:
                if not monitor.performance.estimate or rule.metric not in CBPE_ESTIMATES:
                    raise ValueError(
                        f"alert rule {rule.name!r}: estimates exist for {list(CBPE_ESTIMATES)} "
                        f"with 'estimate': true in monitor {monitor.name!r}"
                    )
            elif rule.metric not in performance_metrics(monitor.performance, spec.output.task):
                raise ValueError(
                    f"alert rule {rule.name!r}: monitor {monitor.name!r} does not compute "
                    f"{rule.metric!r}"
                )


CBPE_ESTIMATES = ("accuracy", "f1", "roc_auc")
