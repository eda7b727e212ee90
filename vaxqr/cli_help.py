"""Help pages on a narrow terminal (a phone's SSH session: 40 columns), imported only by
vaxqr/cli.py when a help page is asked for there.

typer lays out the options and commands of a help page as a table of four to seven
columns (required mark, names, metavar, help); at 40 columns rich squeezes every column,
so option names came out cut (``--id-c…``) and the help one word a line. Below
:data:`NARROW` columns each row is stacked instead: the names and metavar on one line,
the help under them, indented.
"""

from __future__ import annotations

from typing import Any

from rich.padding import Padding
from rich.table import Table
from rich.text import Text

#: Below this many columns, help pages stack their tables' rows.
NARROW = 80


class _StackedTable(Table):
    """A one-column rich Table: ``add_row(*heads, help)`` adds the heads (joined by spaces,
    empty ones left out) as a line, and the help as lines under it, indented."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        super().add_column(no_wrap=False)

    def add_column(self, *_args: Any, **_kwargs: Any) -> None:
        pass  # one column whatever the caller asks for

    def add_row(self, *cells: Any, **kwargs: Any) -> None:
        *heads, text = cells if cells else (None,)
        line = Text(" ").join(
            head if isinstance(head, Text) else Text(str(head))
            for head in heads
            if head is not None and str(head).strip())
        super().add_row(line, **kwargs)
        if text is not None and str(text).strip():
            super().add_row(Padding(text, (0, 0, 0, 4)), **kwargs)


def stack_narrow_help() -> None:
    """Have typer's help pages stack their option and command tables (see the module)."""
    from typer import rich_utils

    rich_utils.Table = _StackedTable  # type: ignore[misc]
