"""Column checks shared by every way data arrives (JSON records, CSV, Parquet).

Each check takes a whole column and a function that names row ``i`` for the error message,
so a bad value is reported with the path the user sent it under.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from monitor.data.errors import SchemaError
from monitor.spec.model import FeatureSpec

Locate = Callable[[int], str]

# the same rules as the wire schema's RecordId, for every format: ids are stored as text
# (PostgreSQL refuses NUL) and shown in reports and logs (no control characters)
MAX_ID_LENGTH = 200
_BAD_ID = re.compile(r"[\x00-\x1f\x7f]")
# prediction times outside these are mistakes (or attacks on date arithmetic), not telemetry
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def check_ids(ids: Sequence[str | None], where: Locate) -> None:
    """Record ids: present, at most 200 characters, no control characters, unique here."""
    seen: set[str] = set()
    for i, rid in enumerate(ids):
        if rid is None or rid == "":
            raise SchemaError(where(i), "a record needs a non-empty id")
        if len(rid) > MAX_ID_LENGTH:
            raise SchemaError(where(i), f"an id has at most {MAX_ID_LENGTH} characters")
        if _BAD_ID.search(rid):
            raise SchemaError(where(i), "an id cannot hold control characters")
        if rid in seen:
            raise SchemaError(where(i), f"id {rid!r} appears twice in this batch")
        seen.add(rid)


def check_timestamp(moment: datetime, where: str) -> datetime:
    """``moment`` in UTC (naive means UTC), between 1970 and 2200; SchemaError otherwise."""
    try:
        utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 has no UTC time
        raise SchemaError(where, "timestamp out of range (1970 to 2200)") from None
    if not EARLIEST <= utc < LATEST:
        raise SchemaError(where, "timestamp out of range (1970 to 2200)")
    return utc


def check_timestamp_column(ts: pa.Array | pa.ChunkedArray, where: Locate) -> None:
    """A timestamp column within 1970 to 2200, nulls refused."""
    if ts.null_count:
        raise SchemaError(where(_first(ts.is_null().to_numpy(zero_copy_only=False))), "no time")
    if len(ts) == 0:
        return
    low = pa.scalar(EARLIEST, type=ts.type)
    high = pa.scalar(LATEST, type=ts.type)
    outside = pc.or_(pc.less(ts, low), pc.greater_equal(ts, high))
    mask = np.asarray(outside.to_numpy(zero_copy_only=False), dtype=bool)
    if mask.any():
        raise SchemaError(where(_first(mask)), "timestamp out of range (1970 to 2200)")


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
