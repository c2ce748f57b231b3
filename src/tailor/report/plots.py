"""The report's figures, drawn with matplotlib and inlined in report.html as SVG: the learning curves, quality
against cost (with its Pareto front) and cumulative cost against query volume (with the break-even points).

Each figure is drawn as :mod:`tailor.report.figure_style` says (bare matplotlib figures, deterministic SVG, ids prefixed
with the figure's name); drawn series carry the id ``<figure>-series-<i>`` (one per method or line). A prompt
search's figure is drawn by :mod:`tailor.report.search_plots`.

The prompt route is drawn in purples with dashed lines, the fine-tune route in greens with solid lines, in the
tables' colours too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .figure_style import OTHER_COLORS, ROUTE_COLORS, ROUTE_STYLE, figure, legend, rc, svg
from .search_plots import search_svg

ROUTE_NAME = {"prompt": "prompt", "finetune": "fine-tune"}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "h")


def route_styles(items: Sequence[tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """Per name of ``items`` ((name, route) pairs, in order): its colour, line style and marker, shades of its route's
    colour taken in turn."""
    seen: dict[str, int] = {}
    out = {}
    for i, (name, route) in enumerate(items):
        k = seen[route] = seen.get(route, -1) + 1
        colors = ROUTE_COLORS.get(route, OTHER_COLORS)
        out[name] = {
            "color": colors[k % len(colors)],
            "linestyle": ROUTE_STYLE.get(route, ":"),
            "marker": MARKERS[i % len(MARKERS)],
        }
    return out


def _label(name: str, route: str) -> str:
    return f"{name} ({ROUTE_NAME.get(route, route)})"


def learning_curves_svg(curve: dict[str, Any], metric: str) -> str:
    """One line per method: its mean over seeds against the training size, in its bootstrap band; the x axis is
    log2-like (0 included) with the curve's own size labels; the crossover n* a vertical line in its shaded
    interval. "" when there is no point to draw."""
    methods = {name: m for name, m in (curve.get("methods") or {}).items() if m.get("points")}
    if not methods:
        return ""
    styles = route_styles([(name, m.get("route", "")) for name, m in methods.items()])
    with rc():
        fig = figure()
        ax = fig.add_subplot()
        ax.set_xscale("symlog", base=2, linthresh=1, linscale=0.6)
        for i, (name, m) in enumerate(methods.items()):
            pts = sorted(m["points"].values(), key=lambda p: p["x"])
            xs = [p["x"] for p in pts]
            st = styles[name]
            label = _label(name, m.get("route", ""))
            if len(pts) == 1 and pts[0]["x"] == 0:  # needs no examples: usable at every size, drawn across the axis
                p = pts[0]
                ax.axhline(p["mean"], color=st["color"], linestyle=":", linewidth=1, alpha=0.7).set_gid(f"across-{i}")
                ax.axhspan(p["band_low"], p["band_high"], color=st["color"], alpha=0.08, linewidth=0)
            elif len(pts) == 1:  # one size of its own `curve:`: its band is a bar at that size, not a strip across
                p = pts[0]
                bar = ax.vlines(p["x"], p["band_low"], p["band_high"], color=st["color"], alpha=0.5, linewidth=4)
                bar.set_gid(f"band-{i}")
            else:
                band = ax.fill_between(
                    xs, [p["band_low"] for p in pts], [p["band_high"] for p in pts], color=st["color"], alpha=0.13
                )
                band.set_linewidth(0)
                band.set_gid(f"band-{i}")
            (line,) = ax.plot(
                xs, [p["mean"] for p in pts], color=st["color"], linestyle=st["linestyle"], marker=st["marker"]
            )
            line.set_label(label)
            line.set_gid(f"series-{i}")
        _size_ticks(ax, curve, methods)
        _crossover(ax, curve.get("crossover"))
        unit = curve.get("unit") or "examples"
        ax.set_xlabel(f"training examples ({unit})")
        ax.set_ylabel(f"test {metric} (mean over seeds, band)")
        ax.grid(True, axis="y", alpha=0.3)
        legend(fig, ax)
        return svg(fig, "curve")


def _size_ticks(ax: Any, curve: dict[str, Any], methods: dict[str, Any]) -> None:
    from matplotlib.ticker import NullLocator

    where = dict(curve.get("x") or {})
    for m in methods.values():
        for label, p in m["points"].items():
            where.setdefault(label, p["x"])
    order = [s for s in curve.get("sizes") or [] if s in where] or sorted(where, key=where.get)
    ticks, labels = [], []
    for label in order:
        x = where[label]
        close = bool(ticks) and x > 0 and ticks[-1] > 0 and math.log2(x / ticks[-1]) < 0.6
        ticks.append(x)
        labels.append(("\n" if close else "") + str(label))  # a size close to the last one: on a second line
    ax.set_xticks(ticks, labels)
    ax.xaxis.set_minor_locator(NullLocator())


def _crossover(ax: Any, c: dict[str, Any] | None) -> None:
    if not c or c.get("n") is None:
        return
    left, right = ax.get_xlim()
    low = left if c.get("ci_low") is None else c["ci_low"]
    high = right if c.get("ci_high") is None else c["ci_high"]
    ax.axvspan(low, high, color="#888888", alpha=0.07, linewidth=0, gid="crossover-ci")
    ax.axvline(c["n"], color="#333333", linestyle=":", linewidth=1.2, gid="crossover")
    ax.annotate(
        f"n* ≈ {c['n']:.3g}",
        (c["n"], 1.0),
        xycoords=("data", "axes fraction"),
        xytext=(4, -12),
        textcoords="offset points",
        fontsize=8,
        color="#333333",
    )
    ax.set_xlim(left, right)


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
                label=_label(p["method"], p.get("route", "")),
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
    """Cumulative cost (adapt once, then per query) against query volume on log axes: one line per method of the
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
    lines: dict[str, tuple[str, float, float]] = {}
    for e in usable:
        for route in ("prompt", "finetune"):
            lines.setdefault(_entry_label(e, route), (route, e["adapt"][route], e["per_query"][route]))
    styles = route_styles([(name, route) for name, (route, _, _) in lines.items()])
    currency = usable[0].get("currency")
    with rc():
        import numpy as np

        volumes = np.geomspace(bottom, top, 200)
        fig = figure()
        ax = fig.add_subplot()
        ax.set_xscale("log")
        positive = all(a + bottom * q > 0 for _, a, q in lines.values())
        if positive:
            ax.set_yscale("log")
        for i, (name, (route, adapt, per_query)) in enumerate(lines.items()):
            st = styles[name]
            (line,) = ax.plot(volumes, adapt + volumes * per_query, color=st["color"], linestyle=st["linestyle"])
            line.set_label(_label(name, route))
            line.set_gid(f"series-{i}")
        for i, e in enumerate(x for x in usable if x.get("queries")):
            q = e["queries"]
            cost = e["adapt"]["finetune"] + q * e["per_query"]["finetune"]
            (mark,) = ax.plot([q], [cost], marker="*", markersize=11, color="#222222", linestyle="none")
            mark.set_gid(f"breakeven-{i}")
            ax.annotate(f"Q* = {q:,.0f}", (q, cost), xytext=(6, -12), textcoords="offset points", fontsize=8)
        ax.set_xlim(bottom, top)
        ax.set_xlabel("queries served (log scale)")
        shown = {"money": currency or "money", "flops": "FLOPs", "seconds": "seconds"}.get(unit, unit)
        ax.set_ylabel(f"cumulative cost ({shown}{', log scale' if positive else ''})")
        ax.grid(True, alpha=0.3)
        legend(fig, ax)
        return svg(fig, "break-even")


