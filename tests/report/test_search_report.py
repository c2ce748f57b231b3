"""A prompt search in the reports: from a run store holding a `prompt-search` trial whose search trace and prompt
record are written here by hand, report.json's ``prompt_search`` holds the winner and its prompt in full (from the
store's record alone: no adapted folder exists), the dev-vs-test gap, what was spent and the best-so-far curve as
the trace has it; report.md and report.html show them with the plot; a run without a search has no such section."""

from __future__ import annotations

import html
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from tailor.report.build import build, build_report, write_reports
from tailor.report.figures.search import search_svg
from tailor.report.sections.search import search_entry
from tailor.report.sections.search_prompt import winning_prompt
from tailor.runner.store import RunStore, TrialResult
from tailor.types import Example, Prediction

LABELS = ["negative", "positive"]
TEMPLATE = 'Review <b>&</b> | "{{ text }}" — all in all it was'
DESCRIPTIONS = {"negative": ["a bad film", "I hated it"], "positive": ["a good film"]}
ZERO_SHOT = {"templates": [TEMPLATE], "label_descriptions": DESCRIPTIONS, "aggregate": "max"}
FEW_SHOT = {"k": 2, "select": "balanced", "classify": "centroid"}
CANDIDATES = [
    {"method": "zero-shot", "options": {"templates": ["{{ text }}"], "label_descriptions": None}, "seed": 0},
    {"method": "zero-shot", "options": ZERO_SHOT, "seed": 0},
    {"method": "few-shot", "options": FEW_SHOT, "seed": 1},
]
# (candidate, part, metric, calls, money): candidate 1 rises above candidate 0, then is scored on a second
# minibatch (its mean falls but stays best), candidate 2 never leads; the last two are the held-out scorings.
SCORINGS = [
    (0, "search", 0.50, 10, 0.01),
    (1, "search", 0.80, 12, 0.02),
    (2, "search", 0.40, 30, 0.05),
    (1, "search", 0.70, 12, 0.02),
    (2, "search", 0.60, 30, 0.05),
    (1, "select", 0.75, 20, 0.03),
    (2, "select", 0.55, 50, 0.08),
]
DEV, TEST = 0.70, 0.625
DEMO_TEXTS = ["a wonderful film", "dull and long", "loved it", "hated it"]
DEMO_LABELS = ["positive", "negative", "positive", "negative"]


def _used(method: str, options: dict[str, Any], seed: int, **facts: Any) -> dict[str, Any]:
    """A prompt as a prompt-route method records it (``details["prompt"]``, :class:`tailor.prompting.UsedPrompt`)."""
    record = {"template": None, "instruction": None, "labels": LABELS, "label_words": None, "calibration": None}
    return {"method": method, "options": options, "seed": seed, **record, **facts}


ZERO_SHOT_USED = _used("zero-shot", ZERO_SHOT, 0, template=TEMPLATE, label_words=DESCRIPTIONS)
FEW_SHOT_USED = _used("few-shot", FEW_SHOT, 1)
DEMONSTRATIONS = [
    {"id": f"d{i}", "inputs": {"text": t}, "target": lb} for i, (t, lb) in enumerate(zip(DEMO_TEXTS, DEMO_LABELS))
]


def _cost(calls: int, money: float, evaluations: int = 1) -> dict[str, Any]:
    tokens = calls * 20
    return {
        "evaluations": evaluations,
        "calls": calls,
        "input_tokens": tokens,
        "output_tokens": 0,
        "tokens": tokens,
        "money": money,
        "flops": tokens * 1e6,
    }


def _trace(money: bool) -> list[dict[str, Any]]:
    """The trace as the search writes it: the best candidate's mean over its search minibatches so far, costs
    cumulated."""
    trace, seen, spent, best = [], {}, _cost(0, 0.0, 0), None
    for step, (cand, part, metric, calls, cash) in enumerate(SCORINGS):
        cost = _cost(calls, cash if money else 0.0)
        spent = {k: spent[k] + cost[k] for k in spent}
        if part == "search":
            seen.setdefault(cand, []).append(metric)
            mean = sum(seen[cand]) / len(seen[cand])
            best = mean if best is None else max(best, mean)
        trace.append(
            {
                "step": step,
                "candidate": cand,
                "part": part,
                "batch": step if part == "search" else 0,
                "metric": metric,
                "best_so_far": best,
                "cost": cost,
                "spent": spent,
            }
        )
    return trace


