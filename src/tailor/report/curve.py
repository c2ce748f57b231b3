"""A learning curve's part of the report, read from the run store only: per method and size the spread over seeds,
the prompt route against the fine-tune route (crossover n*, the variance-aware break-even, the data advantage),
P(A > B) per size, and the verdict in words. The statistics themselves live in :mod:`tailor.stats.curves`."""

from __future__ import annotations

from typing import Any

from ..costs.breakeven import Costs, break_even
from ..costs.pricing import mean_costs, trial_costs
from ..stats.curves import Point, crossover, data_advantage, method_stats, p_better, route_curves, variance_aware

UNITS = ("money", "flops", "seconds")
"""Break-even is told in the first of these that both routes have: money needs prices, FLOPs and seconds don't."""


def curve_points(rows: list[dict[str, Any]], primary: str, kind: str, n_labels: int) -> list[Point]:
    """One point per finished curve trial: its method (family and variant), route, size, seed and scores.

    ``x`` is the size as a number: the curve's own for numbered sizes; for ``all``, the training examples the trial
    had (per class for classification), since that is where the point sits on the axis."""
    out = []
    for r in rows:
        if r["status"] != "ok" or r.get("size") is None or not r.get("test"):
            continue
        size = r["size"]
        if size == "all":
            x = (r["train_size"] or 0) / (n_labels if kind == "classification" and n_labels else 1)
        else:
            x = float(size)
        dev = (r.get("dev") or {}).get(primary)
        out.append(
            Point(
                method=curve_method(r),
                route=r["route"],
                size=str(size),
                x=float(x),
                seed=int(r["seed"]),
                test=float(r["test"][primary]["value"]),
                dev=None if dev is None else float(dev),
            )
        )
    return out


def curve_method(row: dict[str, Any]) -> str:
    """A curve trial's method as the curve shows it: its family, and its variant when it has one."""
    return f"{row['family']}/{row['variant']}" if row.get("variant") else row["family"]


def curve_section(
    rows: list[dict[str, Any]],
    config: dict[str, Any],
    primary: str,
    n_labels: int,
    seed: int,
) -> dict[str, Any]:
    """Everything the report shows of a curve (see :mod:`tailor.stats.curves` for how each figure is computed)."""
    curve, kind = config["curve"], config["kind"]
    points = curve_points(rows, primary, kind, n_labels)
    stats = config.get("stats") or {}
    methods = method_stats(points, stats.get("bootstrap", 1000), stats.get("confidence", 0.95), seed)
    routes = route_curves(points)
    seeds = sorted({p.seed for p in points})
    x: dict[str, float] = {}
    for p in points:
        x.setdefault(p.size, p.x)
    section: dict[str, Any] = {
        "unit": "per class" if kind == "classification" else "examples",
        "metric": primary,
        "sizes": [str(s) for s in curve["sizes"] if str(s) in x],
        "x": x,
        "seeds": seeds,
        "methods": methods,
        "routes": routes,
        "crossover": None,
        "variance_aware": None,
        "data_advantage": None,
        "p_better": p_better(points),
        "notes": [],
    }
    prompt, finetune = routes.get("prompt"), routes.get("finetune")
    if prompt and finetune:
        try:
            section["crossover"] = crossover(prompt, finetune, stats.get("confidence", 0.95))
            section["variance_aware"] = variance_aware(prompt, finetune)
            section["data_advantage"] = data_advantage(prompt, finetune)
        except ValueError as exc:  # too few seeds or sizes in common: said, not hidden
            section["notes"].append(f"the routes can't be compared over seeds: {exc}")
    else:
        missing = "prompt" if not prompt else "fine-tune"
        section["notes"].append(f"no finished {missing}-route trials: no crossover, data advantage or break-even")
    section["notes"] += seed_notes(section)
    section["break_even"] = route_break_even(rows, routes, config, primary) if prompt and finetune else []
    section["verdict"] = verdict(section, section["break_even"][-1:])
    return section


def seed_notes(section: dict[str, Any]) -> list[str]:
    """Where a figure rests on fewer seeds than the curve has, because some method ran fewer (its own `curve:`, or
    failed trials): the routes' choices on dev, compared over the seeds all candidates ran, and the figures that
    pair seeds across the routes (crossover, data advantage), over the seeds both routes ran."""
    total = len(section["seeds"])
    out = []
    for route, points in section["routes"].items():
        fewer = [size for size, p in points.items() if len(p["compared_seeds"]) < total]
        if fewer:
            name = "fine-tune" if route == "finetune" else route
            out.append(
                f"the {name} route's methods were compared on dev over the seeds all of them ran, fewer than the "
                f"curve's {total}, at {', '.join(fewer)}"
            )
    short = [
        f"{p['method']}@{size} ({len(p['by_seed'])})"
        for points in section["routes"].values()
        for size, p in points.items()
        if len(p["by_seed"]) < total
    ]
    for key, what in (("crossover", "the crossover"), ("data_advantage", "the data advantage")):
        figure = section.get(key)
        if figure and figure.get("seed_list") is not None and len(figure["seed_list"]) < total:
            seeds, where = figure["seed_list"], ", ".join(short) or "some sizes"
            out.append(
                f"{what} pairs seeds across the routes, so it uses the {len(seeds)} both ran "
                f"({', '.join(map(str, seeds))}) of the curve's {total}; fewer ran at {where}"
            )
    return out


