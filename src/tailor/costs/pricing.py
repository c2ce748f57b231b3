"""What each trial cost, in money, FLOPs and seconds, and from which query volume fine-tuning is the cheaper route.

Built from trial records as the run store keeps them (:meth:`tailor.runner.store.RunStore.results`: the trial's
``trial`` name, ``route``, ``status``, ``model``, ``costs``, ``usage`` and ``test``) and the user's prices only: the
task file's ``costs:`` (money per CPU- or GPU-hour of local compute, :class:`tailor.config.costs.CostsSpec`) and each
served model's ``price:`` (per million tokens, :class:`tailor.config.model.Price`). tailor keeps no price table:
where a price is missing, money is ``None`` and ``missing`` says, in the user's words, which key to add.

Every trial costs two amounts in each unit: once to adapt, and per 1,000 test queries. Local trials are priced by
the hour of the device they ran on (adapting and predicting alike); served trials by the tokens they sent and
received, their waiting time reported but not charged. FLOPs are those of :mod:`tailor.costs.usage` (unknown for
served models). The break-even arithmetic is :mod:`tailor.costs.breakeven`'s; how each unit is named and written,
:mod:`tailor.formats`'.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from itertools import product
from typing import Any

from ..config.model import Price
from ..formats import UNITS, unit_label
from .breakeven import Costs, break_even, sensitivity
from .usage import money

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


def device_hint(trial: str) -> str:
    """What to do for money on a local trial whose device was not recorded (a run from an older tailor)."""
    return f"rerun `{trial}`: its run recorded no device (cpu or GPU), so its time can't be priced per hour"


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
        rate = _hourly_rate(device, spec, row.get("trial") or "?", missing)
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


def _hourly_rate(device: str | None, spec: dict[str, Any], trial: str, missing: list[str]) -> float | None:
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
    missing.append(device_hint(trial))
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
        "adapt": {k: mean("adapt", k) for k in items[0]["adapt"]},  # the amounts trial_costs gives, in its order
        "per_1k": {k: mean("per_1k", k) for k in items[0]["per_1k"]},
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


def shared_units(prompt: dict[str, Any], finetune: dict[str, Any]) -> list[str]:
    """The units (of :data:`tailor.formats.UNITS`, in order) in which two :func:`trial_costs` both have an adapt and a
    per-query cost: money only when both are in one currency (no exchange rates are guessed)."""
    return [
        unit
        for unit in UNITS
        if _unit_costs(prompt, unit) is not None
        and _unit_costs(finetune, unit) is not None
        and (unit != "money" or prompt["currency"] == finetune["currency"])
    ]


def break_even_entry(
    prompt: tuple[str, dict[str, Any]], finetune: tuple[str, dict[str, Any]], unit: str
) -> dict[str, Any]:
    """The break-even of one prompt-route and one fine-tune-route trial (each a name and its :func:`trial_costs`) in
    ``unit`` (one of :func:`shared_units`): the volume Q* (:func:`tailor.costs.breakeven.break_even`), the cheaper
    route on either side of it, the verdict in words, and the costs used (``adapt`` once, ``per_query``)."""
    (p_name, pc), (f_name, fc) = prompt, finetune
    pr, ft = _unit_costs(pc, unit), _unit_costs(fc, unit)
    if pr is None or ft is None:
        raise ValueError(f"{p_name} and {f_name} don't both have costs in {unit}")
    currency = pc["currency"] if unit == "money" else None
    verdict = break_even(ft, pr)
    return {
        "prompt": p_name,
        "finetune": f_name,
        "unit": unit,
        "currency": currency,
        "queries": verdict.queries,
        "cheaper_below": verdict.cheaper_below,
        "cheaper_above": verdict.cheaper_above,
        "sentence": verdict.sentence(unit_label(unit, currency)),
        "adapt": {"prompt": pr.adapt, "finetune": ft.adapt},
        "per_query": {"prompt": pr.per_query, "finetune": ft.per_query},
    }


def break_even_table(
    rows: Sequence[dict[str, Any]],
    costs: dict[str, Any] | None,
    prices: dict[str, dict[str, Any] | None],
    primary: str,
) -> list[dict[str, Any]]:
    """For every pair of a finished prompt-route and a finished fine-tune-route trial, and every unit both have
    figures in (:func:`shared_units`): its :func:`break_even_entry`, with the quality difference (fine-tune minus
    prompt on ``primary``: quality doesn't depend on volume, so it is the same at Q*) and how Q* moves when a price
    doubles or halves (money only)."""
    ok = [r for r in rows if r.get("status") == "ok"]
    prompts = [r for r in ok if r.get("route") == "prompt"]
    finetunes = [r for r in ok if r.get("route") == "finetune"]
    priced = {r["trial"]: trial_costs(r, costs, prices.get(r.get("model") or "")) for r in prompts + finetunes}
    out = []
    for p_row, f_row in product(prompts, finetunes):
        pc, fc = priced[p_row["trial"]], priced[f_row["trial"]]
        p_quality, f_quality = _quality(p_row, primary), _quality(f_row, primary)
        for unit in shared_units(pc, fc):
            entry = break_even_entry((p_row["trial"], pc), (f_row["trial"], fc), unit)
            entry["quality_difference"] = None if p_quality is None or f_quality is None else f_quality - p_quality
            entry["sensitivity"] = (
                sensitivity(_unit_costs(fc, unit), _unit_costs(pc, unit)) if unit == "money" else None
            )
            out.append(entry)
    return out


def _unit_costs(trial: dict[str, Any], unit: str) -> Costs | None:
    adapt, per_1k = trial["adapt"].get(unit), trial["per_1k"].get(unit)
    return None if adapt is None or per_1k is None else Costs(adapt, per_1k / 1000)


def cumulative_lines(entry: dict[str, Any], volumes: Sequence[float]) -> dict[str, Any]:
    """For one :func:`break_even_entry`, each route's cumulative cost (adapt + volume × per query) at each of
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
    trials = {r["trial"]: trial_costs(r, costs, prices.get(r.get("model") or "")) for r in ok}
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
