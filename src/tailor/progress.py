"""Progress reporting: rich bars in the terminal, a silent null object everywhere else.

Code that does long work takes a :class:`Progress` and calls it unconditionally; callers who
want silence pass :data:`NULL_PROGRESS` instead of sprinkling ``if progress:`` checks.
"""

from __future__ import annotations

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


class RichProgress:
    """Rich progress bars; one live display shared by all bars of a run."""

    def __init__(self, console=None):
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

    @contextmanager
    def bar(self, description: str, total: int | None) -> Iterator[Bar]:
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
