"""All user-facing progress goes through one :class:`Reporter`.

It draws rich progress bars on an interactive terminal and stays quiet under CI (``CI`` set) or
when output is not a terminal, so logs stay readable. Tests pass ``Reporter(quiet=True)``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    ProgressColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class _RateColumn(ProgressColumn):
    """Items per second, e.g. ``1,234 rows/s``."""

    def __init__(self, unit: str):
        super().__init__()
        self.unit = unit

    def render(self, task):
        from rich.text import Text

        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} {self.unit}/s")


def _interactive() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CI")


class Task:
    """A handle to advance one progress bar (a no-op when quiet)."""

    def __init__(self, progress: Progress | None, task_id=None):
        self._progress = progress
        self._task_id = task_id

    def advance(self, amount: float = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._task_id, amount)

    def total(self, total: float | None) -> None:
        if self._progress is not None:
            self._progress.update(self._task_id, total=total)


class Reporter:
    def __init__(self, quiet: bool = False, console: Console | None = None):
        self.quiet = quiet
        self.console = console or Console(stderr=True, highlight=False)
        self.warnings: list[str] = []

    def info(self, message: str) -> None:
        if not self.quiet:
            self.console.print(message, markup=False)

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        if not self.quiet:
            self.console.print(f"warning: {message}", style="yellow", markup=False)

    @contextlib.contextmanager
    def progress(self, label: str, total: float | None = None, unit: str = "rows") -> Iterator[Task]:
        """A progress bar with a rate, shown only on an interactive terminal."""
        if self.quiet or not _interactive():
            yield Task(None)
            return
        columns = [
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _RateColumn(unit),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        ]
        with Progress(*columns, console=self.console, transient=True) as bar:
            yield Task(bar, bar.add_task(label, total=total))
