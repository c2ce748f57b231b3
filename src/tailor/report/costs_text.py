"""The cost section of report.md (temporary home while the report is rebuilt as sections)."""

from __future__ import annotations

from typing import Any

from ..formats import fmt_money, fmt_queries, unit_label


def _fmt(x: float | None, digits: int = 1) -> str:
    if x is None:
        return "–"
    if x and abs(x) >= 1e6:
        return f"{x:.2e}"
    return f"{x:,.{digits}f}"


def costs_markdown(view: dict[str, Any], primary: str) -> list[str]:
    """The cost section as markdown lines: each trial's costs, the break-even volumes in words beside the quality
    difference, how Q* moves when a price doubles or halves, and what to add for money."""
    lines = [
        "## Costs",
        "",
        "| trial | device | adapt time | adapt FLOPs | adapt money | tokens / 1k | FLOPs / 1k | time / 1k "
        "| money / 1k |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, t in view["trials"].items():
        a, q, cur = t["adapt"], t["per_1k"], t.get("currency")
        lines.append(
            f"| {name} | {t['device'] or '?'} | {_fmt(a['seconds'])} s | {_fmt(a['flops'], 0)} | "
            f"{fmt_money(a['money'], cur)} | {_fmt(q['tokens'], 0)} | {_fmt(q['flops'], 0)} | "
            f"{_fmt(q['seconds'], 2)} s | {fmt_money(q['money'], cur)} |"
        )
    lines += ["", "Per 1k: per 1,000 test queries. Served models' time is waiting for the server, not charged."]
    if view["break_even"]:
        lines += ["", "### Break-even volume (Q*: the query volume from which the cheaper route changes)", ""]
    for e in view["break_even"]:
        diff = e["quality_difference"]
        quality = (
            f"fine-tuning is {abs(diff):.3f} {'better' if diff >= 0 else 'worse'} on {primary} at any volume"
            if diff is not None
            else f"no {primary} to compare"
        )
        lines.append(
            f"- {e['prompt']} vs {e['finetune']}, in {unit_label(e['unit'], e.get('currency'))}: "
            f"Q* = {fmt_queries(e['queries'])}; {e['sentence']}; {quality}."
        )
    moved = [e for e in view["break_even"] if e.get("sensitivity")]
    if moved:
        lines += ["", "How Q* moves when one price doubles (×2) or halves (÷2):", ""]
    for e in moved:
        parts = ", ".join(f"{k} → {fmt_queries(v)}" for k, v in e["sensitivity"].items())
        lines.append(f"- {e['prompt']} vs {e['finetune']} (Q* = {fmt_queries(e['queries'])}): {parts}")
    if view["missing"]:
        lines += ["", "For money:", "", *[f"- {h}" for h in view["missing"]]]
    return lines
