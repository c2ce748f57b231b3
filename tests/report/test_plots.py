"""The report's figures and page without a browser: each plot is well-formed SVG with one drawn series per method
(and nothing for nothing to draw), report.html renders with and without its curve and cost sections and fetches
nothing from outside the file, and the viewer's embedded JSON reads back whole, whatever the examples contain."""

from __future__ import annotations

import copy
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from tailor.report.document import Report
from tailor.report.figures.costs import break_even_svg, pareto_front, pareto_svg
from tailor.report.figures.curve import learning_curves_svg
from tailor.report.page import html, markdown
from tailor.report.sections import costs as costs_section
from tailor.report.sections.comparisons import Comparisons
from tailor.report.sections.costs import CostsSection
from tailor.report.sections.curve import CurveSection
from tailor.report.sections.curve import figure as curve_figure
from tailor.report.sections.leaderboard import Row, route_groups
from tailor.report.sections.overview import Overview
from tailor.report.viewer import disagreements, script_json, viewer_data

SIZES = {"0": 0.0, "2": 2.0, "4": 4.0, "8": 8.0, "all": 20.0}


def _points(means: dict[str, float]) -> dict[str, Any]:
    return {
        size: {
            "x": SIZES[size],
            "mean": m,
            "std": 0.02,
            "n_seeds": 3,
            "band_low": m - 0.02,
            "band_high": m + 0.02,
            "seeds": [0, 1, 2],
            "values": [m - 0.02, m, m + 0.02],
            "dev_mean": m,
        }
        for size, m in means.items()
    }


def _curve(crossing: float | None = 3.0) -> dict[str, Any]:
    return {
        "unit": "per class",
        "metric": "accuracy",
        "sizes": list(SIZES),
        "x": SIZES,
        "seeds": [0, 1, 2],
        "methods": {
            "zero-shot": {"route": "prompt", "points": _points({"0": 0.62})},
            "few-shot": {"route": "prompt", "points": _points({"2": 0.66, "4": 0.68, "8": 0.7, "all": 0.71})},
            "head": {"route": "finetune", "points": _points({"2": 0.55, "4": 0.7, "8": 0.8, "all": 0.9})},
        },
        "routes": {},
        "crossover": {
            "n": crossing,
            "ci_low": 2.5 if crossing else None,
            "ci_high": None,
            "status": "crossing" if crossing else "prompt ahead at every size",
            "ci_note": "its upper end is beyond the largest size",
            "seeds": 3,
            "confidence": 0.95,
            "method": "paired t over seeds, inverted",
        },
        "variance_aware": {"n": 4.0, "p_ahead": {"2": 0.2, "4": 0.7, "8": 1.0, "all": 1.0}},
        "data_advantage": {"examples": 2.4, "error": 0.6, "range": [0.62, 0.71], "seeds": 3, "flat": False},
        "p_better": {"2": [{"a": "few-shot", "b": "head", "p": 0.9}]},
        "notes": [],
        "break_even": [],
        "verdict": ["Fine-tuning overtakes prompting from about n* = 3.0 examples per class."],
    }


def _entry(prompt: str, finetune: str, unit: str, queries: float | None, **costs: float) -> dict[str, Any]:
    return {
        "prompt": prompt,
        "finetune": finetune,
        "unit": unit,
        "currency": "USD" if unit == "money" else None,
        "queries": queries,
        "cheaper_below": "prompt",
        "cheaper_above": "finetune" if queries else "prompt",
        "sentence": f"prompt is cheaper up to {queries:,.0f} queries, finetune beyond" if queries else "prompt wins",
        "quality_difference": 0.05,
        "sensitivity": {"finetune.adapt×2": queries and 2 * queries, "finetune.adapt÷2": queries and queries / 2}
        if unit == "money"
        else None,
        "adapt": {"prompt": costs["pa"], "finetune": costs["fa"]},
        "per_query": {"prompt": costs["pq"], "finetune": costs["fq"]},
    }


def _trial(seconds: float, money: float | None, per_1k_money: float | None) -> dict[str, Any]:
    return {
        "adapt": {"seconds": seconds, "flops": 1e12, "money": money},
        "per_1k": {"tokens": 12_000.0, "flops": 3e11, "seconds": 4.0, "money": per_1k_money},
        "device": "cpu",
        "served": False,
        "currency": "USD",
        "missing": [],
    }


