"""`encoder-full` keeps its best dev epoch by the task's primary metric, as the run scores it (not by accuracy)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from tailor.contract import TaskInfo
from tailor.methods.encoder_full import dev_metric


@pytest.mark.parametrize(("metric", "expected"), [("accuracy", 4 / 6), ("macro_f1", 0.8 / 3)])
def test_each_epoch_is_judged_by_the_tasks_primary_metric(metric: str, expected: float) -> None:
    task = TaskInfo("mini", "classification", ("a", "b", "c"), ("text",), (metric, "accuracy"))
    # every example called `a`: right on four of six, but no recall at all on `b` and `c`
    logits = np.tile([[3.0, 1.0, 0.0]], (6, 1))
    evaluation = SimpleNamespace(predictions=logits, label_ids=np.array([0, 0, 0, 0, 1, 2]))
    assert dev_metric(task)(evaluation) == {"primary": pytest.approx(expected)}
