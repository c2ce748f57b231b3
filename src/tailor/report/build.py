"""Building a run's report, once, from its store alone, and writing it: report.json (everything), report.md,
report.html and, when the task asks, the benchmark summary.

A report never reruns a model: it reads the run's records (:mod:`tailor.report.records`, the store opened once) and
builds each section from them (the paired tests recomputed from the stored predictions), so a report can be rebuilt
at any time from the run folder alone. ``tailor run`` builds it once, writes it and prints its leaderboard from it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..paths import repository_root, shared, shown_path
from . import page
from .document import Report
from .records import read_records
from .sections.comparisons import build_comparisons
from .sections.costs import build_costs
from .sections.curve import build_curve
from .sections.leaderboard import build_leaderboard
from .sections.overview import build_overview
from .sections.search import build_search
from .summary import summarize
from .viewer import viewer_data


def build(run_dir: Path) -> Report:
    """The report of the run in ``run_dir``, every section built once, with its paths as the machine has them (see
    :meth:`Report.shared` for the report as it is shown)."""
    records = read_records(run_dir)
    o = build_overview(records)
    rows = build_leaderboard(records, o.primary_metric)
    compared = set(records.compared)
    shown = [r.trial for r in rows if r.trial in compared and r.status == "ok"]  # the viewer's, in leaderboard order
    return Report(
        run_dir=run_dir,
        overview=o,
        leaderboard=rows,
        comparisons=build_comparisons(records, rows),
        costs=build_costs(records),
        curve=build_curve(records) if records.config.get("curve") else None,
        search=build_search(records),
        viewer=viewer_data(o.kind, records.test_predictions, shown),
    )


def task_folder(report: Report) -> Path:
    """The folder the task file's relative paths start from (reports show paths relative to it); the run folder when
    the run had no task file."""
    task_file = report.overview.task_file
    return Path(task_file).resolve().parent if task_file else report.run_dir.resolve()


def shown(report: Report) -> Report:
    """``report`` as the reports show it: its paths relative to the task file's folder (see
    :func:`tailor.paths.shown_path`)."""
    return report.shared(task_folder(report))


def build_report(run_dir: Path) -> dict[str, Any]:
    """The report of the run in ``run_dir`` as report.json holds it."""
    return shown(build(run_dir)).to_json()


def write_reports(run_dir: Path, report: Report | None = None) -> dict[str, Path]:
    """Write report.json, report.md and report.html (and the summary, if the task asks) of the run in ``run_dir``:
    from ``report`` when it is already built, else built here. Returns the paths written."""
    full = report or build(run_dir)
    return write(full, shown(full))


def write(full: Report, shown: Report) -> dict[str, Path]:
    """Write the reports of ``full`` (a built report) as ``shown`` (the same, as :func:`shown` gives it) shows them;
    the summary of a benchmark committed with its repository is made from ``full``, relative to the repository."""
    run_dir = full.run_dir
    paths = {"json": run_dir / "report.json", "md": run_dir / "report.md", "html": run_dir / "report.html"}
    paths["json"].write_text(json.dumps(shown.to_json(), indent=2, ensure_ascii=False, default=str))
    paths["md"].write_text(page.markdown(shown))
    paths["html"].write_text(page.html(shown))
    summary_to = full.overview.config.get("summary")  # as the task file gave it, to find where it goes
    if summary_to:
        target = Path(summary_to)
        if not target.is_absolute() and full.overview.task_file:
            target = Path(full.overview.task_file).resolve().parent / target
        target.parent.mkdir(parents=True, exist_ok=True)
        repo = repository_root(target.parent)
        if repo is not None:  # committed with its repository (benchmarks/results/): paths relative to that
            summary = shared({**summarize(full), "run_dir": str(run_dir.resolve())}, repo)
        else:  # paths as the reports show them; the run folder relative to the summary itself
            run_at = shown_path(str(run_dir.resolve()), target.parent.resolve())
            summary = {**summarize(shown), "run_dir": run_at}
        target.write_text(json.dumps(summary, indent=2))
        paths["summary"] = target
    return paths
