"""What each trial cost, in money, FLOPs and seconds, and from which query volume fine-tuning is the cheaper route.

Built from report rows (see :mod:`tailor.report.build`) and the user's prices only: the task file's ``costs:`` (money
per
CPU- or GPU-hour of local compute, :class:`tailor.config.costs.CostsSpec`) and each served model's ``price:`` (per
million tokens, :class:`tailor.config.model.Price`). tailor keeps no price table: where a price is missing, money is
``None`` and ``missing`` says, in the user's words, which key to add.

Every trial costs two amounts in each unit: once to adapt, and per 1,000 test queries. Local trials are priced by
the hour of the device they ran on (adapting and predicting alike); served trials by the tokens they sent and
received, their waiting time reported but not charged. FLOPs are those of :mod:`tailor.costs.usage` (unknown for served
models). The break-even arithmetic is :mod:`tailor.costs.breakeven`'s.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from itertools import product
from typing import Any

from ..config.model import Price
from .breakeven import Costs, break_even, sensitivity
from .usage import money

UNITS = ("money", "flops", "seconds")
"""The units of the break-even table, in the order the report tells them."""

GPU_DEVICES = ("cuda", "mps")
"""Devices priced at ``costs.gpu_hour``; ``cpu`` is priced at ``costs.cpu_hour``."""

CPU_HINT = "add `costs.cpu_hour` (money per CPU-hour) to the task file to see money for local trials"
GPU_HINT = "add `costs.gpu_hour` (money per GPU-hour) to the task file to see money for local trials on a GPU"
CURRENCY_HINT = (
    "give `costs.currency` and every model's `price.currency` the same currency to compare money across routes"
)


def price_hint(model: str) -> str:
    """What to add for money on a served model without a price."""
    return (
        f"add `price:` to the model `{model}` (input and output, per million tokens, from the provider's price page) "
        "to see money for its trials"
    )


def device_hint(method: str) -> str:
    """What to do for money on a local trial whose device was not recorded (a run from an older tailor)."""
    return f"rerun `{method}`: its run recorded no device (cpu or GPU), so its time can't be priced per hour"


def _amount(x: Any) -> float | None:
    """A cost as a float; None when unknown, and for anything that is not a finite amount of at least 0."""
    if x is None or isinstance(x, bool):
        return None
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _costs_dict(costs: Any) -> dict[str, Any]:
    if costs is None:
        return {}
    return costs.model_dump() if hasattr(costs, "model_dump") else dict(costs)


def _price(price: Any) -> Price | None:
    if price is None or isinstance(price, Price):
        return price
    return Price.model_validate(price)


def trial_costs(row: dict[str, Any], costs: dict[str, Any] | None, price: dict[str, Any] | None) -> dict[str, Any]:
    """One trial's costs: ``adapt`` ({seconds, flops, money}) and ``per_1k`` test queries ({tokens, flops, seconds,
    money}), the ``device`` it ran on (cpu, cuda, mps, served; None when not recorded), whether it was ``served``,
    the ``currency`` of its money and what is ``missing`` for money (hints for the user). ``costs`` is the task
    file's ``costs:`` (None when it gave none); ``price`` the trial's model's price (None when it has none)."""
    spec = _costs_dict(costs)
    recorded = row.get("costs") or {}
    usage = row.get("usage") or {}
    per_1k_usage = usage.get("test_per_1k") or {}
    device = recorded.get("device")
    price_obj = _price(price)
    served = device == "served" or price_obj is not None
    seconds = _amount(recorded.get("adapt_seconds"))
    seconds_1k = _amount(recorded.get("predict_seconds_per_1k"))
    tokens = None
    if per_1k_usage:
        tokens = _amount((per_1k_usage.get("input_tokens") or 0) + (per_1k_usage.get("output_tokens") or 0))
    missing: list[str] = []
    if served:  # priced by the token; FLOPs unknown (the server's model and hardware are not ours to count)
        flops, flops_1k = None, None
        currency = price_obj.currency if price_obj else spec.get("currency", "USD")
        if price_obj is None:
            money_adapt = money_1k = None
            missing.append(price_hint(row.get("model") or "?"))
        else:
            money_adapt = _amount(money(usage.get("adapt") or {}, price_obj))
            money_1k = _amount(money(per_1k_usage, price_obj)) if per_1k_usage else None
    else:  # priced by the hour of the device it ran on
        flops = _amount(recorded.get("adapt_flops"))
        flops_1k = _amount(per_1k_usage.get("flops")) if per_1k_usage else None
        currency = spec.get("currency", "USD")
        rate = _hourly_rate(device, spec, row.get("method") or "?", missing)
        money_adapt = None if rate is None or seconds is None else seconds / 3600 * rate
        money_1k = None if rate is None or seconds_1k is None else seconds_1k / 3600 * rate
    return {
        "adapt": {"seconds": seconds, "flops": flops, "money": money_adapt},
        "per_1k": {"tokens": tokens, "flops": flops_1k, "seconds": seconds_1k, "money": money_1k},
        "device": device,
        "served": served,
        "currency": currency,
        "missing": missing,
    }


