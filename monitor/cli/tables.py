"""Tables that fit the terminal: at narrow widths the less important columns give way.

Rich fits any table to the terminal by squeezing every column, which at 80 columns cuts model
and rule names to ``phytopl…`` and folds times over three lines. Here each column says how
readily it gives way: the columns that identify a row are shown whole, on one line; free
text (a summary) wraps; the rest are dropped, least important first, until the table fits,
and a caption says how to see them (``--wide``: every column, wrapped to the terminal).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

WideOption = Annotated[
    bool, typer.Option("--wide", help="every column, wrapped to the terminal's width")
]
# the narrowest a wrapped column is worth showing at (or its longest word, if longer)
MIN_WRAPPED = 20


@dataclass(frozen=True)
class Column:
    header: str
    drop: int = 0  # 0: always shown; at narrow widths the highest goes first
    wrap: bool = False  # free text that may wrap; the others are shown whole on one line
    justify: Literal["left", "right"] = "left"


def _width(text: str) -> int:
    return max((Text.from_markup(line).cell_len for line in text.splitlines()), default=0)


def _needed(column: Column, cells: list[str]) -> int:
    """Columns of the terminal that ``column`` needs, with its padding and border."""
    if column.wrap:
        longest = max((_width(w) for c in cells for w in c.split()), default=0)
        content = min(max(_width(c) for c in [column.header, *cells]), MIN_WRAPPED)
        content = max(content, longest, _width(column.header))
    else:
        content = max(_width(c) for c in [column.header, *cells])
    return content + 3  # one space either side and the border on its right


def fitted(
    console: Console,
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    *,
    wide: bool = False,
    title: str | None = None,
) -> Table:
    """A table of ``rows`` (Rich markup) with the columns that fit ``console``'s width."""
    kept = list(range(len(columns)))
    cells = [[row[i] for row in rows] for i in range(len(columns))]
    if not wide:
        while 1 + sum(_needed(columns[i], cells[i]) for i in kept) > console.width:
            droppable = [i for i in kept if columns[i].drop > 0]
            if not droppable:
                break  # what identifies a row stays, folded if it must
            # the least important; of equals, the rightmost
            kept.remove(max(droppable, key=lambda i: (columns[i].drop, i)))
    hidden = len(columns) - len(kept)
    caption = f"{hidden} more column{'s' * (hidden > 1)} with --wide" if hidden else None
    table = Table(title=title, caption=caption)
    for i in kept:
        column = columns[i]
        table.add_column(
            column.header,
            justify=column.justify,
            no_wrap=not (wide or column.wrap),
            overflow="fold",  # never an ellipsis: a cut name is a wrong name
        )
    for row in rows:
        table.add_row(*(row[i] for i in kept))
    return table
