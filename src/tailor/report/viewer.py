"""The per-example viewer's data: every test example once, and each chosen trial's answer to it, from the stored
predictions (:attr:`tailor.report.records.Records.test_predictions`), compact enough to embed in report.html for a
test set of thousands.

Each method's prompts usually share a long beginning (an instruction, the same demonstrations): it is stored once per
method in ``prompt_prefixes`` and each answer keeps the rest, so the prompt a method used for an example is
``prompt_prefixes[method] + prompt`` (``prompt`` None: the method writes no prompt, e.g. a trained head).
"""

from __future__ import annotations

import json
import os
from typing import Any

from ..stats.outcomes import scored_value


def _as_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def input_text(fields: Any) -> str:
    """An example's input as one string: a single field's text, or ``name: text`` per line for several fields."""
    if not isinstance(fields, dict):
        return _as_text(fields) or ""
    if len(fields) == 1:
        return _as_text(next(iter(fields.values()))) or ""
    return "\n".join(f"{name}: {_as_text(value) or ''}" for name, value in fields.items())


def _prefix(prompts: list[str]) -> str:
    """The beginning all ``prompts`` share, cut at a line break when there is one (so the rest reads whole)."""
    if len(prompts) < 2:
        return ""
    common = os.path.commonprefix(prompts)
    cut = common.rfind("\n")
    return common[: cut + 1] if cut >= 0 else ""


def viewer_data(
    kind: str, stored: dict[str, list[dict[str, Any]]], methods: list[str], split: str = "test"
) -> dict[str, Any]:
    """The viewer's data for the trials ``methods`` on ``split``, from their ``stored`` predictions there (by trial,
    as :meth:`tailor.runner.store.RunStore.predictions` gives them): ``examples`` ({id, input, gold}) in the order of
    their ids, and per trial one answer per example, aligned with them ({output, label, prompt, correct, error}; None
    where the trial has no prediction for the example).

    ``correct`` is whether the label is the gold one for classification, None for text tasks (there the output is
    shown and judged by its metrics, not right or wrong)."""
    predictions = {m: {p["example_id"]: p for p in stored.get(m, [])} for m in methods}
    examples: dict[str, dict[str, Any]] = {}
    for preds in predictions.values():
        for example_id, p in preds.items():
            if example_id not in examples:
                examples[example_id] = {"id": example_id, "input": input_text(p["input"]), "gold": p["target"]}
    order = sorted(examples)
    outputs: dict[str, list[dict[str, Any] | None]] = {}
    prefixes: dict[str, str] = {}
    for method in methods:
        preds = predictions[method]
        prompts = [t for p in preds.values() if (t := _as_text(p.get("prompt"))) is not None]
        prefix = prefixes[method] = _prefix(prompts)
        rows: list[dict[str, Any] | None] = []
        for example_id in order:
            p = preds.get(example_id)
            if p is None:
                rows.append(None)
                continue
            prompt = _as_text(p.get("prompt"))
            correct = None
            if kind == "classification":
                correct = p["error"] is None and scored_value(kind, p["label"], p["output"]) == p["target"]
            rows.append(
                {
                    "output": p["output"],
                    "label": p["label"],
                    "prompt": None if prompt is None else prompt[len(prefix) :],
                    "correct": correct,
                    "error": p["error"],
                }
            )
        outputs[method] = rows
    return {
        "kind": kind,
        "split": split,
        "methods": list(methods),
        "examples": [examples[i] for i in order],
        "outputs": outputs,
        "prompt_prefixes": prefixes,
    }


def disagreements(data: dict[str, Any], a: str, b: str) -> int:
    """How many examples ``a`` and ``b`` answer differently (the viewer's "A and B disagree" filter): a different
    label for classification, a different output for text; an example one of them has no answer for counts."""
    key = "label" if data["kind"] == "classification" else "output"
    count = 0
    for x, y in zip(data["outputs"][a], data["outputs"][b]):
        if x is None or y is None:
            count += x is not y
        else:
            count += x[key] != y[key]
    return count


def script_json(data: Any) -> str:
    """``data`` as JSON that is safe inside an HTML ``<script>`` element: no ``<``, ``>`` or ``&`` appear (they are
    written as JSON's ``\\u`` escapes, which ``JSON.parse`` reads back), so no text in it can close the element."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