def _hourly_rate(device: str | None, spec: dict[str, Any], method: str, missing: list[str]) -> float | None:
    """The price per hour of ``device`` (None, with a hint in ``missing``, when the task file gives none)."""
    cpu, gpu = _amount(spec.get("cpu_hour")), _amount(spec.get("gpu_hour"))
    if device == "cpu":
        if cpu is None:
            missing.append(CPU_HINT)
        return cpu
    if device in GPU_DEVICES:
        if gpu is None:
            missing.append(GPU_HINT)
        return gpu
    if cpu is not None and cpu == gpu:  # unknown device, but both cost the same
        return cpu
    missing.append(device_hint(method))
    return None


def mean_costs(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The mean of several :func:`trial_costs` (e.g. one method's seeds at one curve size); an amount is None where
    any item's is. ``device`` and ``currency`` are the items' own when they agree, else None; ``served`` is true
    when any item was served; ``missing`` is every item's hints."""
    if not items:
        raise ValueError("mean_costs needs at least one trial's costs")

    def mean(part: str, key: str) -> float | None:
        values = [item[part].get(key) for item in items]
        return None if any(v is None for v in values) else sum(values) / len(values)

    def common(key: str) -> Any:
        values = {item.get(key) for item in items}
        return values.pop() if len(values) == 1 else None

    return {
        "adapt": {k: mean("adapt", k) for k in ("seconds", "flops", "money")},
        "per_1k": {k: mean("per_1k", k) for k in ("tokens", "flops", "seconds", "money")},
        "device": common("device"),
        "served": any(item.get("served") for item in items),
        "currency": common("currency"),
        "missing": _unique(h for item in items for h in item.get("missing") or []),
    }


def _unique(hints: Iterable[str]) -> list[str]:
    return sorted(set(hints))


def _quality(row: dict[str, Any], primary: str) -> float | None:
    metric = (row.get("test") or {}).get(primary)
    return None if not metric or metric.get("value") is None else float(metric["value"])


def break_even_table(
    rows: Sequence[dict[str, Any]],
    costs: dict[str, Any] | None,
    prices: dict[str, dict[str, Any] | None],
    primary: str,
) -> list[dict[str, Any]]:
    """For every pair of a finished prompt-route and a finished fine-tune-route trial, and every unit both have
    figures in (money only within one currency): the break-even volume Q* (:func:`tailor.costs.breakeven.break_even`),
    the cheaper route on either side of it, the verdict in words, the quality difference (fine-tune minus prompt
    on ``primary``: quality doesn't depend on volume, so it is the same at Q*), how Q* moves when a price doubles
    or halves (money only) and the costs used (``adapt`` once, ``per_query``)."""
    ok = [r for r in rows if r.get("status") == "ok"]
    prompts = [r for r in ok if r.get("route") == "prompt"]
    finetunes = [r for r in ok if r.get("route") == "finetune"]
    priced = {r["method"]: trial_costs(r, costs, prices.get(r.get("model") or "")) for r in prompts + finetunes}
    out = []
    for p_row, f_row in product(prompts, finetunes):
        pc, fc = priced[p_row["method"]], priced[f_row["method"]]
        p_quality, f_quality = _quality(p_row, primary), _quality(f_row, primary)
        for unit in UNITS:
            if unit == "money" and pc["currency"] != fc["currency"]:
                continue
            pr, ft = _unit_costs(pc, unit), _unit_costs(fc, unit)
            if pr is None or ft is None:
                continue
            verdict = break_even(ft, pr)
            out.append(
                {
                    "prompt": p_row["method"],
                    "finetune": f_row["method"],
                    "unit": unit,
                    "currency": pc["currency"] if unit == "money" else None,
                    "queries": verdict.queries,
                    "cheaper_below": verdict.cheaper_below,
                    "cheaper_above": verdict.cheaper_above,
                    "sentence": verdict.sentence(_unit_label(unit, pc["currency"])),
                    "quality_difference": None if p_quality is None or f_quality is None else f_quality - p_quality,
                    "sensitivity": sensitivity(ft, pr) if unit == "money" else None,
                    "adapt": {"prompt": pr.adapt, "finetune": ft.adapt},
                    "per_query": {"prompt": pr.per_query, "finetune": ft.per_query},
                }
            )
    return out


def _unit_costs(trial: dict[str, Any], unit: str) -> Costs | None:
    adapt, per_1k = trial["adapt"].get(unit), trial["per_1k"].get(unit)
    return None if adapt is None or per_1k is None else Costs(adapt, per_1k / 1000)


def _unit_label(unit: str, currency: str | None) -> str:
    return {"money": currency or "money", "flops": "FLOPs", "seconds": "seconds"}[unit]


def cumulative_lines(entry: dict[str, Any], volumes: Sequence[float]) -> dict[str, Any]:
    """For one :func:`break_even_table` entry, each route's cumulative cost (adapt + volume × per query) at each of
    ``volumes`` queries: the two lines of a plot of cost against volume, which cross at Q*."""
    lines: dict[str, Any] = {"unit": entry["unit"], "volumes": [float(v) for v in volumes]}
    for route in ("prompt", "finetune"):
        line = Costs(entry["adapt"][route], entry["per_query"][route])
        lines[route] = [line.after(v) for v in lines["volumes"]]
    return lines


def cost_view(
    rows: Sequence[dict[str, Any]],
    costs: dict[str, Any] | None,
    prices: dict[str, dict[str, Any] | None],
    primary: str,
) -> dict[str, Any]:
    """The report's cost section: the ``prices`` used (the task file's hourly ones and each priced model's), every
    finished trial's :func:`trial_costs`, the :func:`break_even_table`, and what is ``missing`` for money."""
    spec = _costs_dict(costs)
    ok = [r for r in rows if r.get("status") == "ok"]
    trials = {r["method"]: trial_costs(r, costs, prices.get(r.get("model") or "")) for r in ok}
    missing = [h for t in trials.values() for h in t["missing"]]
    currencies = {t["currency"] for t in trials.values() if t["adapt"]["money"] is not None}
    if len(currencies) > 1:
        missing.append(CURRENCY_HINT)
    models = {}
    for name, price in prices.items():
        p = _price(price)
        if p is not None:
            models[name] = p.model_dump()
    return {
        "prices": {
            "currency": spec.get("currency", "USD"),
            "cpu_hour": spec.get("cpu_hour"),
            "gpu_hour": spec.get("gpu_hour"),
            "models": models,
        },
        "trials": trials,
        "break_even": break_even_table(rows, costs, prices, primary),
        "missing": _unique(missing),
    }


def _fmt(x: float | None, digits: int = 1) -> str:
    if x is None:
        return "–"
    if x and abs(x) >= 1e6:
        return f"{x:.2e}"
    return f"{x:,.{digits}f}"


def _fmt_money(x: float | None, currency: str | None) -> str:
    return "–" if x is None else f"{currency or ''} {x:.4f}".strip()


def _fmt_queries(q: float | None) -> str:
    return "none (the costs never cross)" if q is None else f"{q:,.0f}"


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
            f"{_fmt_money(a['money'], cur)} | {_fmt(q['tokens'], 0)} | {_fmt(q['flops'], 0)} | "
            f"{_fmt(q['seconds'], 2)} s | {_fmt_money(q['money'], cur)} |"
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
            f"- {e['prompt']} vs {e['finetune']}, in {_unit_label(e['unit'], e.get('currency'))}: "
            f"Q* = {_fmt_queries(e['queries'])}; {e['sentence']}; {quality}."
        )
    moved = [e for e in view["break_even"] if e.get("sensitivity")]
    if moved:
        lines += ["", "How Q* moves when one price doubles (×2) or halves (÷2):", ""]
    for e in moved:
        parts = ", ".join(f"{k} → {_fmt_queries(v)}" for k, v in e["sensitivity"].items())
        lines.append(f"- {e['prompt']} vs {e['finetune']} (Q* = {_fmt_queries(e['queries'])}): {parts}")
    if view["missing"]:
        lines += ["", "For money:", "", *[f"- {h}" for h in view["missing"]]]
    return lines
