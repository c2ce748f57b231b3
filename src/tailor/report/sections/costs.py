"""The cost section: what each compared trial cost to adapt and per 1,000 test queries, in money, FLOPs and seconds
(:func:`tailor.costs.pricing.cost_view`); quality against cost with its Pareto front; and from which query volume
fine-tuning is the cheaper route (the break-even volume Q* of every prompt/fine-tune pair, and how it moves when a
price doubles or halves).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...costs.pricing import cost_view
from ...formats import UNITS, fmt_count, fmt_flops, fmt_money, fmt_queries, fmt_seconds, unit_label
from ..figures.costs import break_even_svg, pareto_svg
from ..records import Records
from .leaderboard import Row


@dataclass(frozen=True)
class CostsSection:
    """The prices used, each compared trial's costs (``trials``: ``adapt`` and ``per_1k`` in each unit, ``device``,
    ``currency``), the break-even entries, and what is ``missing`` for money, as report.json's ``costs`` keeps
    them (see :func:`tailor.costs.pricing.cost_view`)."""

    prices: dict[str, Any]
    trials: dict[str, dict[str, Any]]
    break_even: list[dict[str, Any]]
    missing: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"prices": self.prices, "trials": self.trials, "break_even": self.break_even, "missing": self.missing}

    @property
    def plot_unit(self) -> str | None:
        """The unit quality is plotted against: money when every trial has money per 1,000 queries, else FLOPs when
        every one has FLOPs, else seconds (None: no trial has a cost in any unit)."""
        trials = list(self.trials.values())
        for unit in UNITS:
            if trials and all((t.get("per_1k") or {}).get(unit) is not None for t in trials):
                return unit
        return "seconds" if any((t.get("per_1k") or {}).get("seconds") is not None for t in trials) else None

    def label(self, unit: str) -> str:
        """``unit`` as an axis names it: money in the one currency of the trials (else the prices')."""
        currencies = {t.get("currency") for t in self.trials.values()} - {None}
        currency = currencies.pop() if len(currencies) == 1 else self.prices.get("currency")
        return unit_label(unit, currency)


def model_prices(config: dict[str, Any]) -> dict[str, dict[str, Any] | None]:
    """Each model of the run's configuration by name, with its price per million tokens (None: none given)."""
    out = {config["model"]["name"]: config["model"].get("price")}
    for entry in config.get("methods") or []:
        model = entry.get("model")
        if model:
            out[model["name"]] = model.get("price")
    return out


def build_costs(records: Records) -> CostsSection:
    """The costs of the compared trials, at the run's prices."""
    config = records.config
    compared = set(records.compared)
    view = cost_view(
        [t for t in records.trials if t["trial"] in compared],
        config.get("costs"),
        model_prices(config),
        records.metrics[0],
    )
    return CostsSection(**view)


def cost_rows(costs: CostsSection) -> list[dict[str, str]]:
    """Each trial's costs as display strings (report.md and report.html share them)."""
    out = []
    for name, t in costs.trials.items():
        a, q = t["adapt"], t["per_1k"]
        cur = t.get("currency") or costs.prices.get("currency")
        tokens = q.get("tokens")
        out.append(
            {
                "trial": name,
                "device": t.get("device") or "?",
                "adapt_time": fmt_seconds(a.get("seconds")),
                "adapt_flops": fmt_flops(a.get("flops")),
                "adapt_money": fmt_money(a.get("money"), cur),
                "tokens_1k": fmt_count(round(tokens)) if tokens is not None else fmt_count(None),
                "flops_1k": fmt_flops(q.get("flops")),
                "time_1k": fmt_seconds(q.get("seconds"), 2),
                "money_1k": fmt_money(q.get("money"), cur),
            }
        )
    return out


def quality_text(e: dict[str, Any], primary: str) -> str:
    """A break-even entry's quality difference in words: it holds at any volume."""
    diff = e.get("quality_difference")
    if diff is None:
        return f"no {primary} to compare"
    return f"fine-tuning is {abs(diff):.3f} {'better' if diff >= 0 else 'worse'} on {primary} at any volume"


def markdown(costs: CostsSection, primary: str) -> list[str]:
    """The Costs section of report.md: each trial's costs, the break-even volumes in words beside the quality
    difference, how Q* moves when a price doubles or halves, and what to add for money."""
    lines = [
        "",
        "## Costs",
        "",
        "| trial | device | adapt time | adapt FLOPs | adapt money | tokens / 1k | FLOPs / 1k | time / 1k "
        "| money / 1k |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in cost_rows(costs):
        lines.append(
            f"| {r['trial']} | {r['device']} | {r['adapt_time']} | {r['adapt_flops']} | {r['adapt_money']} | "
            f"{r['tokens_1k']} | {r['flops_1k']} | {r['time_1k']} | {r['money_1k']} |"
        )
    lines += ["", "Per 1k: per 1,000 test queries. Served models' time is waiting for the server, not charged."]
    if costs.break_even:
        lines += ["", "### Break-even volume (Q*: the query volume from which the cheaper route changes)", ""]
    for e in costs.break_even:
        lines.append(
            f"- {e['prompt']} vs {e['finetune']}, in {unit_label(e['unit'], e.get('currency'))}: "
            f"Q* = {fmt_queries(e['queries'])}; {e['sentence']}; {quality_text(e, primary)}."
        )
    moved = [e for e in costs.break_even if e.get("sensitivity")]
    if moved:
        lines += ["", "How Q* moves when one price doubles (×2) or halves (÷2):", ""]
    for e in moved:
        parts = ", ".join(f"{k} → {fmt_queries(v)}" for k, v in e["sensitivity"].items())
        lines.append(f"- {e['prompt']} vs {e['finetune']} (Q* = {fmt_queries(e['queries'])}): {parts}")
    if costs.missing:
        lines += ["", "For money:", "", *[f"- {h}" for h in costs.missing]]
    return lines


def figures(costs: CostsSection, leaderboard: list[Row], primary: str) -> dict[str, Any]:
    """The section's figures as SVG ("" where there is nothing to draw), with the units they are drawn in: quality
    against cost per 1,000 queries in :attr:`CostsSection.plot_unit`, and the cumulative costs of the break-even
    pairs in the same unit when they have it, else the first they have."""
    out: dict[str, Any] = {"pareto": "", "pareto_unit": None, "break_even": "", "break_even_unit": None}
    unit = costs.plot_unit
    if unit:
        points = []
        for r in leaderboard:
            trial, metric = costs.trials.get(r.trial), (r.test or {}).get(primary)
            if trial is None or r.status != "ok" or not metric:
                continue
            points.append(
                {
                    "method": r.trial,
                    "route": r.route,
                    "quality": metric["value"],
                    "ci_low": metric.get("ci_low"),
                    "ci_high": metric.get("ci_high"),
                    "cost_per_1k": trial["per_1k"].get(unit),
                }
            )
        out["pareto"] = pareto_svg(points, primary, costs.label(unit))
        out["pareto_unit"] = costs.label(unit) if out["pareto"] else None
    if costs.break_even:
        units = [e["unit"] for e in costs.break_even]
        chosen = unit if unit in units else units[0]
        out["break_even"] = break_even_svg([e for e in costs.break_even if e["unit"] == chosen])
        out["break_even_unit"] = costs.label(chosen) if out["break_even"] else None
    return out


def headline_break_even(
    costs: CostsSection, winner: str | None, leaderboard: list[Row], primary: str
) -> dict[str, Any] | None:
    """The break-even entry to tell first: the ``winner``'s pair with the best trial of the other route, in money
    when there is money, else FLOPs, else seconds."""
    if not costs.break_even:
        return None
    quality = {r.trial: r.quality(primary) or 0.0 for r in leaderboard}
    mine = [e for e in costs.break_even if winner in (e["prompt"], e["finetune"])] or costs.break_even

    def key(e: dict[str, Any]) -> tuple[int, float]:
        other = e["finetune"] if e["prompt"] == winner else e["prompt"]
        unit = UNITS.index(e["unit"]) if e["unit"] in UNITS else len(UNITS)
        return unit, -quality.get(other, 0.0)

    return min(mine, key=key)
