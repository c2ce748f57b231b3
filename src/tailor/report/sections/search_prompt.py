"""A searched prompt as a person reads it, from the trial's record: the prompt as it was used (``details["prompt"]``,
one schema for every prompt-route method: :class:`tailor.prompting.UsedPrompt`) and the demonstrations it used
(``details["demonstrations"]``), stored with the trial by the run; and, for a generative model, the prompt exactly
as sent for one dev example (its stored prediction).

What is shown follows the record's fields, not the method's name: an instruction makes a generative prompt (its
parts), a template without one an encoder's prompt (the template and each label's words), demonstrations are
listed. A finalist of the search is told from its options alone, as the search's trace records it.
"""

from __future__ import annotations

import json
from typing import Any

from ..viewer import input_text

DEMOS_SHOWN = 50
"""A winner's demonstrations listed in the report (all of them stay in the run store and the adapted folder)."""


def _as_list(d: Any) -> list[str]:
    return [d] if isinstance(d, str) else [str(x) for x in d or []]


def _few_shot_choice(options: dict[str, Any], seed: int | None) -> str:
    """How a few-shot prompt chose its demonstrations and classifies, from its options."""
    k, select = options.get("k"), options.get("select", "balanced")
    how = "every training example" if k == "all" else f"k = {k} per class, chosen {select}"
    draw = f", draw seed {seed}" if k != "all" and select != "nearest" else ""
    return f"{how}{draw}, classified by {options.get('classify', 'centroid')}"


def describe_candidate(method: str | None, options: dict[str, Any], seed: int | None) -> str:
    """A candidate in one line, for a table of finalists (the search's trace keeps its method, options and seed)."""
    if method == "zero-shot":
        template = str((options.get("templates") or [options.get("template") or "{{ text }}"])[0])
        descriptions = options.get("label_descriptions") or {}
        described = "; ".join(f"{lb}: {' | '.join(_as_list(d))}" for lb, d in descriptions.items())
        combined = f", descriptions combined by {options['aggregate']}" if options.get("aggregate") else ""
        return f"zero-shot: {template!r}" + (f"; {described}" if described else "") + combined
    if method == "few-shot":
        return f"few-shot: {_few_shot_choice(options, seed)}"
    return f"{method}: {json.dumps(options, sort_keys=True, ensure_ascii=False)} (seed {seed})"


def winning_prompt(
    used: dict[str, Any] | None,
    demonstrations: list[dict[str, Any]] | None,
    space: dict[str, Any] | None = None,
    sent: tuple[str, str] | None = None,
    winner: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The winning prompt's parts (``form``, ``summary`` and those of its kind) and ``text``, the whole prompt written
    out, from the prompt as used (``used``, the trial's ``details["prompt"]``) and its ``demonstrations``; ``space``
    (the search's) tells where a template came from; ``sent`` is a dev example's id and the exact prompt sent for it.
    A store from before prompts were recorded has only the search's ``winner`` (method, options, seed): that is
    shown as it is."""
    if not used:
        w = winner or {}
        method, options, seed = w.get("method"), w.get("options") or {}, w.get("seed")
        text = f"{method} (seed {seed})\n" + json.dumps(options, indent=2, sort_keys=True, ensure_ascii=False)
        summary = f"a {method} prompt (seed {seed}; this run recorded its options only)"
        return {"form": method, "summary": summary, "options": options, "seed": seed, "text": text}
    if used.get("instruction") is not None:
        return _generative(used, demonstrations or [], sent)
    if used.get("template") is not None:
        return _template(used, space or {})
    return _demonstrated(used, demonstrations or [])


def _generative(used: dict[str, Any], demos: list[dict[str, Any]], sent: tuple[str, str] | None) -> dict[str, Any]:
    options, seed = used.get("options") or {}, used.get("seed")
    k = options.get("k") or 0
    chosen = "none" if not k else f"{k}, chosen {options.get('select', 'random')}, {options.get('demo_order', 'fixed')}"
    words = used.get("label_words") or {}
    lines = [
        f"Instruction: {used.get('instruction') or '(none)'}",
        f"Output format: {options.get('output_format') or '(none)'}",
        f"Answer prefix: {options.get('answer_prefix') or '(none)'}",
        *(["Verbalizers: " + "; ".join(f"{lb}: {' | '.join(_as_list(w))}" for lb, w in words.items())][: bool(words)]),
        f"Demonstrations: {chosen}" + (f" order, draw seed {seed}" if k else ""),
    ]
    if sent:
        lines += ["", f"As sent to the model for dev example {sent[0]}:", "", sent[1]]
    return {
        "form": used.get("method"),
        "summary": "a generative model's prompt (its parts, and as sent, below)",
        "options": options,
        "seed": seed,
        "demonstrations": len(demos),
        "example": {"id": sent[0], "prompt": sent[1]} if sent else None,
        "text": "\n".join(lines),
    }


def _template(used: dict[str, Any], space: dict[str, Any]) -> dict[str, Any]:
    template, options = used["template"], used.get("options") or {}
    descriptions = {lb: _as_list(d) for lb, d in (used.get("label_words") or {}).items()}
    origin = next((t.get("from") for t in space.get("templates") or [] if t.get("text") == template), None)
    aggregate = options.get("aggregate") or "mean"
    lines = ["Template:", template, ""]
    if origin:
        lines += [f"(from: {origin})", ""]
    several = any(len(d) > 1 for d in descriptions.values())
    lines.append("Label descriptions" + (f" (several combined by {aggregate}):" if several else ":"))
    for lb, ds in descriptions.items():
        lines += [f"  {lb}:", *(f"    - {d}" for d in ds)]
    return {
        "form": used.get("method"),
        "summary": f"a {used.get('method')} prompt (template and label descriptions below)",
        "template": template,
        "template_from": origin,
        "descriptions": descriptions,
        "aggregate": aggregate,
        "text": "\n".join(lines),
    }


def _demonstrated(used: dict[str, Any], demos: list[dict[str, Any]]) -> dict[str, Any]:
    options, seed = used.get("options") or {}, used.get("seed")
    per_input = options.get("select") == "nearest" and options.get("k") != "all"  # the record holds the pool
    shown = [] if per_input else [{"label": d.get("target"), "text": input_text(d.get("inputs"))} for d in demos]
    shown = shown[:DEMOS_SHOWN]
    lines = [f"Few-shot: {_few_shot_choice(options, seed)}."]
    if per_input:
        lines.append(f"Each input takes the k × classes training examples nearest to it, out of {len(demos)}.")
    else:
        lines.append(
            f"{len(demos)} demonstrations" + (f" (the first {len(shown)} shown):" if len(shown) < len(demos) else ":")
        )
        lines += [f"  [{d['label']}] {d['text']}" for d in shown]
    return {
        "form": used.get("method"),
        "summary": f"a {used.get('method')} prompt ({_few_shot_choice(options, seed)})",
        "k": options.get("k"),
        "select": options.get("select", "balanced"),
        "classify": options.get("classify", "centroid"),
        "neighbors": options.get("neighbors"),
        "seed": seed,
        "demonstrations": len(demos),
        "shown": shown,
        "text": "\n".join(lines),
    }