def _costs(money: bool = True) -> dict[str, Any]:
    m = 1.0 if money else None
    return {
        "prices": {"currency": "USD", "cpu_hour": 0.1 if money else None, "gpu_hour": None, "models": {}},
        "trials": {
            "zero-shot": _trial(0.1, m and 1e-5, m and 2e-4),
            "few-shot": _trial(0.2, m and 2e-5, m and 3e-4),
            "head": _trial(30.0, m and 1e-3, m and 1e-4),
        },
        "break_even": [
            _entry("zero-shot", "head", "money", 9_900.0, pa=1e-5, fa=1e-3, pq=2e-7, fq=1e-7),
            _entry("few-shot", "head", "money", 4_900.0, pa=2e-5, fa=1e-3, pq=3e-7, fq=1e-7),
            _entry("zero-shot", "head", "seconds", None, pa=0.1, fa=30.0, pq=0.004, fq=0.004),
        ]
        if money
        else [],
        "missing": [] if money else ["add `costs.cpu_hour` (money per CPU-hour) to the task file"],
    }


def _row(method: str, route: str, value: float | None, status: str = "ok") -> Row:
    test = {"accuracy": {"value": value, "ci_low": value - 0.05, "ci_high": value + 0.05}} if value else None
    return Row(
        trial=method,
        family=method,
        variant=None,
        method=method,
        route=route,
        status=status,
        error=None if status == "ok" else "RuntimeError: boom",
        options={},
        n_train=12,
        model="all-MiniLM-L6-v2",
        model_params=22_700_000,
        train_size=12,
        size=None,
        seed=0,
        usage={"test_per_1k": {"input_tokens": 12_000, "output_tokens": 0, "flops": 3e11}},
        dev={"accuracy": value} if value else None,
        test=test,
        costs={"adapt_seconds": 0.1, "predict_seconds_per_1k": 4.0, "trainable_params": 0, "disk_bytes": 900},
        adapted_dir=f"adapted/{method}",
        details=None,
        dev_primary=value,
    )


def _report(curve: bool | CurveSection = True, costs: bool | CostsSection = True, **changes: Any) -> Report:
    leaderboard = [
        _row("head", "finetune", 0.9),
        _row("few-shot", "prompt", 0.71),
        _row("zero-shot", "prompt", 0.62),
        _row("encoder-full", "finetune", None, status="failed"),
        _row("contrastive", "finetune", 0.8),
    ]
    winner = {
        "method": "head",
        "route": "finetune",
        "chosen_on": "dev",
        "test": leaderboard[0].test["accuracy"],
        "significantly_better_than": ["few-shot", "zero-shot"],
        "not_significantly_different": ["contrastive"],
    }
    overview = Overview(
        task="mini",
        kind="classification",
        status="finished",
        resume_hint=None,
        started_at="2025-01-01T00:00:00",
        finished_at="2025-01-01T00:01:00",
        resumed_at=None,
        seed=0,
        git_rev=None,
        task_file="./task.yaml",
        model="all-MiniLM-L6-v2",
        models=[{"name": "all-MiniLM-L6-v2", "parameters": 22_700_000, "trials": []}],
        metrics=["accuracy"],
        confidence=0.95,
        data={"rows_read": 90, "train": 54, "dev": 14, "test": 22, "skipped_rows": 0, "notes": [], "overlaps": []},
        bad_rows={"count": 0, "rows": []},
        versions={"python": "3.11"},
        config={},
    )
    parts = {
        "run_dir": Path("run"),
        "overview": overview,
        "leaderboard": leaderboard,
        "comparisons": Comparisons([], winner, None, [], [r.trial for r in leaderboard]),
        "costs": costs if isinstance(costs, CostsSection) else CostsSection(**_costs()) if costs else None,
        "curve": curve if isinstance(curve, CurveSection) else CurveSection(**_curve()) if curve else None,
        "search": None,
        "viewer": None,
    }
    return Report(**{**parts, **changes})


def _figures(report: Report) -> dict[str, Any]:
    """The figures of a report's curve and cost sections, by name."""
    out = costs_section.figures(report.costs, report.leaderboard, report.primary)
    return {**out, "curve": curve_figure(report.curve) if report.curve else ""}


def _ids(svg: str) -> list[str]:
    root = ET.fromstring(svg)
    return [el.get("id") for el in root.iter() if el.get("id")]


@pytest.mark.slow
def test_learning_curves_draw_one_series_and_band_per_method_and_the_crossover() -> None:
    svg = learning_curves_svg(_curve(), "accuracy")
    ids = _ids(svg)
    assert ET.fromstring(svg).get("id") == "plot-curve" and not svg.startswith("<?xml")
    assert sorted(i for i in ids if re.fullmatch(r"curve-series-\d+", i)) == [f"curve-series-{i}" for i in range(3)]
    assert len([i for i in ids if i.startswith("curve-band-")]) == 2  # zero-shot has one size: drawn across
    assert {"curve-crossover", "curve-crossover-ci"} <= set(ids)
    assert "curve-crossover" not in _ids(learning_curves_svg(_curve(crossing=None), "accuracy"))
    assert learning_curves_svg(_curve(), "accuracy") == svg, "the same curve gives the same SVG"
    assert learning_curves_svg({}, "accuracy") == "" and learning_curves_svg({"methods": {}}, "accuracy") == ""


