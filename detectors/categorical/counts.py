"""Category counts per feature and their alignment into (features, categories) tables."""

from __future__ import annotations

from typing import Any

import numpy as np


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def column_counts(column: np.ndarray) -> dict[str, int]:
    """Count of each category (as a string, so 1 and "1" are one category); missing left out."""
    values = [str(v) for v in column.tolist() if not is_missing(v)]
    keys, counts = np.unique(np.asarray(values, dtype=str), return_counts=True)
    return dict(zip(keys.tolist(), counts.tolist(), strict=True))


def count_tables(
    reference: list[dict[str, int]], current: list[dict[str, int]]
) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
    """Reference and current counts over the union of categories, zero-padded to one width.

    Categories never seen in the reference are columns of their own (a new category is drift,
    never a crash); padding columns are zero on both sides and add nothing to any statistic.
    """
    categories = [sorted(r.keys() | c.keys()) for r, c in zip(reference, current, strict=True)]
    width = max((len(c) for c in categories), default=0)
    ref_table = np.zeros((len(categories), width))
    cur_table = np.zeros((len(categories), width))
    for j, cats in enumerate(categories):
        ref_table[j, : len(cats)] = [reference[j].get(c, 0) for c in cats]
        cur_table[j, : len(cats)] = [current[j].get(c, 0) for c in cats]
    return ref_table, cur_table, categories
