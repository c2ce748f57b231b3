"""tailor: adapt a pretrained language model to your task by prompting and by fine-tuning,
on the same data and test set, and measure which one wins.

The public API is small and imported lazily so that ``import tailor`` stays fast::

    from tailor import load_task, run_task, load_adapted, METHODS
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "METHODS",
    "Adapted",
    "Context",
    "Example",
    "Method",
    "MethodOptions",
    "Prediction",
    "Split",
    "TaskSpec",
    "TailorError",
    "build_report",
    "load_adapted",
    "load_task",
    "run_task",
    "write_reports",
]

_LAZY = {
    "METHODS": "tailor.methods",
    "Adapted": "tailor.contract",
    "Context": "tailor.contract",
    "Method": "tailor.contract",
    "MethodOptions": "tailor.contract",
    "Example": "tailor.types",
    "Prediction": "tailor.types",
    "Split": "tailor.types",
    "TaskSpec": "tailor.config.task",
    "load_task": "tailor.config.task",
    "TailorError": "tailor.errors",
    "build_report": "tailor.report.build",
    "write_reports": "tailor.report.build",
    "load_adapted": "tailor.runner.predict",
    "run_task": "tailor.runner.run",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tailor' has no attribute {name!r}")


if TYPE_CHECKING:  # pragma: no cover
    from .config.task import TaskSpec, load_task
    from .contract import Adapted, Context, Method, MethodOptions
    from .errors import TailorError
    from .methods import METHODS
    from .report.build import build_report, write_reports
    from .runner.predict import load_adapted
    from .runner.run import run_task
    from .types import Example, Prediction, Split