def verdict(section: dict[str, Any], break_even: list[dict[str, Any]]) -> list[str]:
    """The curve's answer in a few sentences: where fine-tuning overtakes prompting, what a prompt is worth in
    labelled examples, and from which query volume the cheaper route changes."""
    unit = "examples per class" if section["unit"] == "per class" else "examples"
    out = list(section["notes"])
    c = section.get("crossover")
    conf = f"{c['confidence']:.0%}" if c else ""
    if c and c["n"] is None:
        out.append(f"Prompting stays ahead of fine-tuning at every size measured (mean over {c['seeds']} seeds).")
    elif c:
        low = "at or below the smallest size" if c["ci_low"] is None else f"{c['ci_low']:.1f}"
        high = "beyond the largest size" if c["ci_high"] is None else f"{c['ci_high']:.1f}"
        where = (
            f"from the smallest size measured ({c['n']:.0f} {unit})"
            if c["status"] == "finetune ahead at every size"
            else f"from about n* = {c['n']:.1f} {unit}"
        )
        interval = f"{conf} interval {low} to {high}, over {c['seeds']} seeds"
        out.append(f"Fine-tuning overtakes prompting {where}; {interval}.")
    v = section.get("variance_aware")
    if v and v["n"] is not None:
        out.append(f"It is ahead for most pairs of seeds from {v['n']:g} {unit} on (variance-aware break-even).")
    elif v:
        out.append("At no size is fine-tuning ahead for most pairs of seeds from there on.")
    d = section.get("data_advantage")
    if d and d.get("examples") is not None:
        err = f" ± {d['error']:.1f}" if d.get("error") is not None else ""
        how = "Le Scao & Rush's data advantage: the mean horizontal gap between the two curves over the quality range"
        flat = d.get("range") and d["range"][0] == d["range"][1]
        if d["examples"] >= 0 and flat:  # a flat prompt curve: the gap at its one quality
            out.append(
                f"The best prompt is worth {d['examples']:.1f}{err} labelled {unit}: fine-tuning needs that many more "
                f"to reach its {d['range'][0]:.3f} (Le Scao & Rush's data advantage, for a prompt curve that is flat)."
            )
        elif d["examples"] >= 0:
            out.append(f"The best prompt is worth {d['examples']:.1f}{err} labelled {unit} ({how} both reach).")
        else:
            out.append(
                f"The best prompt is worth no labelled examples here: fine-tuning reaches the same quality with "
                f"{-d['examples']:.1f}{err} fewer {unit} ({how} both reach, {d['examples']:.1f})."
            )
    elif d:
        out.append(f"No data advantage: {d['why']}.")
    for entry in break_even:
        diff = entry["quality_difference"]
        out.append(
            f"At size {entry['size']}: {entry['sentence']}; fine-tuning ({entry['finetune']}) is "
            f"{abs(diff):.3f} {'better' if diff >= 0 else 'worse'} than prompting ({entry['prompt']})."
        )
    return out


def model_prices(config: dict[str, Any]) -> dict[str, dict[str, Any] | None]:
    """Each model of the run's configuration by name, with its price per million tokens (None: none given)."""
    out = {config["model"]["name"]: config["model"].get("price")}
    for entry in config.get("methods") or []:
        model = entry.get("model")
        if model:
            out[model["name"]] = model.get("price")
    return out


def compared_trials(rows: list[dict[str, Any]], config: dict[str, Any]) -> set[str]:
    """The trials the paired tests, the winner and the cost views compare: all of a run's; in a curve, each
    method's trial at its largest size and first seed (the others are the curve's business)."""
    if not config.get("curve"):
        return {r["method"] for r in rows}
    order = {str(s): i for i, s in enumerate(config["curve"]["sizes"])}
    best: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r["status"] != "ok" or r.get("size") is None:
            continue
        key = curve_method(r)
        rank = (order.get(r["size"], -1), -r["seed"])
        if key not in best or rank > (order.get(best[key]["size"], -1), -best[key]["seed"]):
            best[key] = r
    return {r["method"] for r in best.values()}


