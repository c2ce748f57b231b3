"""Loading an exported adapted model and predicting with it: what `tailor predict` does."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .config import ModelSpec
from .contract import Adapted, Context, TaskInfo
from .data import read_rows
from .errors import DataError, TailorError
from .progress import NULL_PROGRESS, Progress
from .record import ADAPTED_FILE
from .types import Example, Prediction


def load_adapted(path: str | Path, progress: Progress = NULL_PROGRESS) -> tuple[Adapted, dict[str, Any]]:
    """Load what a run saved for one method. Returns the adapted model and its metadata."""
    from .methods import get_method

    path = Path(path)
    meta_file = path / ADAPTED_FILE
    if not meta_file.is_file():
        raise TailorError(
            f"{path}: not an adapted model folder (no {ADAPTED_FILE}); use a folder under RUN_DIR/adapted/"
        )
    meta = json.loads(meta_file.read_text())
    method = get_method(meta["method"])
    ctx = Context(
        task=TaskInfo.from_dict(meta["task"]),
        model=ModelSpec(**meta["model"]),
        seed=meta["seed"],
        workdir=path,
        progress=progress,
    )
    return method.load(path, ctx), meta


def read_inputs(path: str | Path, input_fields: Sequence[str], id_field: str | None = None) -> list[Example]:
    """Read examples to predict (no target needed). Every row must have the input fields, non-empty."""
    name, rows = read_rows(str(path), Path.cwd(), None, "input", origin="command line")
    out = []
    stem = Path(name).stem
    for lineno, row in rows:
        where = f"{name}:{lineno}"
        if isinstance(row, DataError):
            raise row
        if not isinstance(row, dict):
            raise DataError(where, f"expected an object with fields, got {type(row).__name__}")
        inputs = {}
        for col in input_fields:
            value = row.get(col)
            if not isinstance(value, str) or not value.strip():
                raise DataError(where, f"input column {col!r} missing or empty (needed: {', '.join(input_fields)})")
            inputs[col] = value
        ex_id = str(row[id_field]) if id_field and id_field in row else str(row.get("id", f"{stem}:{lineno}"))
        out.append(Example(id=ex_id, inputs=inputs, target=None, source=where))
    return out


def predict_file(
    adapted_dir: str | Path, input_path: str | Path, progress: Progress = NULL_PROGRESS
) -> Iterator[tuple[Example, Prediction]]:
    from .evaluate import predict_all

    adapted, meta = load_adapted(adapted_dir, progress)
    examples = read_inputs(input_path, meta["task"]["input_fields"])
    yield from zip(examples, predict_all(adapted, examples, progress, "predicting"))
