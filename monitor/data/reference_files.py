"""Reference files (CSV, Parquet) read block by block into the canonical table.

A reference can be hundreds of megabytes. Each block is checked and converted as soon as it is
read, so a file with the wrong columns is refused after its first block (not after parsing the
whole file), and memory holds the compact canonical table plus one raw block, never the whole
raw file twice. Declared columns get their types up front, so a block whose first rows are
empty cannot make the CSV reader guess a type the next block contradicts.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from typing import IO

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from monitor.data import undeclared
from monitor.data.errors import SchemaError
from monitor.data.from_flat import flat_to_table
from monitor.data.layout import arrow_schema
from monitor.spec.model import ModelSpec

BLOCK_BYTES = 8 << 20  # CSV bytes parsed at once
BLOCK_ROWS = 65_536  # Parquet rows read at once


def _declared_types(spec: ModelSpec) -> dict[str, pa.DataType]:
    types: dict[str, pa.DataType] = {"id": pa.string(), "prediction": pa.string()}
    for f in spec.features:
        if f.kind == "numeric":
            types[f.name] = pa.float64()
        elif f.kind == "categorical":
            types[f.name] = pa.string()
        else:
            assert f.dim is not None
            types.update({f"{f.name}_{j}": pa.float64() for j in range(f.dim)})
    for c in spec.output.classes:
        types[f"proba_{c}"] = pa.float64()
        types[f"area_{c}"] = pa.float64()
    if spec.output.task == "regression":
        types["prediction"] = pa.float64()
    return types


def _csv_blocks(spool: IO[bytes], spec: ModelSpec) -> Iterator[pa.Table]:
    types = _declared_types(spec)
    # the header, to name the column of a conversion error (Arrow numbers them)
    header = next(csv.reader([spool.readline().decode("utf-8", "replace")]), [])
    spool.seek(0)
    try:
        reader = pa_csv.open_csv(
            spool,
            read_options=pa_csv.ReadOptions(block_size=BLOCK_BYTES),
            # empty cells are missing values, not empty strings
            convert_options=pa_csv.ConvertOptions(strings_can_be_null=True, column_types=types),
        )
        for batch in reader:
            yield pa.Table.from_batches([batch])
    except pa.ArrowInvalid as exc:  # "In CSV column #3: ... invalid value 'x'": name it
        found = re.search(r"column #(\d+)", str(exc))
        if found is None or int(found[1]) >= len(header):
            raise
        name = header[int(found[1])]
        wanted = "numbers" if types.get(name) == pa.float64() else "values of its type"
        raise SchemaError(f"column {name!r}", f"expected {wanted}: {exc}") from None


def _parquet_blocks(spool: IO[bytes]) -> Iterator[pa.Table]:
    for batch in pq.ParquetFile(spool).iter_batches(batch_size=BLOCK_ROWS):
        yield pa.Table.from_batches([batch])


def read_reference(spool: IO[bytes], fmt: str, spec: ModelSpec) -> pa.Table:
    """The canonical table of a ``csv`` or ``parquet`` reference file.

    Raises :class:`SchemaError` (naming the column, and the block's first row after the first
    block) or ``pyarrow.ArrowInvalid`` for a file that is not CSV or Parquet at all.
    """
    blocks = _csv_blocks(spool, spec) if fmt == "csv" else _parquet_blocks(spool)
    parts: list[pa.Table] = []
    rows = 0
    for flat in blocks:
        try:
            if not rows:
                undeclared.in_flat(flat, spec)  # refused, or left out
            parts.append(flat_to_table(flat, spec, row_offset=rows))
        except SchemaError as exc:
            if not rows:
                raise
            raise SchemaError(f"{exc.field} (of the block from row {rows})", exc.message) from None
        rows += flat.num_rows
    if not parts:
        return arrow_schema(spec).empty_table()
    return pa.concat_tables(parts)
