"""Column checks shared by every way data arrives (JSON records, CSV, Parquet).

Each check takes a whole column and a function that names row ``i`` for the error message,
so a bad value is reported with the path the user sent it under.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa

from monitor.data.errors import SchemaError
from monitor.spec.model import FeatureSpec

Locate = Callable[[int], str]


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def check_numeric(
    values: np.ndarray, missing: np.ndarray, feature: FeatureSpec, where: Locate
) -> pa.Array:
    """float64 column with nulls where values are missing; refuses NaN/inf unless allowed."""
    if not feature.allow_missing and missing.any():
        raise SchemaError(where(_first(missing)), "value is missing and the feature forbids it")
    if not feature.allow_nonfinite:
        bad = ~np.isfinite(values) & ~missing
        if bad.any():
            i = _first(bad)
            raise SchemaError(
                where(i), f"{values[i]} is not allowed (NaN and infinity are refused)"
            )
    return pa.array(values, type=pa.float64(), mask=missing if missing.any() else None)


def check_vector(
    values: np.ndarray, missing: np.ndarray, feature: FeatureSpec, where: Locate
) -> pa.Array:
    """fixed-size list column from a (rows, dim) float32 array."""
    assert feature.dim is not None
    if values.ndim != 2 or values.shape[1] != feature.dim:
        raise SchemaError(where(0), f"vector must have {feature.dim} values")
    if not feature.allow_missing and missing.any():
        raise SchemaError(where(_first(missing)), "value is missing and the feature forbids it")
    if not feature.allow_nonfinite:
        bad = ~np.isfinite(values).all(axis=1) & ~missing
        if bad.any():
            raise SchemaError(where(_first(bad)), "vector holds NaN or infinity")
    flat = pa.array(values.reshape(-1), type=pa.float32())
    mask = pa.array(missing) if missing.any() else None
    return pa.FixedSizeListArray.from_arrays(flat, feature.dim, mask=mask)


def check_categorical(values: list[str | None], feature: FeatureSpec, where: Locate) -> pa.Array:
    if not feature.allow_missing:
        for i, v in enumerate(values):
            if v is None:
                raise SchemaError(where(i), "value is missing and the feature forbids it")
    return pa.array(values, type=pa.string())


def check_probabilities(proba: np.ndarray, missing: np.ndarray, where: Locate) -> None:
    """Class probabilities: finite, within [0, 1], summing to 1 (within 1%)."""
    present = ~missing
    if not present.any():
        return
    rows = proba[present]
    bad_value = ~(np.isfinite(rows) & (rows >= 0.0) & (rows <= 1.0)).all(axis=1)
    if bad_value.any():
        i = int(np.flatnonzero(present)[_first(bad_value)])
        raise SchemaError(where(i), "probabilities must be finite numbers within [0, 1]")
    bad_sum = np.abs(rows.sum(axis=1) - 1.0) > 0.01
    if bad_sum.any():
        i = int(np.flatnonzero(present)[_first(bad_sum)])
        raise SchemaError(where(i), f"probabilities sum to {proba[i].sum():.4f}, not 1")


def check_labels(labels: list[str | None], classes: list[str], where: Locate) -> None:
    known = set(classes)
    for i, label in enumerate(labels):
        if label is not None and label not in known:
            raise SchemaError(where(i), f"unknown class {label!r}; the model declares {classes}")
