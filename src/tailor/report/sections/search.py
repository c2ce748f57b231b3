"""A prompt search's section: for each trial whose record holds a ``search`` (its details, as the search recorded
it), the winner and its prompt in full (:mod:`.search_prompt`), how it scored on each part of dev and on test (the
dev-vs-test gap), what the search spent, its finalists and its best-so-far curve. Everything comes from the trial's
record in the run store; nothing is rerun and no adapted folder is read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..figures.search import search_svg
from ..records import Records, searched
from .search_prompt import describe_candidate, winning_prompt

SPENT_KEYS = ("evaluations", "calls", "input_tokens", "output_tokens", "tokens", "money", "flops")
SERIES_KEYS = ("evaluations", "calls", "tokens", "money")


@dataclass(frozen=True)
class SearchSection:
    """One entry per trial that searched its prompt, in the run's order, as report.json's ``prompt_search`` keeps
    them (see :func:`search_entry`)."""

    entries: list[dict[str, Any]]

    def to_json(self) -> list[dict[str, Any]]:
        return self.entries


def build_search(records: Records) -> SearchSection | None:
    """The section of every finished trial that searched its prompt; None when none did."""
    primary = records.metrics[0]
    entries = [
        search_entry(t, primary, records.first_prompts.get(t["trial"]))
        for t in records.trials
        if searched(t) and t["status"] == "ok"
    ]
    return SearchSection(entries) if entries else None


def _value(metric: Any) -> float | None:
    """A score as a number: the row's test metrics hold ``{value, ci_low, ci_high}``, dev ones a bare float."""
    if isinstance(metric, dict):
        metric = metric.get("value")
    return float(metric) if isinstance(metric, (int, float)) else None


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def search_entry(trial: dict[str, Any], primary: str, sent: tuple[str, str] | None = None) -> dict[str, Any]:
    """One searched trial's entry, from its record: ``sent`` is its first dev example's id and the prompt exactly as
    sent for it (generative models)."""
    details = trial["details"]
    s = details["search"]
    metric = s.get("metric") or primary
    winner = s.get("winner") or {}
    select = _value(s.get("select_score"))
    dev = _value((trial.get("dev") or {}).get(metric))
    test = _value((trial.get("test") or {}).get(metric))
    candidates = s.get("candidates")
    demos = details.get("demonstrations")
    prompt = winning_prompt(details.get("prompt"), demos, s.get("space"), sent, winner)
    if prompt.get("shown") and len(prompt["shown"]) < len(demos or []) and trial.get("adapted_dir"):
        prompt["text"] += f"\n  … all {len(demos or [])} in {trial['adapted_dir']}/demonstrations.json"
    return {
        "trial": trial["trial"],
        "metric": metric,
        "currency": ((trial.get("costs") or {}).get("money") or {}).get("currency"),
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
        "candidates": len(candidates) if isinstance(candidates, list) else candidates,
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


def figures(section: SearchSection) -> list[str]:
    """Each searched trial's figure (:func:`tailor.report.figures.search.search_svg`), in order."""
    return [
        search_svg(s, "search" if i == 0 else f"search-{i + 1}", s.get("currency"))
        for i, s in enumerate(section.entries)
    ]
