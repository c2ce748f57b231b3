"""What a prediction counts as, in one place: the value scored against the gold target, and whether the output
could be used at all. The runner, the fine-tuning loop's dev metric and the reports all go through here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np


class Prepared(Protocol):
    """One method's gold and predicted values, ready to be scored on any set of bootstrap resamples."""

    n: int

    def values(self, idx: np.ndarray) -> np.ndarray:
        """The metric on each row of the index matrix ``idx`` (shape (B, n)): an array of B values."""
        ...


def scored_value(kind: str, label: str | None, output: str) -> str | None:
    """What is scored against the gold target: the parsed label (classification; None when the output was not a
    valid label, which counts as wrong) or the output text (generation)."""
    return label if kind == "classification" else output


def is_valid(kind: str, label: str | None, output: str) -> bool:
    """Whether the output could be used: a label was parsed (classification), any text was written (generation)."""
    return label is not None if kind == "classification" else bool(output.strip())


def gold_and_pred(kind: str, examples: Sequence[Any], preds: Sequence[Any]) -> tuple[list, list]:
    """Gold targets of ``examples`` and the scored values of ``preds`` (Prediction objects)."""
    return [ex.target for ex in examples], [scored_value(kind, p.label, p.output) for p in preds]
