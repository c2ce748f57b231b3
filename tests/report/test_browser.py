"""report.html in a real browser: a real learning-curve run on the offline encoder (zero-shot, few-shot and a trained
head at a few sizes and two seeds), its report opened from disk in the system's chromium driven by playwright.

The page must load with no console or page error and no request leaving the file; every figure must be drawn; the
per-example viewer's filters and search must show the examples Python counts from the run store. A screenshot of
each view is written: to docs/screenshots/ with TAILOR_SCREENSHOTS=1, else to a temporary folder.

This tier needs chromium from the system (`apt-get install -y chromium`) and playwright from the `test` extra; it
fails, saying so, where either is missing. It never runs `playwright install`.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import dataset_rows, task_doc, write_jsonl

from tailor.config.task import load_task
from tailor.report.build import build, write_reports
from tailor.report.page import html
from tailor.runner.run import run_task
from tailor.runner.store import RunStore

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
INSTALL = (
    "the browser tests drive the system's chromium with playwright: install them with `apt-get install -y chromium` "
    "and `pip install -e '.[test]'` (never `playwright install`)"
)
METHODS = [
    # the second wording leans every sentence towards "weather": a prompt that is often wrong, so the viewer has
    # disagreements to show
    {"name": "zero-shot", "templates": ["{{ text }}", "Today's weather report: {{ text }}"]},
    {"name": "few-shot", "k": "all"},
    {"name": "head"},
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def _sync_playwright() -> Any:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: {INSTALL}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(f"playwright is missing: {INSTALL}")
    return sync_playwright


@pytest.fixture(scope="module")
def curve_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished curve run with its reports, report.html holding the per-example viewer."""
    where = tmp_path_factory.mktemp("browser")
    write_jsonl(where / "data.jsonl", dataset_rows())
    doc = task_doc(methods=METHODS, curve={"sizes": [0, 1, 4], "seeds": 2}, costs={"cpu_hour": 0.1})
    (where / "task.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    spec, base = load_task(where / "task.yaml")
    run_dir = run_task(spec, base, where / "run", task_file=str(where / "task.yaml"))
    write_reports(run_dir)
    assert 'id="viewer-data"' in (run_dir / "report.html").read_text()
    return run_dir


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("TAILOR_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return SCREENSHOTS
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def browser_page(curve_run: Path) -> Iterator[tuple[Any, list[str]]]:
    """The report open in chromium, and every console error, page error and request off the file seen so far."""
    sync_playwright = _sync_playwright()
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on(
            "request",
            lambda r: problems.append(f"request: {r.url}") if not r.url.startswith(("file:", "data:")) else None,
        )
        page.goto((curve_run / "report.html").as_uri())
        page.wait_for_load_state("load")
        yield page, problems
        browser.close()


def _store_predictions(run_dir: Path, methods: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
    store = RunStore.open_existing(run_dir)
    try:
        return {m: {p["example_id"]: p for p in store.predictions(m, "test")} for m in methods}
    finally:
        store.close()


def _count(page: Any) -> dict[str, int]:
    data = page.locator("#viewer-count").evaluate("e => ({...e.dataset})")
    return {k: int(v) for k, v in data.items()}


def test_the_page_loads_cleanly_and_draws_every_figure(browser_page, shots: Path) -> None:
    page, problems = browser_page
    assert page.locator("#verdict li").count() >= 1
    groups = page.locator("#leaderboard tbody.route-group")
    assert [groups.nth(i).get_attribute("data-route") for i in range(groups.count())] == ["prompt", "finetune"]
    for i in range(2):  # each route's best is on top and marked
        assert groups.nth(i).locator("tr").nth(1).locator(".best-badge").count() == 1
    plots = page.locator("svg.plot")
    assert sorted(plots.nth(i).get_attribute("id") for i in range(plots.count())) == [
        "plot-break-even",
        "plot-curve",
        "plot-pareto",
    ]
    for i in range(plots.count()):
        plot = plots.nth(i)
        plot.scroll_into_view_if_needed()
        box = plot.bounding_box()
        assert plot.is_visible() and box and box["width"] > 100 and box["height"] > 100, plot.get_attribute("id")
    for name, selector in (
        ("report-top", "#overview"),
        ("report-curve", "#section-curve"),
        ("report-costs", "#section-costs"),
    ):
        page.locator(selector).screenshot(path=str(shots / f"{name}.png"))
        assert (shots / f"{name}.png").stat().st_size > 10_000
    assert problems == []


def test_the_viewer_filters_and_searches_as_the_store_says(browser_page, curve_run: Path, shots: Path) -> None:
    page, problems = browser_page
    methods = page.locator("#method-a option").all_inner_texts()
    preds = _store_predictions(curve_run, methods)
    total = len(next(iter(preds.values())))

    def disagree(a: str, b: str) -> int:
        return sum(preds[a][i]["label"] != preds[b][i]["label"] for i in preds[a])

    a, b = max(itertools.combinations(methods, 2), key=lambda pair: disagree(*pair))
    expected = disagree(a, b)
    assert expected > 0, "the run should have two methods that disagree somewhere"
    page.select_option("#method-a", a)
    page.select_option("#method-b", b)
    assert _count(page) == {"matching": total, "total": total, "rendered": total}
    page.select_option("#filter", "disagree")
    assert _count(page)["matching"] == expected
    assert page.locator("#viewer-rows tr").count() == expected
    page.select_option("#filter", "a-wrong")
    assert _count(page)["matching"] == sum(p["label"] != p["target"] for p in preds[a].values())
    page.select_option("#filter", "either-wrong")
    wrong_either = sum(
        preds[a][i]["label"] != preds[a][i]["target"] or preds[b][i]["label"] != preds[b][i]["target"] for i in preds[a]
    )
    assert _count(page)["matching"] == wrong_either
    assert page.locator("#viewer-rows td.wrong").count() >= 1

    page.select_option("#filter", "all")
    word = "rain"
    hits = sum(
        word in " ".join([p["input"]["text"], p["target"], *(preds[m][i]["output"] for m in (a, b))]).lower()
        for i, p in preds[a].items()
    )
    page.fill("#search", word)
    assert 0 < _count(page)["matching"] == hits < total
    assert page.locator("#viewer-rows tr").count() == hits
    page.fill("#search", "")
    page.select_option("#filter", "disagree")
    row = page.locator("#viewer-rows tr").first  # a disagreement: each side's exact prompt opens beside its output
    prompts = row.locator("details")
    texts = []
    for i in range(prompts.count()):
        prompts.nth(i).locator("summary").click()
        texts.append(prompts.nth(i).locator("pre").inner_text())
    assert any("weather report" in t for t in texts), texts
    page.locator("#section-viewer").screenshot(path=str(shots / "report-viewer.png"))
    assert (shots / "report-viewer.png").stat().st_size > 10_000
    assert problems == []


def test_a_thousand_examples_show_a_page_at_a_time(browser_page, curve_run: Path, tmp_path: Path) -> None:
    page, problems = browser_page
    n = 1000
    examples = [{"id": f"e{i:04d}", "input": f"sentence {i}", "gold": "a" if i % 2 else "b"} for i in range(n)]

    def answers(flip_every: int) -> list[dict[str, Any]]:
        out = []
        for i, ex in enumerate(examples):
            label = ex["gold"] if i % flip_every else ("b" if ex["gold"] == "a" else "a")
            out.append({"output": label, "label": label, "prompt": None, "correct": label == ex["gold"], "error": None})
        return out

    viewer = {
        "kind": "classification",
        "split": "test",
        "methods": ["m1", "m2"],
        "examples": examples,
        "outputs": {"m1": answers(2), "m2": answers(5)},
        "prompt_prefixes": {"m1": "", "m2": ""},
    }
    big = tmp_path / "big.html"
    big.write_text(html(dataclasses.replace(build(curve_run), viewer=viewer)))
    page.goto(big.as_uri())
    assert _count(page) == {"matching": n, "total": n, "rendered": 200}
    assert page.locator("#viewer-rows tr").count() == 200
    page.click("#viewer-more")
    assert _count(page)["rendered"] == 400
    page.select_option("#filter", "a-wrong")
    assert _count(page) == {"matching": 500, "total": n, "rendered": 200}
    page.fill("#search", "sentence 99")  # 99 and 990-999; m1 gets the even ones wrong: 990, 992, ..., 998
    assert _count(page)["matching"] == 5
    assert problems == []
