"""JSON records (the telemetry wire format) to the canonical Arrow table."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from collectors.wire import Prediction, Record
from monitor.data import checks
from monitor.data.errors import SchemaError
from monitor.data.layout import BOX_TYPE, TS_TYPE, arrow_schema
from monitor.spec.model import FeatureSpec, ModelSpec

_NUMBER_TYPES = {float, int, type(None)}
_CATEGORY_TYPES = {str, int, type(None)}


def _utc(ts: datetime | None, now: datetime, where: str) -> datetime:
    return now if ts is None else checks.check_timestamp(ts, where)


def _numeric(values: list[Any], feature: FeatureSpec, where: checks.Locate) -> pa.Array:
    if not set(map(type, values)) <= _NUMBER_TYPES:
        i = next(i for i, v in enumerate(values) if type(v) not in _NUMBER_TYPES)
        raise SchemaError(where(i), f"expected a number, got {type(values[i]).__name__}")
    missing = np.fromiter((v is None for v in values), dtype=bool, count=len(values))
    try:
        array = np.array(values, dtype=np.float64)
    except OverflowError:  # an integer of hundreds of digits has no float value
        raise SchemaError(
            where(next(i for i, v in enumerate(values) if not _fits(v))), "number out of range"
        ) from None
    return checks.check_numeric(array, missing, feature, where)


def _fits(value: Any) -> bool:
    try:
        float(value)
    except OverflowError:
        return False
    return True


def _categorical(values: list[Any], feature: FeatureSpec, where: checks.Locate) -> pa.Array:
    if not set(map(type, values)) <= _CATEGORY_TYPES:
        i = next(i for i, v in enumerate(values) if type(v) not in _CATEGORY_TYPES)
        raise SchemaError(where(i), f"expected a string or integer, got {type(values[i]).__name__}")
    return checks.check_categorical(
        [v if v is None or isinstance(v, str) else str(v) for v in values], feature, where
    )


def _vector(values: list[Any], feature: FeatureSpec, where: checks.Locate) -> pa.Array:
    assert feature.dim is not None
    missing = np.fromiter((v is None for v in values), dtype=bool, count=len(values))
    matrix = np.full((len(values), feature.dim), np.nan, dtype=np.float32)
    for i, v in enumerate(values):
        if v is None:
            continue
        if not isinstance(v, list) or len(v) != feature.dim:
            raise SchemaError(where(i), f"expected a list of {feature.dim} numbers")
        try:
            matrix[i] = v
        except (TypeError, ValueError, OverflowError):
            raise SchemaError(where(i), "vector values must be numbers within range") from None
    return checks.check_vector(matrix, missing, feature, where)


def _classification(
    preds: list[Prediction | None], classes: list[str], where: checks.Locate
) -> dict[str, pa.Array]:
    n, k = len(preds), len(classes)
    proba = np.zeros((n, k), dtype=np.float32)
    missing = np.ones(n, dtype=bool)
    labels: list[str | None] = []
    index = {c: j for j, c in enumerate(classes)}
    for i, p in enumerate(preds):
        label = None
        if p is not None:
            if isinstance(p.probabilities, list):
                if len(p.probabilities) != k:
                    raise SchemaError(where(i) + ".probabilities", f"expected {k} probabilities")
                proba[i] = p.probabilities
                missing[i] = False
            elif isinstance(p.probabilities, dict):
                unknown = p.probabilities.keys() - index.keys()
                if unknown:
                    raise SchemaError(
                        where(i) + ".probabilities", f"unknown classes {sorted(unknown)}"
                    )
                for c, v in p.probabilities.items():
                    proba[i, index[c]] = v
                missing[i] = False
            label = p.label
            if label is None and not missing[i]:
                label = classes[int(np.argmax(proba[i]))]
        labels.append(label)
    checks.check_labels(labels, classes, lambda i: where(i) + ".label")
    checks.check_probabilities(proba, missing, lambda i: where(i) + ".probabilities")
    flat = pa.array(proba.reshape(-1), type=pa.float32())
    return {
        "p.label": pa.array(labels, type=pa.string()),
        "p.proba": pa.FixedSizeListArray.from_arrays(
            flat, k, mask=pa.array(missing) if missing.any() else None
        ),
    }


def _regression(preds: list[Prediction | None], where: checks.Locate) -> dict[str, pa.Array]:
    values: list[float | None] = []
    for p in preds:
        values.append(None if p is None else p.value)
    missing = np.fromiter((v is None for v in values), dtype=bool, count=len(values))
    arr = np.array(values, dtype=np.float64)
    bad = ~np.isfinite(arr) & ~missing
    if bad.any():
        raise SchemaError(where(int(np.flatnonzero(bad)[0])) + ".value", "value must be finite")
    return {"p.value": pa.array(arr, type=pa.float64(), mask=missing if missing.any() else None)}


def _detection(
    preds: list[Prediction | None], classes: list[str], where: checks.Locate
) -> dict[str, pa.Array]:
    known = set(classes)
    rows: list[list[dict[str, Any]] | None] = []
    for i, p in enumerate(preds):
        if p is None or p.boxes is None:
            rows.append(None)
            continue
        boxes = []
        for j, b in enumerate(p.boxes):
            coords = (b.x1, b.y1, b.x2, b.y2)
            if b.label not in known:
                raise SchemaError(f"{where(i)}.boxes[{j}].label", f"unknown class {b.label!r}")
            if not np.isfinite(coords).all():
                raise SchemaError(f"{where(i)}.boxes[{j}]", "coordinates must be finite")
            boxes.append(b.model_dump())
        rows.append(boxes)
    return {"p.boxes": pa.array(rows, type=pa.list_(BOX_TYPE))}


def _segmentation(
    preds: list[Prediction | None], classes: list[str], where: checks.Locate
) -> dict[str, pa.Array]:
    n, k = len(preds), len(classes)
    index = {c: j for j, c in enumerate(classes)}
    areas = np.zeros((n, k), dtype=np.float32)
    missing = np.ones(n, dtype=bool)
    for i, p in enumerate(preds):
        if p is None or p.areas is None:
            continue
        unknown = p.areas.keys() - index.keys()
        if unknown:
            raise SchemaError(where(i) + ".areas", f"unknown classes {sorted(unknown)}")
        for c, v in p.areas.items():
            if not 0.0 <= v <= 1.0:
                raise SchemaError(f"{where(i)}.areas.{c}", "an area fraction lies within [0, 1]")
            areas[i, index[c]] = v
        missing[i] = False
    flat = pa.array(areas.reshape(-1), type=pa.float32())
    mask = pa.array(missing) if missing.any() else None
    return {"p.areas": pa.FixedSizeListArray.from_arrays(flat, k, mask=mask)}


_TASK_FIELDS = {
    "classification": {"label", "probabilities"},
    "regression": {"value"},
    "detection": {"boxes"},
    "segmentation": {"areas"},
}


def _check_task_fields(preds: list[Prediction | None], task: str, where: checks.Locate) -> None:
    allowed = _TASK_FIELDS[task]
    for i, p in enumerate(preds):
        if p is None:
            continue
        extra = sorted(k for k in p.model_fields_set - allowed if getattr(p, k) is not None)
        if extra:
            raise SchemaError(
                f"{where(i)}.{extra[0]}",
                f"does not apply to a {task} model, whose prediction takes {sorted(allowed)}",
            )


def records_to_table(
    records: Sequence[Record],
    spec: ModelSpec,
    *,
    now: datetime | None = None,
    path: str = "records",
) -> pa.Table:
    """Validate records against ``spec`` and build one Arrow table; raises :class:`SchemaError`.

    Only declared features are read: undeclared ones are the caller's to count or refuse
    (:mod:`monitor.data.undeclared`); a declared feature a record lacks is a missing value.
    """
    now = now or datetime.now(UTC)
    ids = [r.id for r in records]
    checks.check_ids(ids, lambda i: f"{path}[{i}].id")
    columns: dict[str, pa.Array] = {
        "id": pa.array(ids, type=pa.string()),
        "ts": pa.array(
            [_utc(r.timestamp, now, f"{path}[{i}].timestamp") for i, r in enumerate(records)],
            type=TS_TYPE,
        ),
    }
    for feature in spec.features:
        name = feature.name
        values = [r.features.get(name) for r in records]

        def where(i: int, name: str = name) -> str:
            return f"{path}[{i}].features.{name}"

        if feature.kind == "numeric":
            columns[f"f.{name}"] = _numeric(values, feature, where)
        elif feature.kind == "categorical":
            columns[f"f.{name}"] = _categorical(values, feature, where)
        else:
            columns[f"f.{name}"] = _vector(values, feature, where)
    preds = [r.prediction for r in records]

    def pwhere(i: int) -> str:
        return f"{path}[{i}].prediction"

    task, classes = spec.output.task, spec.output.classes
    _check_task_fields(preds, task, pwhere)
    if task == "classification":
        columns.update(_classification(preds, classes, pwhere))
    elif task == "regression":
        columns.update(_regression(preds, pwhere))
    elif task == "detection":
        columns.update(_detection(preds, classes, pwhere))
    else:
        columns.update(_segmentation(preds, classes, pwhere))
    return pa.table(columns, schema=arrow_schema(spec))
