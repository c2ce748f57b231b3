"""A prompt search's part of the report: for each trial whose details hold a ``search`` (see
:mod:`tailor.methods.prompt_search`), the winner and its prompt in full, how it scored on each part of dev and on
test (the dev-vs-test gap), what the search spent, its finalists and its best-so-far curve.

Everything comes from the run store (the trial's row and details) and, for the demonstrations of a few-shot winner,
the trial's adapted folder; nothing is rerun.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DEMOS_SHOWN = 50
"""A few-shot winner's demonstrations listed in the report (all of them stay in the adapted folder)."""

SPENT_KEYS = ("evaluations", "calls", "input_tokens", "output_tokens", "tokens", "money", "flops")
SERIES_KEYS = ("evaluations", "calls", "tokens", "money")


def search_section(
    rows: Sequence[dict[str, Any]],
    primary: str,
    run_dir: Path | None = None,
    labels: Sequence[str] | None = None,
    sent: dict[str, tuple[str, str]] | None = None,
) -> list[dict[str, Any]] | None:
    """One entry per trial that searched its prompt (report rows or the store's results alike), in their order;
    None when no trial did. ``run_dir`` lets a few-shot winner's demonstrations be read from its adapted folder and a
    zero-shot winner's descriptions as saved; ``labels`` fills descriptions a winner left at their default; ``sent``
    holds, by trial, a dev example's id and the exact prompt the winner sent the model for it (generative models)."""
    out = [
        searched(r, primary, run_dir, labels, (sent or {}).get(r["method"]))
        for r in rows
        if isinstance((r.get("details") or {}).get("search"), dict) and r.get("status", "ok") == "ok"
    ]
    return out or None


