"""Progress where output is not a terminal (CI logs, `| tee`): a plain line now and then, never blank lines."""

from __future__ import annotations

import io
import time

from rich.console import Console

from tailor.progress import RichProgress


def _progress(every: float) -> tuple[RichProgress, io.StringIO]:
    buf = io.StringIO()
    return RichProgress(Console(file=buf, force_terminal=False, width=200), line_every=every), buf


def test_long_work_prints_a_bounded_number_of_plain_lines() -> None:
    progress, buf = _progress(every=0.05)
    with progress.bar("training", 20) as bar:
        for _ in range(20):
            time.sleep(0.01)
            bar.advance()
    lines = buf.getvalue().splitlines()
    assert lines and all(line.startswith("training: ") for line in lines)
    assert lines[-1].startswith("training: done, 20/20 in")
    assert 2 <= len(lines) <= 6, lines  # about one per 0.05 s of 0.2 s, not one per step
    assert "\x1b" not in buf.getvalue(), "no terminal control codes in a log"


def test_quick_work_prints_nothing_and_no_blank_lines() -> None:
    progress, buf = _progress(every=10.0)
    with progress.bar("embedding", 5) as bar:
        bar.advance(5)
    progress.log("a line of the run's own")
    assert buf.getvalue() == "a line of the run's own\n"
