"""All user-facing progress goes through one :class:`Reporter`.

It draws rich progress bars on an interactive terminal and stays quiet under CI (``Settings.ci``)
or when output is not a terminal, so logs stay readable. Tests pass ``Reporter(quiet=True)``.
Warnings are recorded with a kind in :class:`Warnings`, one collector per build.
"""

from __future__ import annotations

import contextlib
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


class Warnings:
    """The warnings of one build, each with a kind (e.g. ``"embedder"``, ``"data"``).

    The same kind and message is kept once; :meth:`has` asks whether a kind was raised (instead of
    searching the messages' text). Iterating gives the messages in the order they came.
    """

    def __init__(self) -> None:
        self._items: dict[tuple[str, str], None] = {}

    def add(self, kind: str, message: str) -> bool:
        """Record a warning; False when the same one was already there."""
        if (kind, message) in self._items:
            return False
        self._items[(kind, message)] = None
        return True

    def has(self, kind: str) -> bool:
        return any(k == kind for k, _ in self._items)

    def items(self) -> list[tuple[str, str]]:
        """(kind, message) pairs in the order they came."""
        return list(self._items)

    def messages(self) -> list[str]:
        return [message for _, message in self._items]

    def __iter__(self) -> Iterator[str]:
        return iter(self.messages())

    def __len__(self) -> int:
        return len(self._items)


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
    """Prints progress and warnings; ``ci`` (``Settings.ci``) turns progress bars off."""

    def __init__(self, quiet: bool = False, console: Console | None = None, ci: bool = False):
        self.quiet = quiet
        self.ci = ci
        self.console = console or Console(stderr=True, highlight=False)
        self.warnings = Warnings()

    def collect(self) -> Warnings:
        """Start a fresh collector (one per build) and return it."""
        self.warnings = Warnings()
        return self.warnings

    def info(self, message: str) -> None:
        if not self.quiet:
            self.console.print(message, markup=False)

    def warn(self, kind: str, message: str) -> None:
        """Print a warning (unless quiet or already given) and record it under ``kind``."""
        if self.warnings.add(kind, message) and not self.quiet:
            self.console.print(f"warning: {message}", style="yellow", markup=False)

    @contextlib.contextmanager
    def progress(self, label: str, total: float | None = None, unit: str = "rows") -> Iterator[Task]:
        """A progress bar with a rate, shown only on an interactive terminal."""
        if self.quiet or self.ci or not sys.stderr.isatty():
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
