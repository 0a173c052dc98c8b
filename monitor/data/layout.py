"""The canonical Arrow layout of a model's records, and its compact binary form.

Columns: ``id`` (string), ``ts`` (UTC timestamp), ``f.<feature>`` (float64, string, or a
fixed-size list of float32 for vectors) and, by task, ``p.label`` + ``p.proba``
(classification), ``p.value`` (regression), ``p.boxes`` (detection) or ``p.areas``
(segmentation, one fraction per class).
"""

from __future__ import annotations

import pyarrow as pa

from monitor.spec.model import FeatureSpec, ModelSpec

BOX_TYPE = pa.struct(
    [
        ("label", pa.string()),
        ("score", pa.float32()),
        ("x1", pa.float32()),
        ("y1", pa.float32()),
        ("x2", pa.float32()),
        ("y2", pa.float32()),
    ]
)
TS_TYPE = pa.timestamp("us", tz="UTC")
_IPC_OPTIONS = pa.ipc.IpcWriteOptions(compression="zstd")


def feature_type(feature: FeatureSpec) -> pa.DataType:
    if feature.kind == "numeric":
        return pa.float64()
    if feature.kind == "categorical":
        return pa.string()
    assert feature.dim is not None
    return pa.list_(pa.float32(), feature.dim)


def arrow_schema(spec: ModelSpec) -> pa.Schema:
    fields = [pa.field("id", pa.string(), nullable=False), pa.field("ts", TS_TYPE, nullable=False)]
    fields += [pa.field(f"f.{f.name}", feature_type(f)) for f in spec.features]
    n_classes = len(spec.output.classes)
    task = spec.output.task
    if task == "classification":
        fields += [
            pa.field("p.label", pa.string()),
            pa.field("p.proba", pa.list_(pa.float32(), n_classes)),
        ]
    elif task == "regression":
        fields.append(pa.field("p.value", pa.float64()))
    elif task == "detection":
        fields.append(pa.field("p.boxes", pa.list_(BOX_TYPE)))
    else:
        fields.append(pa.field("p.areas", pa.list_(pa.float32(), n_classes)))
    return pa.schema(fields)


def to_bytes(table: pa.Table) -> bytes:
    """Arrow IPC stream, zstd-compressed: columnar, compact and fast to read back."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=_IPC_OPTIONS) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def from_bytes(blob: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(blob)).read_all()
