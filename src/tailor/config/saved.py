"""An adapted folder's files as data: ``adapted.json`` (:class:`AdaptedFile`), written and read by one pydantic model,
and :func:`read_saved`, which reads any JSON file of a folder into its model. Unknown keys are errors, and every error
names the file, the key and what was expected.

Each fact of a folder has one home. ``adapted.json`` holds the method, its options, the seed, the task (its labels
among them) and the model; a method's own files hold only what adapting produced (weights, a head, demonstrations, a
calibration) and the record of what it used, which must agree with ``adapted.json`` (each method checks that as it
loads the folder).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, Field, StrictInt, ValidationError

from ..errors import FolderError
from ..types import TaskKind
from .strict import STRICT
from .task import dotted_key

ADAPTED_FILE = "adapted.json"

Saved = TypeVar("Saved", bound=BaseModel)


class TaskFacts(BaseModel):
    """What ``adapted.json`` says of the task: what a method may know of it (never its data)."""

    model_config = STRICT

    name: str
    """The task's name."""
    kind: TaskKind
    """classification, qa, summarization or translation."""
    labels: list[str] | None = None
    """Classification: the labels, in the task's order (the only record of them in the folder); else null."""
    input_fields: list[str] = Field(min_length=1)
    """The input fields an example to predict must have."""
    metrics: list[str] = Field(min_length=1)
    """The task's metrics, the primary one first."""


class AdaptedFile(BaseModel):
    """``adapted.json``: what ``tailor predict`` needs to load an adapted folder on its own."""

    model_config = STRICT

    tailor_version: str | None = None
    """The tailor that wrote the folder (null: not recorded)."""
    method: str
    """The registered method whose files the folder holds (a prompt search's winner: the prompt method it is)."""
    name: str | None = None
    """The trial's name in its run (null: not recorded)."""
    options: dict[str, Any] = Field(default_factory=dict)
    """The method's options, as its ``Options`` model validates them (left out: its defaults)."""
    seed: StrictInt
    """The seed the method adapted with (demonstrations drawn, answers sampled)."""
    task: TaskFacts
    """The task, as the method knew it."""
    model: dict[str, Any]
    """The base model's spec (as a task file's ``model:``; a model beside the run is named relative to the folder)."""

    def write(self, folder: Path) -> None:
        (folder / ADAPTED_FILE).write_text(json.dumps(self.model_dump(mode="json"), indent=2, ensure_ascii=False))


def read_saved(path: Path, schema: type[Saved], hint: str = "") -> Saved:
    """The JSON file ``path`` as ``schema``; a file that can't be read or doesn't fit is a :class:`FolderError` at the
    key that doesn't (``hint``, appended to its message, says what to do)."""
    if not path.is_file():
        raise FolderError(str(path), None, f"missing from the adapted folder{hint}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # ValueError: not JSON, or not UTF-8
        raise FolderError(str(path), None, f"expected a JSON file as tailor writes it ({exc}){hint}") from None
    return validated(data, schema, str(path), hint=hint)


def validated(data: Any, schema: type[Saved], file: str, *, at: str = "", hint: str = "", known: str = "") -> Saved:
    """``data`` as ``schema``, or a :class:`FolderError` naming ``file`` and the key (under ``at``, e.g. ``options``)
    that doesn't fit; ``known`` says which keys are allowed there, for an unknown one."""
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(k for k in (at, dotted_key(err["loc"])) if k)
        if err["type"] == "extra_forbidden":
            problem = "unknown key" + (f" ({known})" if known else "")
        elif err["type"] == "missing":
            problem = "required key is missing"
        else:
            got = json.dumps(err.get("input"), default=str, ensure_ascii=False)
            problem = f"{err['msg'].removeprefix('Value error, ')}, got {got[:60]}"
        raise FolderError(file, key or None, problem + hint) from None


def check_labels(found: Sequence[str], labels: Sequence[str] | None, file: Path, key: str) -> None:
    """Refuse a folder whose own record of labels (a head's classes, a classifier's rows) names a label that the
    task's labels in ``adapted.json`` lack: it would predict a label the folder doesn't declare."""
    outside = [lb for lb in found if lb not in (labels or ())]
    if outside:
        raise FolderError(
            str(file),
            key,
            f"the folder answers {list(found)}, but {ADAPTED_FILE}'s task.labels ({list(labels or [])}) lack "
            f"{', '.join(map(repr, outside))}: expected each label it answers among them; restore task.labels, or run "
            "the method again",
        )