def test_a_method_at_one_size_above_0_is_a_point_not_a_line_across() -> None:
    """A method whose own `curve:` has one size is drawn at that size; only a size-0 method spans the axis."""
    curve = _curve()
    curve["methods"]["lora"] = {"route": "finetune", "points": _points({"4": 0.75})}
    ids = _ids(learning_curves_svg(curve, "accuracy"))
    assert [i for i in ids if i.startswith("curve-across-")] == ["curve-across-0"]  # zero-shot alone
    assert "curve-band-3" in ids and "curve-series-3" in ids


def test_pareto_draws_each_method_and_the_front() -> None:
    points = [
        {"method": "zero-shot", "route": "prompt", "quality": 0.6, "ci_low": 0.5, "ci_high": 0.7, "cost_per_1k": 2e-4},
        {"method": "few-shot", "route": "prompt", "quality": 0.7, "ci_low": 0.6, "ci_high": 0.8, "cost_per_1k": 3e-4},
        {"method": "head", "route": "finetune", "quality": 0.9, "ci_low": 0.8, "ci_high": 1.0, "cost_per_1k": 1e-4},
    ]
    ids = _ids(pareto_svg(points, "accuracy", "USD"))
    assert len([i for i in ids if re.fullmatch(r"pareto-series-\d+", i)]) == 3 and "pareto-front" in ids
    assert [p["method"] for p in pareto_front(points)] == ["head"], "the cheapest is also the best"
    assert [p["method"] for p in pareto_front(points[:2])] == ["zero-shot", "few-shot"]
    no_cost = [{**p, "cost_per_1k": None} for p in points]
    assert pareto_svg([], "accuracy", "USD") == "" and pareto_svg(no_cost, "accuracy", "USD") == ""


def test_break_even_draws_each_method_once_and_marks_every_crossing() -> None:
    entries = _costs()["break_even"]
    ids = _ids(break_even_svg(entries))
    # the money entries (the first one's unit): zero-shot, head and few-shot; two crossings
    assert len([i for i in ids if re.fullmatch(r"break-even-series-\d+", i)]) == 3
    assert len([i for i in ids if i.startswith("break-even-breakeven-")]) == 2
    assert break_even_svg([]) == ""


@pytest.mark.slow
def test_several_figures_share_a_page_without_sharing_ids() -> None:
    figures = _figures(_report())
    assert figures["pareto_unit"] == "USD" and figures["break_even_unit"] == "USD"
    ids = [i for k in ("curve", "pareto", "break_even") for i in _ids(figures[k])]
    assert len(ids) == len(set(ids))
    flops = _figures(_report(costs=CostsSection(**_costs(money=False))))
    assert flops["pareto_unit"] == "FLOPs" and flops["break_even"] == ""


def _no_external_urls(html: str) -> None:
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, re.I)
    assert not re.search(r"url\(\s*['\"]?\s*(?:https?:)?//|@import", html, re.I)


@pytest.mark.parametrize(("curve", "costs"), [(True, True), (False, False), (False, True)])
@pytest.mark.slow
def test_the_page_renders_with_and_without_its_curve_and_cost_sections(curve: bool, costs: bool) -> None:
    html_page = html(_report(curve=curve, costs=costs))
    _no_external_urls(html_page)
    assert ('id="section-curve"' in html_page) == curve and ('id="plot-curve"' in html_page) == curve
    assert ('id="section-costs"' in html_page) == costs and ('id="plot-pareto"' in html_page) == costs
    assert 'id="verdict"' in html_page and 'id="section-viewer"' not in html_page
    leaderboard = html_page.split('<table id="leaderboard">', 1)[1].split("</table>", 1)[0]
    assert leaderboard.index("prompt route") < leaderboard.index("fine-tune route")
    if curve:
        assert "Fine-tuning overtakes prompting" in html_page and "2.4 ± 0.6" in html_page and "n* = 3" in html_page
        assert "0.700 ± 0.020 [0.680, 0.720] (3)" in html_page
    elif costs:  # no curve: the winner, and its break-even against the best of the other route, in money
        verdict = html_page.split('id="verdict"', 1)[1].split("</div>", 1)[0]
        assert "head (fine-tune route) is best" in verdict
        assert "few-shot against head: prompt is cheaper up to 4,900 queries" in verdict


