"""Canonical Arrow tables to the named numpy columns that detectors compare.

Prediction drift shares the feature namespace under ``prediction.*`` names: the predicted
label (categorical) and the confidence, i.e. the top class probability (numeric), for
classification; the value for regression; boxes per image and their mean score for detection;
the area fraction of each class for segmentation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from monitor.schema import ModelSpec


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
    task, classes = spec.output.task, spec.output.classes
    if task == "classification":
        categorical["prediction.label"] = np.asarray(
            table.column("p.label").to_pylist(), dtype=object
        )
        proba = _matrix(table.column("p.proba"), len(classes))
        numeric["prediction.confidence"] = proba.max(axis=1)
    elif task == "regression":
        numeric["prediction.value"] = _floats(table.column("p.value"))
    elif task == "detection":
        boxes = table.column("p.boxes")
        numeric["prediction.boxes"] = _floats(pc.list_value_length(boxes))
        numeric["prediction.box_score"] = np.array(
            [np.mean([b["score"] for b in row]) if row else np.nan for row in boxes.to_pylist()]
        )
    else:
        areas = _matrix(table.column("p.areas"), len(classes))
        for j, c in enumerate(classes):
            numeric[f"prediction.area.{c}"] = areas[:, j]
    return Columns(numeric=numeric, categorical=categorical, vector=vector, n_rows=table.num_rows)