def route_break_even(
    rows: list[dict[str, Any]], routes: dict[str, Any], config: dict[str, Any], primary: str
) -> list[dict[str, Any]]:
    """At each size both routes reach: the break-even volume between the route's representatives there (mean costs
    over seeds), in money when prices allow, else FLOPs, else seconds; with the quality difference, fine-tune minus
    prompt over the seeds both ran (``quality_seeds``)."""
    prices = model_prices(config)
    by_point: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        if r["status"] == "ok" and r.get("size") is not None:
            by_point.setdefault((curve_method(r), r["size"]), []).append(r)

    def costs_of(method: str, size: str) -> dict[str, Any] | None:
        trials = by_point.get((method, size)) or by_point.get((method, "0"))  # a size-0 method serves every size
        if not trials:
            return None
        return mean_costs(
            [trial_costs({**r, "trial": r["method"]}, config.get("costs"), prices.get(r["model"])) for r in trials]
        )

    out = []
    for size, f in routes["finetune"].items():
        p = routes["prompt"].get(size)
        if p is None:
            continue
        fc, pc = costs_of(f["method"], size), costs_of(p["method"], size)
        if fc is None or pc is None:
            continue
        unit = next((u for u in UNITS if _has(fc, u) and _has(pc, u)), None)
        if unit is None:
            continue
        ft = Costs(fc["adapt"][unit], fc["per_1k"][unit] / 1000)
        pr = Costs(pc["adapt"][unit], pc["per_1k"][unit] / 1000)
        be = break_even(ft, pr)
        currency = (config.get("costs") or {}).get("currency") or "USD"
        # paired by seed, over the seeds both representatives ran (the same draws): a plain difference of means
        # would compare different draws when one ran fewer seeds
        both = sorted(set(f["by_seed"]) & set(p["by_seed"]))
        diff = sum(f["by_seed"][s] - p["by_seed"][s] for s in both) / len(both) if both else f["mean"] - p["mean"]
        out.append(
            {
                "size": size,
                "prompt": p["method"],
                "finetune": f["method"],
                "unit": unit,
                "queries": be.queries,
                "cheaper_below": be.cheaper_below,
                "cheaper_above": be.cheaper_above,
                "sentence": be.sentence(currency if unit == "money" else unit),
                "quality_difference": diff,
                "quality_seeds": len(both),
                "adapt": {"prompt": pr.adapt, "finetune": ft.adapt},
                "per_query": {"prompt": pr.per_query, "finetune": ft.per_query},
            }
        )
    return out


def _has(costs: dict[str, Any], unit: str) -> bool:
    return costs["adapt"].get(unit) is not None and costs["per_1k"].get(unit) is not None


def summarize_curve(report: dict[str, Any]) -> dict[str, Any]:
    """A curve's compact, stable figures (the benchmark summary): per method and size the mean, std and seeds; the
    crossover with its interval; the data advantage with its error; the break-even volumes with the prices used."""
    curve = report["curve"]
    costs = report.get("costs") or {}
    return {
        "task": report["task"],
        "model": report["model"],
        "primary_metric": report["primary_metric"],
        "scale": "0-1",
        "unit": curve["unit"],
        "n_test": report["data"]["test"],
        "seeds": curve["seeds"],
        "status": report["status"],
        "methods": {
            name: {
                size: {"mean": p["mean"], "std": p["std"], "n_seeds": p["n_seeds"]} for size, p in m["points"].items()
            }
            for name, m in curve["methods"].items()
        },
        "routes": {
            route: {size: {"method": p["method"], "mean": p["mean"]} for size, p in points.items()}
            for route, points in curve["routes"].items()
        },
        "crossover": _pick(
            curve.get("crossover"), ("n", "ci_low", "ci_high", "status", "confidence", "method", "seeds", "seed_list")
        ),
        "variance_aware_break_even": _pick(curve.get("variance_aware"), ("n",)),
        "data_advantage": _pick(curve.get("data_advantage"), ("examples", "error", "range", "why", "seeds")),
        "break_even_queries": {
            "prices": costs.get("prices"),
            "by_size": [{k: e[k] for k in BREAK_EVEN_KEYS if k in e} for e in curve.get("break_even") or []],
        },
        "verdict": curve["verdict"],
        "versions": report["versions"],
        "git_rev": report["git_rev"],
    }


BREAK_EVEN_KEYS = (
    "size",
    "prompt",
    "finetune",
    "unit",
    "queries",
    "cheaper_above",
    "quality_difference",
    "quality_seeds",
)
"""What the benchmark summary keeps of each size's break-even (``quality_seeds`` is absent from older reports)."""


def _pick(d: dict[str, Any] | None, keys: tuple[str, ...]) -> dict[str, Any] | None:
    return None if d is None else {k: d.get(k) for k in keys if k in d}
