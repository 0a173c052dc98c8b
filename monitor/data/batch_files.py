"""Batch files (CSV, Parquet, NPZ) read as flat tables, chunk by chunk, for ``tidewatch collect``.

The columns follow the reference's flat layout (see :mod:`monitor.data.from_flat`). An NPZ file
holds one array per column: 1-D arrays are columns, 2-D arrays vector features (one row per
record). Records without an ``id`` column get ``<file digest>-<row>``, so collecting the same
file twice stores every record once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".npz": "npz"}


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def count_rows(path: Path) -> int | None:
    """Rows in the file when known without reading it all (Parquet metadata, NPZ shapes)."""
    kind = SUFFIXES[path.suffix.lower()]
    if kind == "parquet":
        return int(pq.ParquetFile(path).metadata.num_rows)
    if kind == "npz":
        with np.load(path, allow_pickle=False) as arrays:
            return int(arrays[arrays.files[0]].shape[0]) if arrays.files else 0
    return None


def _npz_table(path: Path) -> pa.Table:
    columns: dict[str, pa.Array] = {}
    with np.load(path, allow_pickle=False) as arrays:
        lengths = {
            name: arrays[name].shape[0] if arrays[name].ndim else -1 for name in arrays.files
        }
        if len(set(lengths.values())) > 1:
            raise ValueError(f"the arrays of {path.name} differ in length: {lengths}")
        for name in arrays.files:
            array = arrays[name]
            if array.ndim == 1:
                columns[name] = pa.array(array)
            elif array.ndim == 2:
                flat = pa.array(np.ascontiguousarray(array, dtype=np.float32).reshape(-1))
                columns[name] = pa.FixedSizeListArray.from_arrays(flat, array.shape[1])
            else:
                raise ValueError(f"array {name!r} of {path.name} has {array.ndim} dimensions")
    return pa.table(columns)


def read_chunks(path: Path, rows: int) -> Iterator[pa.Table]:
    """The file as tables of at most ``rows`` rows, each with an ``id`` column."""
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ValueError(f"unknown file type {path.suffix!r}; use {sorted(SUFFIXES)}")
    prefix = file_digest(path)
    start = 0
    for chunk in _raw_chunks(path, kind, rows):
        if "id" not in chunk.column_names:
            ids = [f"{prefix}-{i}" for i in range(start, start + chunk.num_rows)]
            chunk = chunk.append_column("id", pa.array(ids, pa.string()))
        start += chunk.num_rows
        yield chunk


def _raw_chunks(path: Path, kind: str, rows: int) -> Iterator[pa.Table]:
    if kind == "parquet":
        for batch in pq.ParquetFile(path).iter_batches(batch_size=rows):
            yield pa.Table.from_batches([batch])
    elif kind == "npz":
        table = _npz_table(path)
        for offset in range(0, table.num_rows, rows):
            yield table.slice(offset, rows)
    else:
        options = pa_csv.ConvertOptions(strings_can_be_null=True)
        reader = pa_csv.open_csv(
            path, read_options=pa_csv.ReadOptions(block_size=1 << 20), convert_options=options
        )
        pending: list[pa.RecordBatch] = []
        size = 0
        for batch in reader:
            pending.append(batch)
            size += batch.num_rows
            while size >= rows:
                table = pa.Table.from_batches(pending)
                yield table.slice(0, rows)
                rest = table.slice(rows)
                pending, size = rest.to_batches(), rest.num_rows
        if size:
            yield pa.Table.from_batches(pending)


def to_parquet(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return bytes(sink.getvalue().to_pybytes())
