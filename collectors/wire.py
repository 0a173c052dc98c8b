"""The telemetry wire format, shared by the collectors SDK and the Tidewatch server.

Light on purpose (pydantic only): it runs inside deployed model servers. Feature values are
checked against the model's declared schema on the server, column by column, so here they are
left as plain JSON values.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

RecordId = Annotated[str, Field(min_length=1, max_length=200)]


class Box(BaseModel):
    """One detected object: class, score and corner coordinates (any consistent unit)."""

    model_config = ConfigDict(extra="forbid")
    label: str
    score: float = Field(ge=0.0, le=1.0)
    x1: float
    y1: float
    x2: float
    y2: float


class Prediction(BaseModel):
    """What the model answered. Which fields apply depends on the model's task.

    - classification: ``label`` and optional ``probabilities`` (a list in class order, or a
      mapping class -> probability);
    - regression: ``value``;
    - detection: ``boxes``;
    - segmentation: ``areas`` (area fraction per class).
    """

    model_config = ConfigDict(extra="forbid")
    label: str | None = None
    probabilities: list[float] | dict[str, float] | None = None
    value: float | None = None
    boxes: list[Box] | None = None
    areas: dict[str, float] | None = None


class Record(BaseModel):
    """One sampled prediction: its id, when it happened, its inputs and its output."""

    model_config = ConfigDict(extra="forbid")
    id: RecordId
    timestamp: datetime | None = None
    features: dict[str, Any] = Field(default_factory=dict)
    prediction: Prediction | None = None


class TelemetryBatch(BaseModel):
    """Body of ``POST /api/v1/models/{name}/telemetry``."""

    model_config = ConfigDict(extra="forbid")
    records: list[Record] = Field(min_length=1)
    # Share of predictions the collector kept (1.0 = all); the server may scale counts with it.
    sampling_rate: float = Field(default=1.0, gt=0.0, le=1.0)


class Label(BaseModel):
    """A delayed true label (or value, for regression) for an earlier record."""

    model_config = ConfigDict(extra="forbid")
    id: RecordId
    label: str | None = None
    value: float | None = None
    boxes: list[Box] | None = None
    timestamp: datetime | None = None


class LabelBatch(BaseModel):
    """Body of ``POST /api/v1/models/{name}/labels``."""

    model_config = ConfigDict(extra="forbid")
    labels: list[Label] = Field(min_length=1)
