"""Features a batch carries that its model does not declare.

By default they are dropped and counted (the answer, a metric and the model's status name
them): a module that logs a few more image statistics than it declared should not lose its
batch. A model with ``undeclared_features = "refuse"`` gets the batch refused instead.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import pyarrow as pa

from collectors.wire import Record
from monitor.data.errors import SchemaError
from monitor.spec.model import ModelSpec


def in_records(records: Sequence[Record], spec: ModelSpec, path: str = "records") -> dict[str, int]:
    """Undeclared feature name -> records carrying it; raises when the model refuses them."""
    declared = {f.name for f in spec.features}
    found: Counter[str] = Counter()
    for i, r in enumerate(records):
        unknown = r.features.keys() - declared
        if not unknown:
            continue
        if spec.undeclared_features == "refuse":
            raise SchemaError(
                f"{path}[{i}].features.{sorted(unknown)[0]}",
                f"unknown feature; the model declares {sorted(declared)}",
            )
        found.update(unknown)
    return dict(sorted(found.items()))


def _flat_layout(spec: ModelSpec) -> set[str]:
    """Every column name the flat layout (see :mod:`monitor.data.from_flat`) gives a meaning."""
    known = {"id", "timestamp", "prediction"}
    for f in spec.features:
        known.add(f.name)
        if f.kind == "vector" and f.dim is not None:
            known.update(f"{f.name}_{j}" for j in range(f.dim))
    for c in spec.output.classes:
        known.update((f"proba_{c}", f"area_{c}"))
    return known


def in_flat(table: pa.Table, spec: ModelSpec) -> dict[str, int]:
    """Columns of a flat batch outside the model's layout -> rows; raises when refused."""
    unknown = sorted(set(table.column_names) - _flat_layout(spec))
    if unknown and spec.undeclared_features == "refuse":
        declared = sorted(f.name for f in spec.features)
        raise SchemaError(
            f"column {unknown[0]!r}", f"unknown feature; the model declares {declared}"
        )
    return {name: table.num_rows for name in unknown}
