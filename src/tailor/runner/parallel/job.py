"""What passes between a run and the workers that adapt its trials elsewhere (:mod:`tailor.runner.parallel.workers`):
the job a
worker is started with, what it sends back, and the store stand-in that collects it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ...config.task import TaskSpec
from ..store import TrialResult

Finished = tuple[TrialResult, dict[str, list]]
"""A finished trial: its result and its predictions by split, as :meth:`RunStore.add_result` takes them."""


@dataclass(frozen=True)
class Job:
    """What a worker needs to run any trial of a run: the task, where its relative paths start, the run folder."""

    spec: TaskSpec
    base: Path
    run_dir: Path
    task_file: str | None


Executor = Callable[[Job, list[str]], Iterator[Finished]]
"""Runs the named trials of a job somewhere and yields each as it finishes, in any order."""


class Collected:
    """A store stand-in inside a worker: keeps the one result :func:`tailor.runner.run.run_trial` writes."""

    def __init__(self) -> None:
        self.result: Finished | None = None

    def add_result(self, result: TrialResult, predictions: dict[str, list] | None = None) -> None:
        self.result = (result, dict(predictions or {}))