def _value(metric: Any) -> float | None:
    """A score as a number: the row's test metrics hold ``{value, ci_low, ci_high}``, dev ones a bare float."""
    if isinstance(metric, dict):
        metric = metric.get("value")
    return float(metric) if isinstance(metric, (int, float)) else None


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def searched(
    row: dict[str, Any],
    primary: str,
    run_dir: Path | None = None,
    labels: Sequence[str] | None = None,
    sent: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """The search section of one trial (see :func:`search_section`)."""
    s = row["details"]["search"]
    metric = s.get("metric") or primary
    winner = s.get("winner") or {}
    select = _value(s.get("select_score"))
    dev = _value((row.get("dev") or {}).get(metric))
    test = _value((row.get("test") or {}).get(metric))
    candidates = s.get("candidates")
    n_candidates = len(candidates) if isinstance(candidates, list) else candidates
    adapted = _adapted_folder(row.get("adapted_dir"), run_dir)
    prompt = winning_prompt(winner, s.get("space") or {}, adapted, labels, sent)
    if prompt.get("shown") and len(prompt["shown"]) < (prompt.get("demonstrations") or 0) and row.get("adapted_dir"):
        prompt["text"] += f"\n  … all {prompt['demonstrations']} in {row['adapted_dir']}/demonstrations.json"
    return {
        "trial": row["method"],
        "metric": metric,
        "currency": ((row.get("costs") or {}).get("money") or {}).get("currency"),
        "winner": {"method": winner.get("method"), "options": winner.get("options") or {}, "seed": winner.get("seed")},
        "prompt": prompt,
        "select_score": select,
        "search_score": _value(s.get("search_score")),
        "dev_score": dev,
        "test_score": test,
        "gap": {"test_minus_select": _minus(test, select), "test_minus_dev": _minus(test, dev)},
        "parts": s.get("parts") or {},
        "spent": {k: (s.get("spent") or {}).get(k) for k in SPENT_KEYS},
        "trials": s.get("trials"),
        "stopped": s.get("stopped"),
        "candidates": n_candidates,
        "finalists": [_finalist(f, winner) for f in s.get("finalists") or []],
        "series": best_so_far_series(s.get("trace") or []),
    }


def best_so_far_series(trace: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
    """The search's progress, one point per scoring on the search part of dev (in scoring order): the cumulative
    evaluations, calls, tokens and money spent by then, the best mean score of any candidate so far, and the score
    of that scoring (its candidate on one minibatch). Scorings of the finalists on the held-out part are left out:
    they choose the winner, they don't search."""
    out: dict[str, list[Any]] = {k: [] for k in (*SERIES_KEYS, "best_so_far", "score", "candidate")}
    for step in trace:
        if step.get("part") != "search" or step.get("best_so_far") is None:
            continue
        spent = step.get("spent") or {}
        for k in SERIES_KEYS:
            out[k].append(spent.get(k))
        out["best_so_far"].append(step["best_so_far"])
        out["score"].append(step.get("metric"))
        out["candidate"].append(step.get("candidate"))
    return out


def _finalist(f: dict[str, Any], winner: dict[str, Any]) -> dict[str, Any]:
    same = all(f.get(k) == winner.get(k) for k in ("method", "options", "seed"))
    return {
        "candidate": f.get("candidate"),
        "prompt": describe_candidate(f.get("method"), f.get("options") or {}, f.get("seed")),
        "search_mean": f.get("search_mean"),
        "search_whole": f.get("search_whole"),
        "select": f.get("select"),
        "winner": same,
    }


def describe_candidate(method: str | None, options: dict[str, Any], seed: int | None) -> str:
    """A candidate in one line, for a table of finalists."""
    if method == "zero-shot":
        template = _template(options)
        descriptions = options.get("label_descriptions") or {}
        described = "; ".join(f"{lb}: {' | '.join(_as_list(d))}" for lb, d in descriptions.items())
        return f"zero-shot: {template!r}" + (f"; {described}" if described else "") + _aggregate(options, ", ")
    if method == "few-shot":
        return f"few-shot: {_few_shot_choice(options, seed)}"
    return f"{method}: {json.dumps(options, sort_keys=True, ensure_ascii=False)} (seed {seed})"


def _as_list(d: Any) -> list[str]:
    return [d] if isinstance(d, str) else [str(x) for x in d or []]


def _template(options: dict[str, Any]) -> str:
    templates = options.get("templates") or [options.get("template") or "{{ text }}"]
    return str(templates[0])


def _aggregate(options: dict[str, Any], sep: str) -> str:
    return f"{sep}descriptions combined by {options['aggregate']}" if options.get("aggregate") else ""


def _few_shot_choice(options: dict[str, Any], seed: int | None) -> str:
    k, select = options.get("k"), options.get("select", "balanced")
    how = "every training example" if k == "all" else f"k = {k} per class, chosen {select}"
    draw = f", draw seed {seed}" if k != "all" and select != "nearest" else ""
    return f"{how}{draw}, classified by {options.get('classify', 'centroid')}"


def _adapted_folder(adapted_dir: str | None, run_dir: Path | None) -> Path | None:
    if not adapted_dir:
        return None
    path = Path(adapted_dir)
    if not path.is_absolute():
        if run_dir is None:
            return None
        path = run_dir / path
    return path if path.is_dir() else None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def winning_prompt(
    winner: dict[str, Any],
    space: dict[str, Any],
    adapted: Path | None = None,
    labels: Sequence[str] | None = None,
    sent: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """The winning prompt as a person reads it: its parts (``form`` and those of its kind) and ``text``, the whole
    prompt written out. A zero-shot prompt: its template (and where the search got it), every label's descriptions
    and how they combine. A few-shot prompt: how many demonstrations, how chosen and which draw, how an input is
    classified, and the demonstrations themselves (the first :data:`DEMOS_SHOWN`) when the adapted folder has them. A
    generative model's prompt: its parts, then the prompt exactly as sent for one dev example (``sent``)."""
    method, options, seed = winner.get("method"), winner.get("options") or {}, winner.get("seed")
    if method == "zero-shot":
        return _zero_shot_prompt(options, space, adapted, labels)
    if method == "few-shot":
        return _few_shot_prompt(options, seed, adapted)
    if method == "prompt":
        return _generative_prompt(options, seed, sent)
    text = f"{method} (seed {seed})\n" + json.dumps(options, indent=2, sort_keys=True, ensure_ascii=False)
    summary = f"a {method} prompt (seed {seed})"
    return {"form": method, "summary": summary, "options": options, "seed": seed, "text": text}


def _generative_prompt(options: dict[str, Any], seed: int | None, sent: tuple[str, str] | None) -> dict[str, Any]:
    k = options.get("k") or 0
    demos = "none" if not k else f"{k}, chosen {options.get('select', 'random')}, {options.get('demo_order', 'fixed')}"
    words = options.get("verbalizers") or {}
    lines = [
        f"Instruction: {options.get('instruction') or '(none)'}",
        f"Output format: {options.get('output_format') or '(none)'}",
        f"Answer prefix: {options.get('answer_prefix') or '(none)'}",
        *(["Verbalizers: " + "; ".join(f"{lb}: {' | '.join(_as_list(w))}" for lb, w in words.items())][: bool(words)]),
        f"Demonstrations: {demos}" + (f" order, draw seed {seed}" if k else ""),
    ]
    if sent:
        lines += ["", f"As sent to the model for dev example {sent[0]}:", "", sent[1]]
    return {
        "form": "prompt",
        "summary": "a generative model's prompt (its parts, and as sent, below)",
        "options": options,
        "seed": seed,
        "example": {"id": sent[0], "prompt": sent[1]} if sent else None,
        "text": "\n".join(lines),
    }


def _zero_shot_prompt(
    options: dict[str, Any], space: dict[str, Any], adapted: Path | None, labels: Sequence[str] | None
) -> dict[str, Any]:
    template = _template(options)
    saved = _read_json(adapted / "prompt.json") if adapted else None
    if saved and saved.get("template") == template and isinstance(saved.get("descriptions"), dict):
        descriptions = {lb: _as_list(d) for lb, d in saved["descriptions"].items()}
    else:
        given = options.get("label_descriptions") or {}
        names = list(labels or []) + [lb for lb in given if lb not in (labels or [])]
        descriptions = {lb: _as_list(given[lb]) if lb in given else [lb.replace("_", " ")] for lb in names}
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
        "form": "zero-shot",
        "summary": "a zero-shot prompt (template and label descriptions below)",
        "template": template,
        "template_from": origin,
        "descriptions": descriptions,
        "aggregate": aggregate,
        "text": "\n".join(lines),
    }


def _few_shot_prompt(options: dict[str, Any], seed: int | None, adapted: Path | None) -> dict[str, Any]:
    saved = _read_json(adapted / "demonstrations.json") if adapted else None
    texts = [str(t) for t in (saved or {}).get("texts") or []]
    demo_labels = [str(t) for t in (saved or {}).get("labels") or []]
    nearest = options.get("select") == "nearest" and options.get("k") != "all"
    count = len(texts) if saved else None
    shown = [] if nearest else [{"label": lb, "text": t} for lb, t in zip(demo_labels, texts)][:DEMOS_SHOWN]
    lines = [f"Few-shot: {_few_shot_choice(options, seed)}."]
    if nearest:
        lines.append(
            "Each input takes the k × classes training examples nearest to it"
            + (f", out of {count}." if count is not None else ".")
        )
    elif count is not None:
        lines.append(f"{count} demonstrations" + (f" (the first {len(shown)} shown):" if len(shown) < count else ":"))
        lines += [f"  [{d['label']}] {d['text']}" for d in shown]
    return {
        "form": "few-shot",
        "summary": f"a few-shot prompt ({_few_shot_choice(options, seed)})",
        "k": options.get("k"),
        "select": options.get("select", "balanced"),
        "classify": options.get("classify", "centroid"),
        "neighbors": options.get("neighbors"),
        "seed": seed,
        "demonstrations": count,
        "shown": shown,
        "text": "\n".join(lines),
    }