def test_the_leaderboard_groups_by_route_best_first_failed_last() -> None:
    report = _report()
    groups = route_groups(report.leaderboard, report.overview.metrics, report.winner)
    assert [g["route"] for g in groups] == ["prompt", "finetune"]
    assert [r["name"] for r in groups[1]["rows"]] == ["head", "contrastive", "encoder-full"]
    assert [r["best"] for r in groups[1]["rows"]] == [True, False, False] and groups[1]["rows"][0]["winner"]
    assert [r["name"] for r in groups[0]["rows"]] == ["few-shot", "zero-shot"]


def test_missing_prices_are_shown_and_never_invented() -> None:
    html_page = html(_report(curve=False, costs=CostsSection(**_costs(money=False))))
    assert "add `costs.cpu_hour` (money per CPU-hour) to the task file" in html_page
    costs_table = html_page.split('<table id="costs-table">', 1)[1].split("</table>", 1)[0]
    assert "USD" not in costs_table


def test_markdown_tells_the_curve_and_the_costs() -> None:
    md = markdown(_report())
    assert "## Verdict" in md and "## Learning curve" in md and "## Costs" in md
    assert "| head | fine-tune route | – | 0.550 ± 0.020 [0.530, 0.570] (3) |" in md
    assert "n* = 3 examples per class" in md and "2.5 to beyond the largest size" in md
    assert "Data advantage: the best prompt is worth 2.4 ± 0.6 labelled examples per class" in md
    assert "Variance-aware break-even: from 4 examples per class on" in md
    assert "## Learning curve" not in markdown(_report(curve=False, costs=False))
    flat_gap = {"examples": 38.6, "error": 7.1, "range": [0.777, 0.777], "seeds": 3, "flat": True}
    # a flat prompt curve (zero-shot best at every size): the gap at its one quality
    flat = _report(curve=CurveSection(**{**_curve(), "data_advantage": flat_gap}))
    assert (
        "the best prompt is worth 38.6 ± 7.1 labelled examples per class, at accuracy 0.777 (the prompt's, "
        "reached by fine-tuning)" in markdown(flat)
    )


def _pred(i: int, text: str, target: str, label: str | None, prompt: str | None = None) -> dict[str, Any]:
    return {
        "example_id": f"e{i}",
        "input": {"text": text},
        "target": target,
        "output": label or "???",
        "label": label,
        "prompt": prompt,
        "error": None,
    }


HOSTILE = "</script><script>alert(1)</script><!-- & </SCRIPT >"


def test_viewer_data_aligns_examples_and_survives_its_script_tag() -> None:
    instruction = "Classify the sentence.\nExamples: a -> x\n"
    stored = {
        "zero-shot": [
            _pred(1, HOSTILE, "x", "x", instruction + "Sentence: 1"),
            _pred(0, "plain", "y", "x", instruction + "Sentence: 0"),
        ],
        "head": [_pred(0, "plain", "y", "y"), _pred(1, HOSTILE, "x", None)],
    }
    data = viewer_data("classification", copy.deepcopy(stored), ["zero-shot", "head"])
    assert [e["id"] for e in data["examples"]] == ["e0", "e1"] and data["examples"][1]["input"] == HOSTILE
    assert [o["correct"] for o in data["outputs"]["zero-shot"]] == [False, True]
    assert [o["correct"] for o in data["outputs"]["head"]] == [True, False]
    first = data["outputs"]["zero-shot"][0]
    assert data["prompt_prefixes"]["zero-shot"] + first["prompt"] == instruction + "Sentence: 0"
    assert disagreements(data, "zero-shot", "head") == 2

    html_page = html(_report(curve=False, costs=False, viewer=data))
    _no_external_urls(html_page)
    start = html_page.index('<script type="application/json" id="viewer-data">')
    body = html_page[start:].split(">", 1)[1].split("</script>", 1)[0]
    assert json.loads(body) == data, "the embedded JSON reads back whole"
    assert "<" not in body and html_page.count("</script>") == 2  # the data, and the viewer's code
    assert json.loads(script_json({"a": HOSTILE})) == {"a": HOSTILE}


def test_viewer_data_for_text_tasks_leaves_right_and_wrong_open() -> None:
    stored = {"lm": [{**_pred(0, "q", "the answer", None), "output": "an answer"}]}
    data = viewer_data("generation", stored, ["lm"])
    assert data["outputs"]["lm"][0]["correct"] is None and data["outputs"]["lm"][0]["output"] == "an answer"
