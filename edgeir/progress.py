"""Progress display for long work (rich), quiet when output is not a terminal."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)


@contextmanager
def progress_bar(description: str, total: int, completed: int = 0) -> Iterator[Callable[[int], None]]:
    """Yields ``advance(n)``; draws a bar on a terminal, nothing otherwise (logs stay readable)."""
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=console, disable=not console.is_terminal,
                  transient=False) as prog:
        task = prog.add_task(description, total=total, completed=completed)
        yield lambda n=1: prog.advance(task, n)
