"""A prompt as it was used, in one schema for every prompt-route method (zero-shot, few-shot, prompt, and a prompt
search's winner, which is one of them): stored with the trial as ``details["prompt"]`` and saved in its adapted
folder as ``prompt.json``; the demonstrations it used go beside it (``details["demonstrations"]``,
``demonstrations.json``), each as the example it was.

The record holds the facts a report reads without knowing the method (the template, the instruction, the words
standing for each label with their defaults filled in) and what adapting fitted (a calibration, the labels a
few-shot prompt's demonstrations cover). Loading a folder rebuilds the record from ``adapted.json`` and the fitted
facts, and refuses a folder whose ``prompt.json`` says otherwise (:func:`check_saved_prompt`): a folder predicts
only as it was evaluated.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, RootModel, StrictInt

from ..config.saved import ADAPTED_FILE, read_saved, validated
from ..config.strict import STRICT
from ..errors import FolderError
from ..types import Example

PROMPT_FILE = "prompt.json"
DEMONSTRATIONS_FILE = "demonstrations.json"


class UsedPrompt(BaseModel):
    """The prompt a prompt-route method used, as used."""

    model_config = STRICT

    method: Literal["zero-shot", "few-shot", "prompt"]
    """The prompt method (a prompt search's: the one its winner is)."""
    options: dict[str, Any]
    """That method's options, as validated (a prompt search's: its winner's)."""
    seed: StrictInt
    """The seed its demonstrations were drawn, and answers sampled, with."""
    template: str | None = None
    """The Jinja2 template one input is shown through: zero-shot's template, the prompt method's `input` part; null
    for few-shot (an input is embedded as it is)."""
    instruction: str | None = None
    """The prompt method's instruction ("" when it has none); null for zero-shot and few-shot (an encoder reads
    none)."""
    labels: list[str] | None = None
    """The labels it chooses among, in the order of its scores; null for generation tasks."""
    label_words: dict[str, list[str]] | None = None
    """The words standing for each label, defaults filled in: zero-shot's label descriptions (default: the label's
    name, underscores as spaces), the prompt method's verbalizers (default: the label); null for few-shot and for
    generation tasks."""
    calibration: list[float] | None = None
    """The prompt method with `scoring: calibrated`: each label's content-free log-probability, subtracted from its
    scores; null otherwise."""


class Demonstration(BaseModel):
    """One demonstration (or, chosen per input, one candidate): the training example as it was."""

    model_config = STRICT

    id: str
    inputs: dict[str, str]
    target: str | list[str] | None


class Demonstrations(RootModel[list[Demonstration]]):
    """``demonstrations.json``: the demonstrations, in order."""


_AGAIN = "; an adapted folder is predicted as it was evaluated: restore it, or run the method again"


def demonstration(ex: Example) -> dict[str, Any]:
    """``ex`` as stored and saved (references as a list)."""
    target = list(ex.target) if isinstance(ex.target, tuple) else ex.target
    return {"id": ex.id, "inputs": dict(ex.inputs), "target": target}


def prompt_details(prompt: UsedPrompt, demos: Sequence[Example]) -> dict[str, Any]:
    """What a prompt-route method stores with its trial: the prompt, and its demonstrations when it has any."""
    details: dict[str, Any] = {"prompt": prompt.model_dump(mode="json")}
    if demos:
        details["demonstrations"] = [demonstration(d) for d in demos]
    return details


def save_prompt(folder: Path, prompt: UsedPrompt, demos: Sequence[Example] | None = None) -> None:
    """``prompt.json``, and ``demonstrations.json`` unless ``demos`` is None (a method that never has any)."""
    (folder / PROMPT_FILE).write_text(json.dumps(prompt.model_dump(mode="json"), indent=2, ensure_ascii=False))
    if demos is not None:
        rows = [demonstration(d) for d in demos]
        (folder / DEMONSTRATIONS_FILE).write_text(json.dumps(rows, indent=1, ensure_ascii=False))


def read_prompt(folder: Path) -> UsedPrompt:
    """``prompt.json``, validated."""
    return read_saved(folder / PROMPT_FILE, UsedPrompt, _AGAIN)


def read_demonstrations(folder: Path, labels: Sequence[str] | None) -> list[Example]:
    """``demonstrations.json``, validated; a classification demonstration's target must be one of ``labels``."""
    file = folder / DEMONSTRATIONS_FILE
    if not file.is_file():
        raise FolderError(str(file), None, f"missing from the adapted folder{_AGAIN}")
    try:
        rows = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FolderError(str(file), None, f"expected a JSON list as tailor writes it ({exc}){_AGAIN}") from None
    out = []
    for i, d in enumerate(validated(rows, Demonstrations, str(file), hint=_AGAIN).root):
        if labels is not None and d.target not in labels:
            raise FolderError(
                str(file), f"[{i}].target", f"{d.target!r} is not among the labels {list(labels)}{_AGAIN}"
            )
        out.append(Example(d.id, d.inputs, tuple(d.target) if isinstance(d.target, list) else d.target))
    return out


def check_saved_prompt(folder: Path, saved: UsedPrompt, made: UsedPrompt) -> None:
    """Refuse a folder whose ``prompt.json`` (``saved``) is not the prompt its ``adapted.json`` makes (``made``, from
    the options, seed and task there and the fitted facts of ``saved``), naming the first key where they differ."""
    was, now = saved.model_dump(mode="json"), made.model_dump(mode="json")
    for key in was:
        if was[key] == now[key]:
            continue
        if key in ("options", "seed", "method"):  # a fact of adapted.json, which the saved prompt was made with
            sub = _first_difference(was[key], now[key])
            at = f"{key}.{sub}" if sub else key
            raise FolderError(
                str(folder / ADAPTED_FILE),
                at,
                f"{_get(now[key], sub)!r} makes another prompt than the one this folder's run used and evaluated "
                f"({PROMPT_FILE}: {at}: {_get(was[key], sub)!r}){_AGAIN}",
            )
        raise FolderError(
            str(folder / PROMPT_FILE),
            key,
            f"{was[key]!r}, but the options and task in {ADAPTED_FILE} make {now[key]!r}{_AGAIN}",
        )


def _first_difference(a: Any, b: Any) -> str:
    """The first key (dotted) where two option dicts differ; "" when they are not both dicts."""
    if not (isinstance(a, dict) and isinstance(b, dict)):
        return ""
    for k in [*a, *(k for k in b if k not in a)]:
        if a.get(k) != b.get(k):
            deeper = _first_difference(a.get(k), b.get(k))
            return f"{k}.{deeper}" if deeper else str(k)
    return ""


def _get(value: Any, key: str) -> Any:
    for part in key.split(".") if key else ():
        value = value.get(part) if isinstance(value, dict) else None
    return value
