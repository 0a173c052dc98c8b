"""Canonical Arrow tables to the named numpy columns that detectors compare.

Prediction drift shares the feature namespace under ``prediction.*`` names; which columns each
task gives is defined in :mod:`detectors.prediction` (class mix, confidence and entropy for
classification; boxes per image, class mix, area, aspect ratio and score of boxes for
detection; area fraction per class for segmentation; the value for regression).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from detectors.prediction import (
    PredictionColumns,
    classification_columns,
    detection_columns,
    regression_columns,
    segmentation_columns,
)
from monitor.spec.model import ModelSpec


@dataclass(frozen=True)
class Columns:
    """Columns grouped by the kind of test they get; all arrays have the same row count."""

    numeric: dict[str, np.ndarray]
    categorical: dict[str, np.ndarray]
    vector: dict[str, np.ndarray]
    n_rows: int


def _floats(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(
        pc.fill_null(pc.cast(col, pa.float64()), np.nan).to_numpy(zero_copy_only=False)
    )


def _matrix(col: pa.ChunkedArray, dim: int) -> np.ndarray:
    """(rows, dim) float array; null rows become NaN."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    out = np.full((len(arr), dim), np.nan, dtype=np.float64)
    valid = ~np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    values = np.asarray(arr.values.to_numpy(zero_copy_only=False), dtype=np.float64).reshape(
        -1, dim
    )
    out[valid] = values[arr.offset : arr.offset + len(arr)][valid]
    return out


def table_columns(table: pa.Table, spec: ModelSpec) -> Columns:
    numeric: dict[str, np.ndarray] = {}
    categorical: dict[str, np.ndarray] = {}
    vector: dict[str, np.ndarray] = {}
    for f in spec.features:
        col = table.column(f"f.{f.name}")
        if f.kind == "numeric":
            numeric[f.name] = _floats(col)
        elif f.kind == "categorical":
            categorical[f.name] = np.asarray(col.to_pylist(), dtype=object)
        else:
            assert f.dim is not None
            vector[f.name] = _matrix(col, f.dim)
    predicted = _prediction_columns(table, spec)
    numeric.update({f"prediction.{k}": v for k, v in predicted.numeric.items()})
    categorical.update({f"prediction.{k}": v for k, v in predicted.categorical.items()})
    # per-box prediction columns are longer than the table: pad every column with missing values
    length = max([table.num_rows, *(len(v) for v in (*numeric.values(), *categorical.values()))])
    numeric = {k: _pad(v, length, np.nan) for k, v in numeric.items()}
    categorical = {k: _pad(v, length, None) for k, v in categorical.items()}
    return Columns(numeric=numeric, categorical=categorical, vector=vector, n_rows=table.num_rows)


def _pad(values: np.ndarray, length: int, fill: object) -> np.ndarray:
    if len(values) == length:
        return values
    out = np.full(length, fill, dtype=values.dtype)
    out[: len(values)] = values
    return out


def _prediction_columns(table: pa.Table, spec: ModelSpec) -> PredictionColumns:
    task, classes = spec.output.task, spec.output.classes
    if task == "classification":
        return classification_columns(
            table.column("p.label").to_pylist(), _matrix(table.column("p.proba"), len(classes))
        )
    if task == "regression":
        return regression_columns(_floats(table.column("p.value")))
    if task == "detection":
        return detection_columns(table.column("p.boxes").to_pylist())
    return segmentation_columns(_matrix(table.column("p.areas"), len(classes)), classes)
