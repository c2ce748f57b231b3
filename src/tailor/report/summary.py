"""The benchmark summary: a compact, stable view of a report (``summary:`` in a task file), committed beside the
benchmarks. Its keys are kept as they are: the committed summaries under ``benchmarks/results/`` are compared
across versions.
"""

from __future__ import annotations

from typing import Any

from .document import Report

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
"""What the summary keeps of each size's break-even (``quality_seeds`` is absent from older reports)."""


def summarize(report: Report) -> dict[str, Any]:
    """Per trial its route, quality with CI, costs and data used; a learning curve's summary is the curve's figures
    instead (:func:`summarize_curve`).

    Variants are listed each; the one chosen on dev is repeated as ``FAMILY (best variant)``."""
    if report.curve:
        return summarize_curve(report)
    o, primary = report.overview, report.primary
    methods: dict[str, Any] = {}
    for row in report.leaderboard:
        if row.status != "ok":
            methods[row.trial] = {"route": row.route, "status": row.status, "error": row.error}
            continue
        main = row.test[primary]
        entry = {
            "route": row.route,
            primary: main["value"],
            "ci_low": main["ci_low"],
            "ci_high": main["ci_high"],
            **{m: row.test[m]["value"] for m in o.metrics[1:] if m in row.test},
            f"dev_{primary}": row.dev_primary,
            "valid_rate": row.test.get("valid_rate"),
            "adapt_seconds": row.costs["adapt_seconds"],
            "predict_seconds_per_1k": row.costs["predict_seconds_per_1k"],
            "trainable_params": row.costs["trainable_params"],
            "disk_bytes": row.costs["disk_bytes"],
            "n_train": row.n_train,
            "model": row.model,
            "model_params": row.model_params,
            "train_size": row.train_size,
            "seed": row.seed,
            "adapt_flops": row.costs.get("adapt_flops"),
            "usage_per_1k_test": (row.usage or {}).get("test_per_1k"),
            "options": row.options,
        }
        methods[row.trial] = entry
        if row.best_variant:
            methods[f"{row.family} (best variant)"] = {**entry, "variant": row.trial}
    return {
        "task": o.task,
        "model": o.model,
        "primary_metric": primary,
        "scale": "0-1",
        "confidence": o.confidence,
        "n_test": o.data["test"],
        "status": o.status,
        "winner": report.comparisons.winner,
        "methods": methods,
        "versions": o.versions,
        "git_rev": o.git_rev,
    }


def summarize_curve(report: Report) -> dict[str, Any]:
    """A curve's compact, stable figures: per method and size the mean, std and seeds; the crossover with its
    interval; the data advantage with its error; the break-even volumes with the prices used."""
    o, curve = report.overview, report.curve
    assert curve is not None
    return {
        "task": o.task,
        "model": o.model,
        "primary_metric": report.primary,
        "scale": "0-1",
        "unit": curve.unit,
        "n_test": o.data["test"],
        "seeds": curve.seeds,
        "status": o.status,
        "methods": {
            name: {
                size: {"mean": p["mean"], "std": p["std"], "n_seeds": p["n_seeds"]} for size, p in m["points"].items()
            }
            for name, m in curve.methods.items()
        },
        "routes": {
            route: {size: {"method": p["method"], "mean": p["mean"]} for size, p in points.items()}
            for route, points in curve.routes.items()
        },
        "crossover": _pick(
            curve.crossover, ("n", "ci_low", "ci_high", "status", "confidence", "method", "seeds", "seed_list")
        ),
        "variance_aware_break_even": _pick(curve.variance_aware, ("n",)),
        "data_advantage": _pick(curve.data_advantage, ("examples", "error", "range", "why", "seeds")),
        "break_even_queries": {
            "prices": report.costs.prices if report.costs else None,
            "by_size": [{k: e[k] for k in BREAK_EVEN_KEYS if k in e} for e in curve.break_even],
        },
        "verdict": curve.verdict,
        "versions": o.versions,
        "git_rev": o.git_rev,
    }


def _pick(d: dict[str, Any] | None, keys: tuple[str, ...]) -> dict[str, Any] | None:
    return None if d is None else {k: d.get(k) for k in keys if k in d}