def _search(winner: int = 1, money: bool = False, candidates: Any = None) -> dict[str, Any]:
    trace = _trace(money)
    finalists = [
        {**CANDIDATES[1], "candidate": 1, "search_mean": 0.75, "search_whole": None, "select": 0.75},
        {**CANDIDATES[2], "candidate": 2, "search_mean": 0.50, "search_whole": 0.52, "select": 0.55},
    ]
    return {
        "winner": dict(CANDIDATES[winner]),
        "select_score": 0.75 if winner == 1 else 0.55,
        "search_score": None,
        "finalists": finalists,
        "spent": trace[-1]["spent"],
        "trials": 4,
        "stopped": "budget",
        "candidates": CANDIDATES if candidates is None else candidates,
        "parts": {"search": 20, "minibatches": 5, "select": 8},
        "trace": trace,
        "space": {
            "forms": ["zero-shot", "few-shot"],
            "templates": [{"text": "{{ text }}", "from": "given"}, {"text": TEMPLATE, "from": "add 'all in all'"}],
            "label_descriptions": {},
            "k": [1, 2, "all"],
            "draws": 2,
        },
        "metric": "accuracy",
    }


def _examples() -> list[Example]:
    return [Example(f"t{i}", {"text": f"review {i}"}, LABELS[i % 2]) for i in range(8)]


def _result(name: str, registered: str, dev: float, test: float, details: Any = None) -> TrialResult:
    return TrialResult(
        name,
        name,
        None,
        registered,
        "prompt",
        "ok",
        {},
        {"name": "enc"},
        0,
        dev={"accuracy": dev},
        test={"accuracy": {"value": test, "ci_low": test - 0.1, "ci_high": min(1.0, test + 0.1)}},
        costs={"adapt_seconds": 1.0, "predict_seconds_per_1k": 2.0, "trainable_params": 0, "disk_bytes": 10},
        adapted_dir=f"adapted/{name}",
        details=details,
    )


def _predictions(right: int) -> dict[str, list[tuple[Example, Prediction]]]:
    """Test predictions with the first ``right`` examples answered correctly."""
    out = []
    for i, ex in enumerate(_examples()):
        label = ex.target if i < right else LABELS[(i + 1) % 2]
        out.append((ex, Prediction(ex.id, label, label)))
    return {"test": out}


