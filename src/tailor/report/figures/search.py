"""A prompt search's figure (see :mod:`tailor.report.sections.search`): the best dev score found so far against what the
search had spent by then — evaluations, calls and, when the search cost money, money — with every scoring's own
minibatch score behind it and the winner's held-out dev and test scores as horizontal lines (their distance is the
dev-vs-test gap). Drawn like the report's other figures (:mod:`tailor.report.figures.style`), in the prompt route's
purple.
"""

from __future__ import annotations

from typing import Any

from ...formats import unit_label
from .style import ROUTE_COLORS, figure, legend, rc, svg

AXES = (("evaluations", "evaluations (minibatch scorings)"), ("calls", "model calls"), ("money", "money"))
"""The x axes a search is drawn against, in order: (series key, axis label)."""

BEST, SCORES = ROUTE_COLORS["prompt"][0], ROUTE_COLORS["prompt"][4]
SELECT_COLOR, TEST_COLOR = "#333333", "#1f6f43"


def search_axes(series: dict[str, list[Any]]) -> list[tuple[str, str]]:
    """The axes worth drawing: evaluations and calls when every point has them, money only when every point has it
    and the search spent some."""
    out = []
    for key, label in AXES:
        values = series.get(key) or []
        if not values or any(v is None for v in values):
            continue
        if key == "money" and not max(values) > 0:
            continue
        out.append((key, label))
    return out


def search_svg(section: dict[str, Any], name: str = "search", currency: str | None = None) -> str:
    """One panel per axis of :func:`search_axes`, side by side with a shared y axis: the best-so-far dev score as a
    step line (ids ``<name>-best-<axis>``), each scoring's minibatch score as a faint dot (``<name>-scores-<axis>``),
    and the winner's score on the held-out part of dev (``<name>-select``) and on test (``<name>-test``). "" when the
    search has no point to draw."""
    series = section.get("series") or {}
    best = series.get("best_so_far") or []
    axes = search_axes(series)
    if not best or not axes:
        return ""
    metric = section.get("metric") or "score"
    scores = series.get("score") or [None] * len(best)
    with rc():
        fig = figure((8.0, 3.4))
        first = None
        for i, (key, label) in enumerate(axes):
            ax = fig.add_subplot(1, len(axes), i + 1, sharey=first)
            first = first or ax
            xs = series[key]
            dots = [(x, s) for x, s in zip(xs, scores) if s is not None]
            if dots:
                (scattered,) = ax.plot(
                    [x for x, _ in dots],
                    [s for _, s in dots],
                    linestyle="none",
                    marker="o",
                    markersize=3,
                    color=SCORES,
                    label="one candidate on one minibatch",
                )
                scattered.set_gid(f"scores-{key}")
            (line,) = ax.step(
                xs, best, where="post", color=BEST, linewidth=1.8, label="best so far (mean over minibatches)"
            )
            line.set_gid(f"best-{key}")
            for value, color, style, gid, text in (
                (section.get("select_score"), SELECT_COLOR, ":", "select", "winner on held-out dev"),
                (section.get("test_score"), TEST_COLOR, "--", "test", "winner on test"),
            ):
                if value is not None:
                    ref = ax.axhline(value, color=color, linestyle=style, linewidth=1.1, label=text)
                    ref.set_gid(gid if i == 0 else f"{gid}-{key}")
            shown = unit_label("money", currency) if key == "money" else label
            ax.set_xlabel(shown)
            ax.grid(True, alpha=0.3)
            if i == 0:
                ax.set_ylabel(f"dev {metric}")
        legend(fig, first)
        return svg(fig, name)
