"""A learning curve's figure: each method's mean over seeds against the training size, in its bootstrap band, and
the crossover n* where fine-tuning overtakes prompting (see :mod:`tailor.report.sections.curve`). Drawn as
:mod:`tailor.report.figures.style` says; drawn series carry the id ``curve-series-<i>``, one per method.
"""

from __future__ import annotations

import math
from typing import Any

from .style import figure, legend, rc, route_styles, series_label, svg


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
            label = series_label(name, m.get("route", ""))
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