COST_UNITS = ("money", "flops", "seconds")


def cost_unit(costs: dict[str, Any]) -> str | None:
    """The unit quality is plotted against: money when every trial has money per 1,000 queries, else FLOPs when
    every one has FLOPs, else seconds (None: no trial has a cost in any unit)."""
    trials = list((costs.get("trials") or {}).values())
    for unit in COST_UNITS:
        if trials and all((t.get("per_1k") or {}).get(unit) is not None for t in trials):
            return unit
    return "seconds" if any((t.get("per_1k") or {}).get("seconds") is not None for t in trials) else None


def unit_label(costs: dict[str, Any], unit: str) -> str:
    if unit == "money":
        currencies = {t.get("currency") for t in (costs.get("trials") or {}).values()} - {None}
        return currencies.pop() if len(currencies) == 1 else (costs.get("prices") or {}).get("currency") or "money"
    return {"flops": "FLOPs", "seconds": "seconds"}.get(unit, unit)


def report_figures(report: dict[str, Any]) -> dict[str, Any]:
    """The figures of a report (see :mod:`tailor.report.build`) as SVG strings ("" where there is nothing to draw): the
    learning curves, quality against cost per 1,000 queries (in :func:`cost_unit`) and the cumulative costs of the
    break-even pairs (in the same unit when they have it, else the first they have), with the units used; and
    ``search``, one figure per trial of the report's ``prompt_search``
    (:func:`tailor.report.search_plots.search_svg`)."""
    out: dict[str, Any] = {"curve": "", "pareto": "", "pareto_unit": None, "break_even": "", "break_even_unit": None}
    out["search"] = [
        search_svg(s, "search" if i == 0 else f"search-{i + 1}", s.get("currency"))
        for i, s in enumerate(report.get("prompt_search") or [])
    ]
    primary = report["primary_metric"]
    if report.get("curve"):
        out["curve"] = learning_curves_svg(report["curve"], report["curve"].get("metric") or primary)
    costs = report.get("costs") or {}
    unit = cost_unit(costs) if costs else None
    if unit:
        points = []
        for row in report["leaderboard"]:
            trial = costs["trials"].get(row["method"])
            metric = (row.get("test") or {}).get(primary)
            if trial is None or row["status"] != "ok" or not metric:
                continue
            points.append(
                {
                    "method": row["method"],
                    "route": row["route"],
                    "quality": metric["value"],
                    "ci_low": metric.get("ci_low"),
                    "ci_high": metric.get("ci_high"),
                    "cost_per_1k": trial["per_1k"].get(unit),
                }
            )
        out["pareto"] = pareto_svg(points, primary, unit_label(costs, unit))
        out["pareto_unit"] = unit_label(costs, unit) if out["pareto"] else None
    entries = costs.get("break_even") or []
    if entries:
        units = [e["unit"] for e in entries]
        chosen = unit if unit in units else units[0]
        out["break_even"] = break_even_svg([e for e in entries if e["unit"] == chosen])
        out["break_even_unit"] = unit_label(costs, chosen) if out["break_even"] else None
    return out