def _run(tmp_path: Path, details: dict[str, Any] | None) -> Path:
    """A finished run with a plain zero-shot trial and, when ``details`` is given, a prompt-search trial."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    store = RunStore(run_dir)
    store.start_run(
        task="search-report",
        seed=0,
        git_rev=None,
        task_file=None,
        config={
            "kind": "classification",
            "metrics": ["accuracy"],
            "model": {"name": "enc"},
            "stats": {"bootstrap": 50},
            "seed": 0,
        },
        versions={"tailor": "test"},
        data={
            "labels": LABELS,
            "rows_read": 40,
            "train": 20,
            "dev": 28,
            "test": 8,
            "skipped_rows": 0,
            "overlaps": [],
            "notes": [],
        },
    )
    store.add_result(_result("zero-shot", "zero-shot", 0.6, 0.5), _predictions(4))
    if details is not None:
        store.add_result(_result("prompt-search", "prompt-search", DEV, TEST, details), _predictions(5))
    store.finish_run("finished")
    store.close()
    return run_dir


def test_the_section_holds_the_winner_its_scores_and_the_dev_test_gap(tmp_path: Path) -> None:
    run_dir = _run(tmp_path, {"search": _search(), "prompt": ZERO_SHOT_USED})
    assert not (run_dir / "adapted").exists(), "the report reads the store's record, never an adapted folder"
    sections = build_report(run_dir)["prompt_search"]
    assert [s["trial"] for s in sections] == ["prompt-search"]  # the plain zero-shot trial has none
    s = sections[0]
    assert s["winner"] == {"method": "zero-shot", "options": ZERO_SHOT, "seed": 0}
    assert (s["select_score"], s["search_score"], s["dev_score"], s["test_score"]) == (0.75, None, DEV, TEST)
    assert s["gap"]["test_minus_select"] == pytest.approx(TEST - 0.75)
    assert s["gap"]["test_minus_dev"] == pytest.approx(TEST - DEV)
    assert s["spent"]["evaluations"] == 7 and s["spent"]["calls"] == sum(c for _, _, _, c, _ in SCORINGS)
    assert (s["trials"], s["stopped"], s["candidates"]) == (4, "budget", 3)
    assert [(f["candidate"], f["winner"], f["select"]) for f in s["finalists"]] == [(1, True, 0.75), (2, False, 0.55)]
    prompt = s["prompt"]
    assert prompt["form"] == "zero-shot" and prompt["template"] == TEMPLATE
    assert prompt["descriptions"] == DESCRIPTIONS and prompt["template_from"] == "add 'all in all'"
    assert TEMPLATE in prompt["text"] and all(d in prompt["text"] for ds in DESCRIPTIONS.values() for d in ds)


def test_the_best_so_far_series_follows_the_search_part_of_the_trace(tmp_path: Path) -> None:
    search = _search(money=True)
    s = build_report(_run(tmp_path, {"search": search, "prompt": ZERO_SHOT_USED}))["prompt_search"][0]
    series = s["series"]
    searched = [t for t in search["trace"] if t["part"] == "search"]
    assert len(series["best_so_far"]) == len(searched) == 5  # the held-out scorings are left out
    assert series["best_so_far"] == [t["best_so_far"] for t in searched]
    # candidate 1's mean falls to 0.75 on its second minibatch: the best so far, over every candidate's mean as the
    # search keeps it, stays at 0.8 and never falls
    assert series["best_so_far"] == pytest.approx([0.5, 0.8, 0.8, 0.8, 0.8])
    assert all(b >= a for a, b in zip(series["best_so_far"], series["best_so_far"][1:]))
    assert series["evaluations"] == [1, 2, 3, 4, 5]
    assert series["calls"] == [10, 22, 52, 64, 94]
    assert series["money"] == pytest.approx([0.01, 0.03, 0.08, 0.10, 0.15])
    assert series["score"] == [0.5, 0.8, 0.4, 0.7, 0.6] and series["candidate"] == [0, 1, 2, 1, 2]


def _svg_ids(svg: str) -> set[str]:
    return {e.get("id") for e in ET.fromstring(svg).iter() if e.get("id")}


@pytest.mark.slow
def test_the_plot_draws_evaluations_calls_and_money_only_when_spent(tmp_path: Path) -> None:
    free = search_entry({"trial": "ps", "details": {"search": _search()}, "status": "ok"}, "accuracy")
    paid = search_entry({"trial": "ps", "details": {"search": _search(money=True)}, "status": "ok"}, "accuracy")
    free_ids, paid_ids = _svg_ids(search_svg(free)), _svg_ids(search_svg(paid, currency="USD"))
    assert {"search-best-evaluations", "search-best-calls"} <= free_ids
    assert "search-best-money" not in free_ids and "search-best-money" in paid_ids
    assert "search-select" in free_ids and "search-test" not in free_ids  # no test score in a bare section
    # nothing to draw: no figure
    assert search_svg({**free, "series": {**free["series"], "best_so_far": []}}) == ""


@pytest.mark.slow
def test_markdown_and_html_show_the_prompt_in_full_the_gap_and_the_plot(tmp_path: Path) -> None:
    run_dir = _run(tmp_path, {"search": _search(), "prompt": ZERO_SHOT_USED})
    paths = write_reports(run_dir)
    md = paths["md"].read_text()
    section = md[md.index("## Prompt search") :]
    assert TEMPLATE in section and "a bad film" in section and "I hated it" in section and "a good film" in section
    assert f"{TEST - 0.75:+.3f}" in section and f"{TEST - DEV:+.3f}" in section
    assert "stopped because the budget ran out" in section
    page = paths["html"].read_text()
    assert 'id="section-search"' in page and '<svg id="plot-search"' in page
    pre = re.search(r'<pre class="prompt">(.*?)</pre>', page, flags=re.S)
    assert pre and "<b>" not in pre.group(1)  # escaped
    assert TEMPLATE in html.unescape(pre.group(1)) and "I hated it" in html.unescape(pre.group(1))
    assert "search-best-evaluations" in page
    assert json.loads(paths["json"].read_text())["prompt_search"][0]["gap"]["test_minus_dev"] == pytest.approx(
        TEST - DEV
    )


@pytest.mark.slow
def test_a_few_shot_winner_lists_its_demonstrations(tmp_path: Path) -> None:
    details = {"search": _search(winner=2), "prompt": FEW_SHOT_USED, "demonstrations": DEMONSTRATIONS}
    run_dir = _run(tmp_path, details)
    paths = write_reports(run_dir)
    s = json.loads(paths["json"].read_text())["prompt_search"][0]
    assert s["prompt"]["form"] == "few-shot" and s["prompt"]["demonstrations"] == 4
    assert (s["prompt"]["k"], s["prompt"]["select"], s["prompt"]["seed"]) == (2, "balanced", 1)
    assert s["gap"]["test_minus_select"] == pytest.approx(TEST - 0.55)
    md = paths["md"].read_text()
    assert all(f"[{lb}] {t}" in md for t, lb in zip(DEMO_TEXTS, DEMO_LABELS))


def test_the_words_shown_are_those_the_prompt_used_and_older_records_say_what_they_have() -> None:
    # The record holds every label's words as used, defaults filled in by the method: shown as they are.
    used = _used("zero-shot", {"templates": ["{{ text }}"]}, 0, template="{{ text }}", labels=["not_spam", "spam"])
    used["label_words"] = {"not_spam": ["not spam"], "spam": ["spam"]}
    assert winning_prompt(used, None)["descriptions"] == {"not_spam": ["not spam"], "spam": ["spam"]}
    # A store from before prompts were recorded: the winner's options as the search recorded them, nothing derived.
    older = search_entry({"trial": "ps", "details": {"search": _search(candidates=16)}, "status": "ok"}, "accuracy")
    assert older["candidates"] == 16  # older runs kept only the number of candidates
    assert older["prompt"]["options"] == ZERO_SHOT and "recorded its options only" in older["prompt"]["summary"]


def test_a_run_without_a_search_has_no_section(tmp_path: Path) -> None:
    run_dir = _run(tmp_path, None)
    paths = write_reports(run_dir)
    report = json.loads(paths["json"].read_text())
    assert report["prompt_search"] is None and build(run_dir).search is None
    assert "Prompt search" not in paths["md"].read_text()
    page = paths["html"].read_text()
    assert "section-search" not in page and "plot-search" not in page


def test_a_generative_winner_is_shown_by_its_parts_and_as_sent_for_a_dev_example() -> None:
    options = {
        "instruction": "Is the review positive or negative?",
        "output_format": "",
        "answer_prefix": "Answer:",
        "verbalizers": {"negative": ["bad"], "positive": ["good"]},
        "k": 4,
        "select": "balanced",
        "demo_order": "random",
    }
    sent = ("d7", "Is the review positive or negative?\n\nfine film\nAnswer: good\n\nreview 7\nAnswer:")
    words = {"negative": ["bad"], "positive": ["good"]}
    used = _used("prompt", options, 3, template="{{ text }}", instruction=options["instruction"], label_words=words)
    prompt = winning_prompt(used, [], None, sent)
    lines = prompt["text"].splitlines()
    assert "Instruction: Is the review positive or negative?" in lines and "Output format: (none)" in lines
    assert "Verbalizers: negative: bad; positive: good" in lines
    assert "Demonstrations: 4, chosen balanced, random order, draw seed 3" in lines
    assert prompt["text"].endswith("As sent to the model for dev example d7:\n\n" + sent[1])
    assert prompt["example"] == {"id": "d7", "prompt": sent[1]} and "prompt prompt" not in prompt["summary"]
    bare = winning_prompt({**used, "options": {**options, "k": 0}, "seed": 0}, [])
    assert "Demonstrations: none" in bare["text"] and "As sent" not in bare["text"] and bare["example"] is None
