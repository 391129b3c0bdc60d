"""rich, loaded only once something is shown to a person.

A verb that answers in JSON (a pipeline's ``plan --json``, ``status --json``, ``deploy --json``)
writes its lines to the console's file and never needs rich, whose import is about a tenth of
such a command's start-up. The views build their tables and texts through these functions, and
the console they are handed builds rich's ``Console`` at its first use beyond ``file``.
"""

from __future__ import annotations

from typing import IO, TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text


class LazyConsole:
    """Stands for a rich ``Console`` writing to ``file``; makes it when first asked for more."""

    def __init__(self, file: IO[str], width: int | None) -> None:
        self.file = file
        self._width = width
        self._real: Console | None = None

    @property
    def real(self) -> Console:
        if self._real is None:
            from rich.console import Console

            self._real = Console(file=self.file, highlight=False, width=self._width)
        return self._real

    def __getattr__(self, name: str) -> Any:  # only for names this class lacks: rich's own
        return getattr(self.real, name)


def console(file: IO[str], width: int | None) -> Console:
    """A console for the views; typed as rich's, which it stands for."""
    return cast("Console", LazyConsole(file, width))


def real(console: Console) -> Console:
    """The rich ``Console`` itself, for what checks its type (a live display)."""
    return console.real if isinstance(console, LazyConsole) else console


def table(*headers: str, **options: Any) -> Table:
    from rich.table import Table

    return Table(*headers, **options)


def text(content: str = "", style: str = "") -> Text:
    from rich.text import Text

    return Text(content, style=style)


def escape(markup: str) -> str:
    """``markup`` with rich's markup characters escaped: shown as written."""
    from rich.markup import escape

    return escape(markup)
