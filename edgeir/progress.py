"""Progress display for long work: a rich bar on a terminal; plain lines when output is piped or logged, so a
CI log or ``| tee`` shows that work goes on (about every tenth of the work, at most one line per 10 s, and
the last step)."""

from __future__ import annotations

import time
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
LINE_EVERY_S = 10.0


@contextmanager
def progress_bar(description: str, total: int, completed: int = 0) -> Iterator[Callable[[int], None]]:
    """Yields ``advance(n)``."""
    if not console.is_terminal:
        yield _lines(description, total, completed)
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=console, transient=False) as prog:
        task = prog.add_task(description, total=total, completed=completed)
        yield lambda n=1: prog.advance(task, n)


def _lines(description: str, total: int, completed: int) -> Callable[[int], None]:
    start = last = time.monotonic()
    done, shown = completed, completed
    step = max(1, total // 10)

    def advance(n: int = 1) -> None:
        nonlocal done, shown, last
        done += n
        now = time.monotonic()
        if done >= total or (done - shown >= step and now - last >= LINE_EVERY_S):
            print(f"{description}: {done}/{total} ({now - start:.0f} s)", file=console.file, flush=True)
            shown, last = done, now

    return advance


@contextmanager
def no_progress(description: str, total: int, completed: int = 0) -> Iterator[Callable[[int], None]]:
    """``progress_bar``'s stand-in where nothing should be shown (torchrun's other processes, nested work)."""
    yield lambda n=1: None
