"""The report as people read it: report.md and report.html, each its sections in order, from a built
:class:`~tailor.report.document.Report`.

Each section writes its own markdown and its own part of the page (``templates/sections/``); what belongs to no
one section is here: the verdict at the top (a curve's, else the winner and the break-even to tell first), the
warnings, and the order of the sections in each format.
"""

from __future__ import annotations

from typing import Any

from ..formats import fmt_ci, fmt_p, fmt_queries, route_title, unit_label
from .document import Report
from .sections import comparisons, costs, leaderboard, overview
from .sections import curve_text as curve
from .sections import search_text as search
from .sections.costs import headline_break_even
from .sections.curve import figure as curve_figure
from .sections.search import figures as search_figures
from .viewer import script_json

TEMPLATE = "report.html.j2"


def verdict_lines(report: Report) -> list[str]:
    """The answer in a few sentences: a curve's verdict; else the winner and where the cheaper route changes."""
    if report.curve and report.curve.verdict:
        return list(report.curve.verdict)
    out = []
    w = report.comparisons.winner
    if w:
        line = f"{w['method']} ({route_title(w['route'])}) is best, chosen on {w['chosen_on']}: test {report.primary} "
        line += fmt_ci(w["test"])
        if w["not_significantly_different"]:
            line += f"; not significantly better than {', '.join(w['not_significantly_different'])}"
        elif w["significantly_better_than"]:
            line += f"; significantly better than {', '.join(w['significantly_better_than'])}"
        out.append(line + ".")
    entry = report.costs and headline_break_even(report.costs, report.winner, report.leaderboard, report.primary)
    if entry:
        out.append(f"{entry['prompt']} against {entry['finetune']}: {entry['sentence']}.")
    return out


def markdown(report: Report) -> str:
    """report.md."""
    o = report.overview
    lines = overview.head_markdown(o)
    if report.curve and report.curve.verdict:
        lines += ["", "## Verdict", "", *[f"- {v}" for v in report.curve.verdict]]
    if report.comparisons.warnings:
        lines += ["", "## Warnings", "", *[f"- **{w}**" for w in report.comparisons.warnings]]
    lines += leaderboard.markdown(report.leaderboard, o.metrics, o.confidence)
    lines += comparisons.markdown(report.comparisons, report.primary)
    lines += search.markdown(report.search)
    if report.curve:
        lines += curve.markdown(report.curve)
    if report.costs:
        lines += costs.markdown(report.costs, report.primary)
    lines += overview.data_markdown(o)
    return "\n".join(lines)


def html(report: Report) -> str:
    """report.html: one self-contained page (inline CSS, JS and SVG figures; nothing fetched), with the per-example
    viewer when the report has its data."""
    from jinja2 import Environment, PackageLoader, select_autoescape
    from markupsafe import Markup

    env = Environment(loader=PackageLoader("tailor.report", "templates"), autoescape=select_autoescape(["html", "j2"]))
    env.filters.update(queries=fmt_queries)
    primary, viewer = report.primary, report.viewer
    figures: dict[str, Any] = costs.figures(report.costs, report.leaderboard, primary) if report.costs else {}
    figures = {k: Markup(v) if k in ("pareto", "break_even") else v for k, v in figures.items()}
    figures["curve"] = Markup(curve_figure(report.curve) if report.curve else "")
    figures["search"] = [Markup(v) for v in search_figures(report.search)] if report.search else []
    searches = [{**s, "view": search.search_view(s)} for s in report.search.entries] if report.search else []
    return env.get_template(TEMPLATE).render(
        overview=report.overview,
        comparisons=report.comparisons,
        winner=report.comparisons.winner,
        leaderboard=report.leaderboard,
        costs=report.costs,
        cost_rows=costs.cost_rows(report.costs) if report.costs else [],
        curve=report.curve,
        primary=primary,
        groups=leaderboard.route_groups(report.leaderboard, report.overview.metrics, report.winner),
        verdict=verdict_lines(report),
        curve_text=curve.curve_text(report.curve) if report.curve else None,
        curve_table=curve.curve_table(report.curve) if report.curve else None,
        routes={r.trial: r.route for r in report.leaderboard},
        figures=figures,
        viewer_json=Markup(script_json(viewer)) if viewer and viewer.get("methods") else None,
        viewer_split=(viewer or {}).get("split", "test"),
        fmt_ci=fmt_ci,
        fmt_p=fmt_p,
        unit_label=unit_label,
        served=leaderboard.served_lines(report.leaderboard),
        searches=searches,
    )
