"""Progress reporting: rich bars in the terminal, a silent null object everywhere else.

Code that does long work takes a :class:`Progress` and calls it unconditionally; callers who
want silence pass :data:`NULL_PROGRESS` instead of sprinkling ``if progress:`` checks.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class Bar(Protocol):
    def advance(self, n: int = 1) -> None: ...


class Progress(Protocol):
    def bar(self, description: str, total: int | None) -> contextmanager: ...  # type: ignore[valid-type]
    def log(self, message: str) -> None: ...


class _NullBar:
    def advance(self, n: int = 1) -> None:
        pass


class NullProgress:
    @contextmanager
    def bar(self, description: str, total: int | None) -> Iterator[Bar]:
        yield _NullBar()

    def log(self, message: str) -> None:
        pass


NULL_PROGRESS = NullProgress()


class _RichBar:
    def __init__(self, progress, task_id):
        self._p, self._t = progress, task_id

    def advance(self, n: int = 1) -> None:
        self._p.advance(self._t, n)


class _LineBar:
    """A bar for output that is not a terminal (CI logs, ``| tee``): a plain line now and then, not a redraw."""

    def __init__(self, console, description: str, total: int | None, every: float):
        self._console, self._description, self._total, self._every = console, description, total, every
        self.done = 0
        self._start = self._last = time.monotonic()

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._last >= self._every:
            self._last = now
            self.line(f"{self._of()} ({now - self._start:.0f} s)")

    def _of(self) -> str:
        return f"{self.done}/{self._total}" if self._total is not None else str(self.done)

    def line(self, what: str) -> None:
        self._console.print(f"{self._description}: {what}", markup=False, highlight=False)

    def finish(self) -> None:
        elapsed = time.monotonic() - self._start
        if elapsed >= self._every:  # a short step needs no closing line: the run's own lines tell its story
            self.line(f"done, {self._of()} in {elapsed:.0f} s")


class RichProgress:
    """Rich progress bars on a terminal, one live display shared by all bars of a run; elsewhere (a CI log, a pipe)
    a plain line per bar every ``line_every`` seconds at most, so long work shows it is alive without flooding."""

    def __init__(self, console=None, line_every: float = 10.0):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
        from rich.progress import Progress as _P

        self.console = console or Console(stderr=True)
        self._progress = _P(
            TextColumn("[bold blue]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self._depth = 0
        self._line_every = line_every

    @contextmanager
    def bar(self, description: str, total: int | None) -> Iterator[Bar]:
        if not self.console.is_terminal:
            bar = _LineBar(self.console, description, total, self._line_every)
            try:
                yield bar
            finally:
                bar.finish()
            return
        if self._depth == 0:
            self._progress.start()
        self._depth += 1
        task_id = self._progress.add_task(description, total=total)
        try:
            yield _RichBar(self._progress, task_id)
        finally:
            self._progress.remove_task(task_id)
            self._depth -= 1
            if self._depth == 0:
                self._progress.stop()

    def log(self, message: str) -> None:
        self.console.print(message)
