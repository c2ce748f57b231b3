"""A learning curve's section in words and tables, for report.md, report.html and the console (see
:mod:`.curve` for what it holds): the table of methods × sizes and its figures in words."""

from __future__ import annotations

from typing import Any

from ...formats import MISSING, fmt_queries, route_title, unit_label
from .curve import CurveSection


def seeds_text(curve: CurveSection) -> str:
    """How many seeds the curve's means are over: ``5 seeds``, or ``5 seeds (fewer for lora: 3)`` when a method ran
    fewer (its own `curve:`, or failed trials)."""
    total = len(curve.seeds)
    most = {name: max((p["n_seeds"] for p in m["points"].values()), default=0) for name, m in curve.methods.items()}
    fewer = [f"{name}: {n}" for name, n in most.items() if n < total]
    return f"{total} seeds" + (f" (fewer for {', '.join(fewer)})" if fewer else "")


def curve_text(curve: CurveSection) -> dict[str, str | None]:
    """A curve's figures in words: the crossover n* with its interval, the variance-aware break-even and the data
    advantage with its error (None where the curve has none)."""
    unit = "examples per class" if curve.unit == "per class" else "examples"
    out: dict[str, str | None] = {"unit": unit, "crossover": None, "variance_aware": None, "data_advantage": None}
    out["seeds"] = seeds_text(curve)
    c = curve.crossover
    if c and c.get("n") is None:
        out["crossover"] = f"none: prompting stays ahead at every size ({c.get('status', '')}, {c['seeds']} seeds)"
    elif c:
        low = "at or below the smallest size" if c.get("ci_low") is None else f"{c['ci_low']:.3g}"
        high = "beyond the largest size" if c.get("ci_high") is None else f"{c['ci_high']:.3g}"
        conf = f"{c['confidence']:.0%}" if c.get("confidence") else "CI"
        out["crossover"] = (
            f"n* = {c['n']:.3g} {unit} ({c['status']}); {conf} interval {low} to {high}, over {c['seeds']} seeds"
            + (f" ({c['method']})" if c.get("method") else "")
        )
    v = curve.variance_aware
    if v:
        out["variance_aware"] = (
            f"from {v['n']:g} {unit} on, fine-tuning beats prompting for most pairs of seeds at every larger size"
            if v.get("n") is not None
            else "at no size does fine-tuning beat prompting for most pairs of seeds from there on"
        )
    d = curve.data_advantage
    if d and d.get("examples") is not None:
        err = (
            f" ± {d['error']:.1f}"
            if d.get("error") is not None
            else " (no error estimate: a leave-one-seed-out curve reached no common range)"
        )
        metric, span = curve.metric, ""
        if curve.flat_prompt:  # a flat prompt curve: the gap at its quality
            span = f", at {metric} {d['range'][0]:.3f} (the prompt's, reached by fine-tuning)"
        elif d.get("range"):
            span = f", over {metric} {d['range'][0]:.3f} to {d['range'][1]:.3f}"
        out["data_advantage"] = f"the best prompt is worth {d['examples']:.1f}{err} labelled {unit}{span}" + (
            " (negative: fine-tuning reaches the same quality with fewer examples)" if d["examples"] < 0 else ""
        )
    elif d:
        out["data_advantage"] = f"none: {d.get('why', 'not computed')}"
    return out


def curve_table(curve: CurveSection) -> list[dict[str, Any]]:
    """Per method (prompt route first): its route and, per size of the curve, ``mean ± std [band] (seeds)`` (None
    where the method did not run at that size)."""
    sizes = curve.sizes
    methods = sorted(curve.methods.items(), key=lambda kv: kv[1].get("route") != "prompt")
    out = []
    for name, m in methods:
        cells = []
        for size in sizes:
            p = m["points"].get(size)
            cells.append(
                None
                if p is None
                else f"{p['mean']:.3f} ± {p['std']:.3f} [{p['band_low']:.3f}, {p['band_high']:.3f}] ({p['n_seeds']})"
            )
        out.append({"method": name, "route": m.get("route"), "cells": cells})
    return out


def markdown(curve: CurveSection) -> list[str]:
    """The Learning curve section of report.md: the table of methods × sizes and its figures in words."""
    text = curve_text(curve)
    sizes = curve.sizes
    lines = [
        "",
        f"## Learning curve (test {curve.metric}: mean ± std over seeds [bootstrap band] (seeds), "
        f"per size in {text['unit']})",
        "",
        "| method | route | " + " | ".join(sizes) + " |",
        "|---|---|" + "---|" * len(sizes),
    ]
    for row in curve_table(curve):
        cells = " | ".join(c or MISSING for c in row["cells"])
        lines.append(f"| {row['method']} | {route_title(row['route'])} | {cells} |")
    lines.append("")
    for key, title in (("crossover", "Crossover"), ("variance_aware", "Variance-aware break-even")):
        if text[key]:
            lines.append(f"- {title}: {text[key]}.")
    if text["data_advantage"]:
        lines.append(f"- Data advantage: {text['data_advantage']}.")
    for e in curve.break_even:
        unit = unit_label(e["unit"], e.get("currency"))
        lines.append(
            f"- Break-even at size {e['size']} ({e['prompt']} vs {e['finetune']}, {unit}): "
            f"Q* = {fmt_queries(e['queries'])}; {e['sentence']}; quality difference {e['quality_difference']:+.3f}."
        )
    return lines
