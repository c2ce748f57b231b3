"""The cost figures: quality against cost per 1,000 queries with its Pareto front, and cumulative cost against query
volume with each prompt/fine-tune pair's break-even volume Q* (see :mod:`tailor.report.sections.costs`). Drawn as
:mod:`tailor.report.figures.style` says; drawn series carry the id ``<figure>-series-<i>``, one per trial.
"""

from __future__ import annotations

import math
from typing import Any

from ...costs.pricing import cumulative_lines
from ...formats import unit_label
from .style import figure, legend, rc, route_styles, series_label, svg


def pareto_svg(points: list[dict[str, Any]], metric: str, unit_label: str) -> str:
    """Quality (with its interval) against cost per 1,000 queries on a log axis, one labelled marker per method in
    its route's colour, and the Pareto front — the best quality any budget buys — as a step line. Points without a
    positive cost can't sit on a log axis and are left out; "" when none is left."""
    pts = [
        p for p in points if p.get("quality") is not None and p.get("cost_per_1k") is not None and p["cost_per_1k"] > 0
    ]
    if not pts:
        return ""
    styles = route_styles([(p["method"], p.get("route", "")) for p in pts])
    with rc():
        fig = figure()
        ax = fig.add_subplot()
        ax.set_xscale("log")
        for i, p in enumerate(pts):
            st = styles[p["method"]]
            low = p["quality"] - (p["ci_low"] if p.get("ci_low") is not None else p["quality"])
            high = (p["ci_high"] if p.get("ci_high") is not None else p["quality"]) - p["quality"]
            bars = ax.errorbar(
                [p["cost_per_1k"]],
                [p["quality"]],
                yerr=[[max(low, 0.0)], [max(high, 0.0)]],
                color=st["color"],
                marker=st["marker"],
                markersize=7,
                linestyle="none",
                capsize=3,
                label=series_label(p["method"], p.get("route", "")),
            )
            bars.lines[0].set_gid(f"series-{i}")
        front = pareto_front(pts)
        xs = [p["cost_per_1k"] for p in front]
        ys = [p["quality"] for p in front]
        right = max(p["cost_per_1k"] for p in pts)
        if right > xs[-1]:
            xs, ys = [*xs, right], [*ys, ys[-1]]
        (step,) = ax.step(xs, ys, where="post", color="#444444", linewidth=1, alpha=0.8, label="Pareto front")
        step.set_gid("front")
        _log_ticks(ax, [p["cost_per_1k"] for p in pts])
        ax.margins(y=0.1)
        ax.set_xlabel(f"cost per 1,000 queries ({unit_label}, log scale)")
        ax.set_ylabel(f"test {metric}")
        ax.grid(True, alpha=0.3)
        legend(fig, ax)
        fig.draw_without_rendering()  # lay the figure out first: labels are placed where they will be drawn
        fig.set_layout_engine("none")
        _place_labels(ax, [(p["method"], p["cost_per_1k"], p["quality"]) for p in pts])
        return svg(fig, "pareto")


LABEL_OFFSETS = ((6, 5, "left"), (6, -13, "left"), (-6, 5, "right"), (-6, -13, "right"), (6, 17, "left"))
"""Where a point's label may go (points right and up of it, and alignment), tried in turn."""


def _place_labels(ax: Any, items: list[tuple[str, float, float]]) -> None:
    """Label each point (text, x, y) at the first of :data:`LABEL_OFFSETS` where it overlaps no label placed before
    it (the last one when all do)."""
    placed: list[Any] = []
    for text, x, y in items:
        for dx, dy, ha in LABEL_OFFSETS:
            label = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, fontsize=8)
            box = label.get_window_extent().padded(2)
            if not any(box.overlaps(other) for other in placed) or (dx, dy, ha) == LABEL_OFFSETS[-1]:
                placed.append(box)
                break
            label.remove()


def _log_ticks(ax: Any, values: list[float]) -> None:
    """A log axis over ``values`` padded to at least a factor of 4, ticked at 1, 2 and 5 times powers of ten."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    low, high = min(values), max(values)
    pad = max(1.25, math.sqrt(4 * low / high))
    ax.set_xlim(low / pad, high * pad)
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def pareto_front(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The points no other beats on both cost and quality, by increasing cost: from the cheapest, each next one is
    dearer and strictly better."""
    front: list[dict[str, Any]] = []
    for p in sorted(points, key=lambda p: (p["cost_per_1k"], -p["quality"])):
        if not front or p["quality"] > front[-1]["quality"]:
            front.append(p)
    return front


def _entry_label(entry: dict[str, Any], route: str) -> str:
    size = entry.get("size")
    return entry[route] + (f" at size {size}" if size is not None else "")


def break_even_svg(entries: list[dict[str, Any]], max_queries: float | None = None) -> str:
    """Cumulative cost (adapt once, then per query) against query volume on log axes: one line per trial of the
    prompt/fine-tune pairs in ``entries`` (break-even entries of one unit: those in the first entry's unit are
    drawn), and each pair's break-even volume Q* marked and labelled. Volumes run to ``max_queries`` (default: ten
    times the largest Q*, at least 100,000). "" when there is nothing to draw."""
    usable = [e for e in entries if e.get("adapt") and e.get("per_query")]
    if not usable:
        return ""
    unit = usable[0]["unit"]
    usable = [e for e in usable if e["unit"] == unit]
    crossings = [e["queries"] for e in usable if e.get("queries")]
    top = max_queries or max([1e5, *(10 * q for q in crossings)])
    bottom = min([1.0, *(q / 10 for q in crossings)])
    import numpy as np

    volumes = np.geomspace(bottom, top, 200)
    lines: dict[str, tuple[str, list[float]]] = {}  # each trial once, drawn from the first pair it is in
    for e in usable:
        cumulative = cumulative_lines(e, volumes)
        for route in ("prompt", "finetune"):
            lines.setdefault(_entry_label(e, route), (route, cumulative[route]))
    styles = route_styles([(name, route) for name, (route, _) in lines.items()])
    with rc():
        fig = figure()
        ax = fig.add_subplot()
        ax.set_xscale("log")
        positive = all(cost[0] > 0 for _, cost in lines.values())  # the cheapest point of a line is its first
        if positive:
            ax.set_yscale("log")
        for i, (name, (route, cost)) in enumerate(lines.items()):
            st = styles[name]
            (line,) = ax.plot(volumes, cost, color=st["color"], linestyle=st["linestyle"])
            line.set_label(series_label(name, route))
            line.set_gid(f"series-{i}")
        for i, e in enumerate(x for x in usable if x.get("queries")):
            q = e["queries"]
            cost = cumulative_lines(e, [q])["finetune"][0]
            (mark,) = ax.plot([q], [cost], marker="*", markersize=11, color="#222222", linestyle="none")
            mark.set_gid(f"breakeven-{i}")
            ax.annotate(f"Q* = {q:,.0f}", (q, cost), xytext=(6, -12), textcoords="offset points", fontsize=8)
        ax.set_xlim(bottom, top)
        ax.set_xlabel("queries served (log scale)")
        shown = unit_label(unit, usable[0].get("currency"))
        ax.set_ylabel(f"cumulative cost ({shown}{', log scale' if positive else ''})")
        ax.grid(True, alpha=0.3)
        legend(fig, ax)
        return svg(fig, "break-even")
