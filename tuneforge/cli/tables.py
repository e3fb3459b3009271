"""Tables that read in an 80-column terminal.

A list command shows by default the columns that fit side by side in 80 characters, every cell on one line:
identifiers (ids, names, ARNs) are never cut, and a longer-than-usual secondary cell is shortened with "…" so
the row still fits. `--wide` adds the other columns and prints the table as wide as its cells need (wider
than the terminal if need be: `less -S` scrolls it, a file keeps it whole); `--json` has every field, exactly.
A detail view (one item: field and value) drops nothing; a value longer than the line (an ARN) folds onto the
next line rather than being cut.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Optional

import typer
from rich.cells import cell_len
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from tuneforge.cli.runtime import console

WideFlag = Annotated[bool, typer.Option("--wide", help="Every column, each cell on one line (the table may be wider than the terminal).")]

SHORTEST = 5  # a shortened cell keeps at least this many characters, "…" included
PROSE_WIDE = 60  # a prose column wraps at this width with --wide (its natural width is the whole passage)
PROSE_NARROW = 20  # and keeps at least this much of the line in an 80-column table
SHORT_TYPE = {"FINE_TUNING": "FT", "CONTINUED_PRE_TRAINING": "CPT", "PREFERENCE_TUNING": "PT"}


@dataclass(frozen=True)
class Column:
    header: str
    wide: bool = False  # shown only with --wide
    key: bool = False  # an identifier: never shortened
    right: bool = False  # numbers
    prose: bool = False  # free text (a retrieved passage) that wraps; no other cell does
    style: Optional[str] = None


def print_table(title: Optional[str], columns: Sequence[Column], rows: Iterable[Sequence[str]], *, wide: bool,
                caption: Optional[str] = None) -> None:
    """Print the rows (one string per column, wide-only columns included) as described in the module docstring."""
    shown = [c for c in columns if wide or not c.wide]
    cells = [[cell for cell, c in zip(row, columns, strict=True) if wide or not c.wide] for row in rows]
    widths = [max([cell_len(c.header)] + [cell_len(row[i]) for row in cells]) for i, c in enumerate(shown)]
    limits: list[Optional[int]] = [PROSE_WIDE if c.prose else None for c in shown]
    if not wide:
        limits = _fit(shown, widths, console.width - _border_width(len(shown)))
    table = Table(title=title, caption=caption, caption_justify="left")
    for c, limit in zip(shown, limits):
        table.add_column(c.header, justify="right" if c.right else "left", style=c.style, no_wrap=not c.prose,
                         overflow="fold" if c.prose else "ellipsis", max_width=limit)
    for row in cells:
        table.add_row(*(Text(cell) for cell in row))  # Text: data is never read as Rich markup
    if not wide:
        console.print(table)
        return
    natural = Measurement.get(console, console.options.update_width(1_000_000), table).maximum
    terminal = console.width
    console.width = max(natural, terminal)  # Console.print cannot print wider than the console
    try:
        console.print(table)
    finally:
        console.width = terminal


def _border_width(columns: int) -> int:
    return 3 * columns + 1  # the default box: "│ " before each column, " │" after the last


def _fit(columns: Sequence[Column], widths: list[int], room: int) -> list[Optional[int]]:
    """Column limits that fit `room`: prose narrows first (it wraps), then the widest non-key cells get "…"."""
    limits: list[Optional[int]] = [None] * len(columns)
    widths = list(widths)
    for i, c in enumerate(columns):
        if c.prose:
            widths[i] = limits[i] = max(PROSE_NARROW, min(widths[i], room - (sum(widths) - widths[i])))
    excess = sum(widths) - room
    while excess > 0:
        shrinkable = [i for i, c in enumerate(columns) if not c.key and not c.prose and widths[i] > SHORTEST]
        if not shrinkable:
            break  # identifiers alone are wider than the terminal: Rich folds what remains
        widest = max(shrinkable, key=lambda i: widths[i])
        widths[widest] -= 1
        limits[widest] = widths[widest]
        excess -= 1
    return limits


def detail_table(title: str, fields: Iterable[tuple[str, object]]) -> Table:
    """One item: field names, never wrapped, beside values that fold rather than being cut (ARNs stay whole)."""
    table = Table(show_header=False, title=title)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    for name, value in fields:
        table.add_row(name, value if isinstance(value, Text) else Text(value if isinstance(value, str) else str(value)))
    return table


def failure(message: str) -> Text:
    return Text(message, style="red")


def when(value: Optional[datetime]) -> str:
    """A table's time, to the second (--json has the milliseconds and the Z)."""
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def customization(value: str, *, wide: bool) -> str:
    """FINE_TUNING -> FT, CONTINUED_PRE_TRAINING -> CPT and PREFERENCE_TUNING -> PT, except with --wide."""
    return value if wide else SHORT_TYPE.get(value, value)
