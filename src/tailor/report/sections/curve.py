"""A learning curve's section, from the run's records only: per method and size the spread over seeds, the prompt
route against the fine-tune route (crossover n*, the variance-aware break-even, the data advantage), P(A > B) per
size, the break-even volume at each size both routes reach, and the verdict in words. The statistics themselves
are :mod:`tailor.stats.curves`'; the section in words and tables, :mod:`.curve_text`; its figure,
:mod:`tailor.report.figures.curve`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ...costs.pricing import break_even_entry, mean_costs, shared_units, trial_costs
from ...formats import route_name
from ...stats.curves import Point, crossover, data_advantage, method_stats, p_better, route_curves, variance_aware
from ..figures.curve import learning_curves_svg
from ..records import Records, curve_method
from .costs import model_prices


@dataclass(frozen=True)
class CurveSection:
    """A learning curve's figures, as report.json's ``curve`` keeps them (see :mod:`tailor.stats.curves` for each).

    Attributes:
        unit: ``per class`` (classification: sizes are examples per class) or ``examples``.
        metric: The metric the curve is drawn in (the run's primary one).
        sizes: The curve's sizes that have a point, as the curve names them; ``x`` each one's position.
        seeds: The seeds any trial ran.
        methods: Per method (family/variant) its route and, per size, mean, std, band and seeds.
        routes: Per route and size, the method that represents it there (chosen on dev).
        crossover: Where fine-tuning overtakes prompting, n* with its interval (None: no two routes to compare).
        variance_aware: From which size fine-tuning wins for most pairs of seeds.
        data_advantage: How many examples the best prompt is worth; its ``flat`` says the prompt curve was flat
            (one quality in common: the gap at it, not a mean over a range).
        p_better: Per size, P(A > B) over seed pairs for every two methods.
        notes: What limits the figures (missing routes, fewer seeds).
        break_even: Per size both routes reach, the break-even entry of their representatives (mean costs over
            seeds) in the first unit both have, with the quality difference over the seeds both ran.
        verdict: The curve's answer in a few sentences.
    """

    unit: str
    metric: str
    sizes: list[str]
    x: dict[str, float]
    seeds: list[int]
    methods: dict[str, Any]
    routes: dict[str, Any]
    crossover: dict[str, Any] | None
    variance_aware: dict[str, Any] | None
    data_advantage: dict[str, Any] | None
    p_better: dict[str, Any]
    notes: list[str]
    break_even: list[dict[str, Any]]
    verdict: list[str]

    @property
    def flat_prompt(self) -> bool:
        """Whether the prompt curve was flat where the two routes meet (:func:`tailor.stats.curves.data_advantage`)."""
        return bool((self.data_advantage or {}).get("flat"))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def build_curve(records: Records) -> CurveSection:
    """Everything the report shows of a curve (see :mod:`tailor.stats.curves` for how each figure is computed)."""
    config, kind, primary = records.config, records.config["kind"], records.metrics[0]
    points = curve_points(records.trials, primary, kind, len(records.labels or []))
    stats = config.get("stats") or {}
    confidence = stats.get("confidence", 0.95)
    methods = method_stats(points, stats.get("bootstrap", 1000), confidence, config.get("seed", 0))
    routes = route_curves(points)
    x: dict[str, float] = {}
    for p in points:
        x.setdefault(p.size, p.x)
    figures: dict[str, Any] = {"crossover": None, "variance_aware": None, "data_advantage": None}
    notes = []
    prompt, finetune = routes.get("prompt"), routes.get("finetune")
    if prompt and finetune:
        try:
            figures["crossover"] = crossover(prompt, finetune, confidence)
            figures["variance_aware"] = variance_aware(prompt, finetune)
            figures["data_advantage"] = data_advantage(prompt, finetune)
        except ValueError as exc:  # too few seeds or sizes in common: said, not hidden
            notes.append(f"the routes can't be compared over seeds: {exc}")
    else:
        missing = route_name("prompt" if not prompt else "finetune")
        notes.append(f"no finished {missing}-route trials: no crossover, data advantage or break-even")
    seeds = sorted({p.seed for p in points})
    notes += seed_notes(routes, figures, len(seeds))
    break_even = route_break_even(records.trials, routes, config) if prompt and finetune else []
    return CurveSection(
        unit="per class" if kind == "classification" else "examples",
        metric=primary,
        sizes=[str(s) for s in config["curve"]["sizes"] if str(s) in x],
        x=x,
        seeds=seeds,
        methods=methods,
        routes=routes,
        **figures,
        p_better=p_better(points),
        notes=notes,
        break_even=break_even,
        verdict=verdict(kind, notes, figures, break_even[-1:]),
    )


def curve_points(trials: list[dict[str, Any]], primary: str, kind: str, n_labels: int) -> list[Point]:
    """One point per finished curve trial: its method (family and variant), route, size, seed and scores.

    ``x`` is the size as a number: the curve's own for numbered sizes; for ``all``, the training examples the trial
    had (per class for classification), since that is where the point sits on the axis."""
    out = []
    for r in trials:
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


def seed_notes(routes: dict[str, Any], figures: dict[str, Any], total: int) -> list[str]:
    """Where a figure rests on fewer seeds than the curve's ``total``, because some method ran fewer (its own
    `curve:`, or failed trials): the routes' choices on dev, compared over the seeds all candidates ran, and the
    figures that pair seeds across the routes (crossover, data advantage), over the seeds both routes ran."""
    out = []
    for route, points in routes.items():
        fewer = [size for size, p in points.items() if len(p["compared_seeds"]) < total]
        if fewer:
            out.append(
                f"the {route_name(route)} route's methods were compared on dev over the seeds all of them ran, fewer "
                f"than the curve's {total}, at {', '.join(fewer)}"
            )
    short = [
        f"{p['method']}@{size} ({len(p['by_seed'])})"
        for points in routes.values()
        for size, p in points.items()
        if len(p["by_seed"]) < total
    ]
    for key, what in (("crossover", "the crossover"), ("data_advantage", "the data advantage")):
        figure = figures.get(key)
        if figure and figure.get("seed_list") is not None and len(figure["seed_list"]) < total:
            seeds, where = figure["seed_list"], ", ".join(short) or "some sizes"
            out.append(
                f"{what} pairs seeds across the routes, so it uses the {len(seeds)} both ran "
                f"({', '.join(map(str, seeds))}) of the curve's {total}; fewer ran at {where}"
            )
    return out


def verdict(kind: str, notes: list[str], figures: dict[str, Any], break_even: list[dict[str, Any]]) -> list[str]:
    """The curve's answer in a few sentences: where fine-tuning overtakes prompting, what a prompt is worth in
    labelled examples, and from which query volume the cheaper route changes."""
    unit = "examples per class" if kind == "classification" else "examples"
    out = list(notes)
    c = figures.get("crossover")
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
    v = figures.get("variance_aware")
    if v and v["n"] is not None:
        out.append(f"It is ahead for most pairs of seeds from {v['n']:g} {unit} on (variance-aware break-even).")
    elif v:
        out.append("At no size is fine-tuning ahead for most pairs of seeds from there on.")
    d = figures.get("data_advantage")
    if d and d.get("examples") is not None:
        err = f" ± {d['error']:.1f}" if d.get("error") is not None else ""
        how = "Le Scao & Rush's data advantage: the mean horizontal gap between the two curves over the quality range"
        if d["examples"] >= 0 and d.get("flat"):  # a flat prompt curve: the gap at its one quality
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


def route_break_even(
    trials: list[dict[str, Any]], routes: dict[str, Any], config: dict[str, Any]
) -> list[dict[str, Any]]:
    """At each size both routes reach: the :func:`tailor.costs.pricing.break_even_entry` of the routes'
    representatives there (mean costs over seeds) in the first unit both have, with the quality difference,
    fine-tune minus prompt over the seeds both ran (``quality_seeds``)."""
    prices = model_prices(config)
    by_point: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for t in trials:
        if t["status"] == "ok" and t.get("size") is not None:
            by_point.setdefault((curve_method(t), t["size"]), []).append(t)

    def costs_of(method: str, size: str) -> dict[str, Any] | None:
        at = by_point.get((method, size)) or by_point.get((method, "0"))  # a size-0 method serves every size
        if not at:
            return None
        return mean_costs([trial_costs(t, config.get("costs"), prices.get(t["model"])) for t in at])

    out = []
    for size, f in routes["finetune"].items():
        p = routes["prompt"].get(size)
        if p is None:
            continue
        fc, pc = costs_of(f["method"], size), costs_of(p["method"], size)
        units = shared_units(pc, fc) if fc is not None and pc is not None else []
        if not units:
            continue
        # paired by seed, over the seeds both representatives ran (the same draws): a plain difference of means
        # would compare different draws when one ran fewer seeds
        both = sorted(set(f["by_seed"]) & set(p["by_seed"]))
        diff = sum(f["by_seed"][s] - p["by_seed"][s] for s in both) / len(both) if both else f["mean"] - p["mean"]
        entry = break_even_entry((p["method"], pc), (f["method"], fc), units[0])
        out.append({"size": size, **entry, "quality_difference": diff, "quality_seeds": len(both)})
    return out


def figure(curve: CurveSection) -> str:
    """The curve's figure as SVG (:func:`tailor.report.figures.curve.learning_curves_svg`)."""
    return learning_curves_svg(curve.to_json(), curve.metric)
