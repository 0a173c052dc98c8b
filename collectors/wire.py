"""The telemetry wire format, shared by the collectors SDK and the Tidewatch server.

Light on purpose (pydantic 2 only, imported only by who uses this module): it runs inside
deployed model servers, on Python 3.9+, so annotations use ``Optional``/``Union``, which
pydantic evaluates at run time. Feature values are
checked against the model's declared schema on the server, column by column, so here they are
left as plain JSON values.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Optional, Union

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
    label: Optional[str] = None
    probabilities: Optional[Union[list[float], dict[str, float]]] = None
    value: Optional[float] = None
    boxes: Optional[list[Box]] = None
    areas: Optional[dict[str, float]] = None


class Record(BaseModel):
    """One sampled prediction: its id, when it happened, its inputs and its output."""

    model_config = ConfigDict(extra="forbid")
    id: RecordId
    timestamp: Optional[datetime] = None
    features: dict[str, Any] = Field(default_factory=dict)
    prediction: Optional[Prediction] = None


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
    label: Optional[str] = None
    value: Optional[float] = None
    boxes: Optional[list[Box]] = None
    timestamp: Optional[datetime] = None


class LabelBatch(BaseModel):
    """Body of ``POST /api/v1/models/{name}/labels``."""

    model_config = ConfigDict(extra="forbid")
    labels: list[Label] = Field(min_length=1)
