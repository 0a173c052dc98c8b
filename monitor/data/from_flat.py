"""Flat tables (CSV, Parquet) to the canonical Arrow table.

A flat table has one column per feature, named as the feature. A vector feature is either one
list column named as the feature (Parquet) or ``<name>_0 ... <name>_<dim-1>`` (CSV or
Parquet). The prediction, when present: ``prediction`` (the label, or the value for
regression), ``proba_<class>`` for each class, ``area_<class>`` for segmentation. ``id`` and
``timestamp`` are optional; other columns are ignored.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from monitor.data import checks
from monitor.data.errors import SchemaError
from monitor.data.layout import TS_TYPE, arrow_schema
from monitor.spec.model import ModelSpec

# what a column of the wrong type raises when cast (a list where text is expected, ...)
_CAST_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError)


def _cast(table: pa.Table, column: str, to: pa.DataType, expected: str) -> pa.ChunkedArray:
    try:
        return pc.cast(table.column(column), to)
    except _CAST_ERRORS:
        raise SchemaError(f"column {column!r}", f"expected {expected}") from None


def _where(column: str) -> checks.Locate:
    return lambda i: f"column {column!r}, row {i}"


def _floats(table: pa.Table, column: str) -> tuple[np.ndarray, np.ndarray]:
    col = _cast(table, column, pa.float64(), "numbers")
    missing = col.is_null().to_numpy(zero_copy_only=False)
    return col.to_numpy(zero_copy_only=False).astype(np.float64), np.asarray(missing, dtype=bool)


def _vector(table: pa.Table, name: str, dim: int) -> tuple[np.ndarray, np.ndarray, str]:
    if name in table.column_names:
        col = table.column(name).combine_chunks()
        if not pa.types.is_list(col.type) and not pa.types.is_fixed_size_list(col.type):
            raise SchemaError(f"column {name!r}", "a vector column must hold lists")
        missing = np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
        wrong = (~missing) & (np.nan_to_num(lengths, nan=dim) != dim)
        if wrong.any():
            raise SchemaError(_where(name)(int(np.flatnonzero(wrong)[0])), f"expected {dim} values")
        matrix = np.full((len(col), dim), np.nan, dtype=np.float32)
        try:
            flat = pc.cast(pc.list_flatten(col), pa.float64())
        except _CAST_ERRORS:
            raise SchemaError(f"column {name!r}", "a vector column must hold numbers") from None
        values = flat.to_numpy(zero_copy_only=False).astype(np.float32)
        matrix[~missing] = values.reshape(-1, dim)
        return matrix, missing, name
    parts = [f"{name}_{j}" for j in range(dim)]
    absent = [p for p in parts if p not in table.column_names]
    if absent:
        raise SchemaError(
            f"column {name!r}", f"vector column missing (or columns {absent[0]!r}...)"
        )
    cols = [_floats(table, p) for p in parts]
    matrix = np.stack([c[0] for c in cols], axis=1).astype(np.float32)
    missing = np.logical_and.reduce([c[1] for c in cols])
    return matrix, missing, parts[0]


def _matrix(
    table: pa.Table, prefix: str, classes: list[str]
) -> tuple[np.ndarray, np.ndarray] | None:
    names = [f"{prefix}{c}" for c in classes]
    present = [n for n in names if n in table.column_names]
    if not present:
        return None
    if len(present) != len(names):
        missing_cols = sorted(set(names) - set(present))
        raise SchemaError(f"column {missing_cols[0]!r}", f"all {prefix}<class> columns are needed")
    cols = [_floats(table, n) for n in names]
    matrix = np.stack([c[0] for c in cols], axis=1)
    missing = np.logical_or.reduce([c[1] for c in cols])
    return np.nan_to_num(matrix).astype(np.float32), missing


def _absent(table: pa.Table, name: str, dim: int | None) -> bool:
    names = set(table.column_names)
    parts = {f"{name}_{j}" for j in range(dim or 0)}
    return name not in names and not parts & names


def flat_to_table(
    table: pa.Table,
    spec: ModelSpec,
    *,
    require_ids: bool = False,
    row_offset: int = 0,
    absent_as_missing: bool = False,
) -> pa.Table:
    """Validate a flat table against ``spec``; raises :class:`SchemaError` naming the column.

    ``require_ids`` (telemetry): every row needs an id, checked as in JSON records (length,
    characters, unique within the file); a reference may leave them out, and its rows are then
    named ``ref-<row>`` (``row_offset``: the first row's number, for files read in blocks).
    ``absent_as_missing`` (telemetry): a declared feature without a column is missing in every
    row, as in JSON records, where the feature allows it; a reference must hold every feature.
    """
    n = table.num_rows
    schema = arrow_schema(spec)
    if "id" in table.column_names:
        ids = _cast(table, "id", pa.string(), "text ids")
        if require_ids:
            checks.check_ids(ids.to_pylist(), _where("id"))
    elif require_ids:
        raise SchemaError("column 'id'", "a telemetry file needs an 'id' column")
    else:  # cheap: no Python object per row (references run to millions of rows)
        numbers = pc.cast(pa.array(np.arange(row_offset, row_offset + n)), pa.string())
        ids = pc.binary_join_element_wise(pa.scalar("ref"), numbers, "-")
    if "timestamp" in table.column_names:
        ts = _cast(table, "timestamp", TS_TYPE, "times (ISO 8601, with a zone or in UTC)")
        if pa.types.is_boolean(table.column("timestamp").type):
            raise SchemaError("column 'timestamp'", "expected times, not true/false")
        checks.check_timestamp_column(ts, _where("timestamp"))
    else:
        ts = pa.array(np.full(n, datetime.now(UTC)), type=TS_TYPE)
    columns: dict[str, pa.Array | pa.ChunkedArray] = {"id": ids, "ts": ts}
    for f in spec.features:
        if absent_as_missing and f.allow_missing and _absent(table, f.name, f.dim):
            columns[f"f.{f.name}"] = pa.nulls(n, schema.field(f"f.{f.name}").type)
            continue
        if f.kind == "vector":
            assert f.dim is not None
            matrix, missing, first = _vector(table, f.name, f.dim)
            columns[f"f.{f.name}"] = checks.check_vector(matrix, missing, f, _where(first))
            continue
        if f.name not in table.column_names:
            raise SchemaError(f"column {f.name!r}", "declared feature is missing from the file")
        if f.kind == "numeric":
            values, missing = _floats(table, f.name)
            columns[f"f.{f.name}"] = checks.check_numeric(values, missing, f, _where(f.name))
        else:
            raw = _cast(table, f.name, pa.string(), "text or numbers").to_pylist()
            columns[f"f.{f.name}"] = checks.check_categorical(raw, f, _where(f.name))
    task, classes = spec.output.task, spec.output.classes
    has_pred = "prediction" in table.column_names
    if task == "classification":
        proba = _matrix(table, "proba_", classes)
        if proba is not None:
            checks.check_probabilities(proba[0], proba[1], lambda i: f"proba_* columns, row {i}")
        labels = (
            _cast(table, "prediction", pa.string(), "class labels").to_pylist()
            if has_pred
            else [None] * n
        )
        if proba is not None:  # a missing label is the most probable class, as in JSON records
            top = proba[0].argmax(axis=1)
            labels = [
                classes[int(top[i])] if label is None and not proba[1][i] else label
                for i, label in enumerate(labels)
            ]
        checks.check_labels(labels, classes, _where("prediction"))
        columns["p.label"] = pa.array(labels, type=pa.string())
        matrix, missing = (
            proba
            if proba is not None
            else (np.zeros((n, len(classes)), np.float32), np.ones(n, bool))
        )
        columns["p.proba"] = pa.FixedSizeListArray.from_arrays(
            pa.array(matrix.reshape(-1), type=pa.float32()), len(classes), mask=pa.array(missing)
        )
    elif task == "regression":
        if has_pred:
            values, missing = _floats(table, "prediction")
            if (~np.isfinite(values) & ~missing).any():
                raise SchemaError("column 'prediction'", "values must be finite")
            columns["p.value"] = pa.array(values, mask=missing)
        else:
            columns["p.value"] = pa.nulls(n, pa.float64())
    elif task == "segmentation":
        areas = _matrix(table, "area_", classes)
        matrix, missing = (
            areas
            if areas is not None
            else (np.zeros((n, len(classes)), np.float32), np.ones(n, bool))
        )
        columns["p.areas"] = pa.FixedSizeListArray.from_arrays(
            pa.array(matrix.reshape(-1), type=pa.float32()), len(classes), mask=pa.array(missing)
        )
    else:
        columns["p.boxes"] = pa.nulls(n, schema.field("p.boxes").type)
    return pa.table(columns, schema=schema)
