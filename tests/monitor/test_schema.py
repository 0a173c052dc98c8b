"""The ORM classes of monitor.db.tables agree with the Core tables of monitor.db.schema.

The columns are declared once, as Core tables (the read-only commands query them without the
ORM); each mapped class only annotates them. An annotation that names no column, a column left
unannotated, or an ``Optional`` that disagrees with the column's nullability would type the
service's code wrongly without failing anywhere else.
"""

from __future__ import annotations

import types
import typing

import pytest
from sqlalchemy.orm import Mapped

from monitor.db import schema, tables

MAPPED = sorted(tables.Base.registry.mappers, key=lambda mapper: mapper.class_.__name__)


def _optional(annotation: object) -> bool:
    inner = typing.get_args(annotation)[0]
    return isinstance(inner, types.UnionType) and type(None) in typing.get_args(inner)


def test_every_core_table_is_mapped_once() -> None:
    mapped = sorted(mapper.local_table.name for mapper in MAPPED)
    assert mapped == sorted(schema.metadata.tables)
    assert tables.Base.metadata is schema.metadata


@pytest.mark.parametrize("mapper", MAPPED, ids=lambda mapper: mapper.class_.__name__)
def test_annotations_name_the_columns_with_their_nullability(mapper: typing.Any) -> None:
    cls, table = mapper.class_, mapper.local_table
    hints = typing.get_type_hints(cls)
    annotated = {name: hint for name, hint in hints.items() if typing.get_origin(hint) is Mapped}
    assert list(annotated) == list(table.columns.keys())
    for name, hint in annotated.items():
        column = table.columns[name]
        assert _optional(hint) == (column.nullable and not column.primary_key), name
