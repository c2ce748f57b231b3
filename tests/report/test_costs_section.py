"""The cost section in words: each trial's costs, the break-even volumes beside the quality difference, how Q* moves
when a price doubles or halves, and what to add for money — one unit label, money format and "never" everywhere."""

from __future__ import annotations

from typing import Any

from tailor.costs.pricing import GPU_HINT, cost_view
from tailor.formats import NEVER, fmt_money, fmt_queries, unit_label
from tailor.report.sections.costs import CostsSection, cost_rows, markdown


def _record(trial: str, route: str, adapt_seconds: float, per_1k_seconds: float, device: str, accuracy: float) -> Any:
    """A finished trial's record as the store keeps it, with what pricing reads."""
    costs = {"adapt_seconds": adapt_seconds, "predict_seconds_per_1k": per_1k_seconds, "adapt_flops": 0.0}
    per_1k = {"calls": 1000, "input_tokens": 50_000, "output_tokens": 0, "flops": 1e12}
    test = {"accuracy": {"value": accuracy, "ci_low": accuracy - 0.1, "ci_high": accuracy + 0.1}}
    return {
        "trial": trial,
        "route": route,
        "status": "ok",
        "model": "local-model",
        "costs": {**costs, "device": device},
        "usage": {"adapt": {}, "test_per_1k": per_1k},
        "test": test,
    }


def _section() -> CostsSection:
    ft = _record("ft", "finetune", 3600, 36, "cpu", 0.8)
    pr = _record("pr", "prompt", 0.0, 396, "cpu", 0.7)
    gpu = _record("ft-gpu", "finetune", 60, 1.0, "cuda", 0.75)
    return CostsSection(**cost_view([pr, ft, gpu], {"cpu_hour": 1.0}, {"local-model": None}, "accuracy"))


def test_the_markdown_tells_costs_break_even_and_what_is_missing() -> None:
    text = "\n".join(markdown(_section(), "accuracy"))
    assert "| ft | cpu | 3,600.0 s |" in text
    assert "USD 1.00" in text
    assert "- pr vs ft, in USD: Q* = 10,000; prompt is cheaper up to 10,000 queries, finetune beyond" in text
    assert "- pr vs ft-gpu, in FLOPs: Q* = " in text and "in flops" not in text
    assert "fine-tuning is 0.100 better on accuracy" in text
    assert "finetune.adapt×2 → 20,000" in text
    assert f"- {GPU_HINT}" in text


def test_one_way_to_write_each_amount() -> None:
    rows = {r["trial"]: r for r in cost_rows(_section())}
    assert rows["ft"]["adapt_money"] == fmt_money(1.0, "USD") == "USD 1.00"
    assert rows["ft-gpu"]["adapt_money"] == "–", "a GPU-hour price was not given: no money, never a guess"
    assert fmt_money(3.1e-07, "EUR") == "EUR 3.1e-07" and fmt_money(1234.5) == "1,234.50"
    assert fmt_queries(None) == NEVER == "never" and fmt_queries(9_900.0) == "9,900"
    assert [unit_label(u, "EUR") for u in ("money", "flops", "seconds")] == ["EUR", "FLOPs", "seconds"]
    assert unit_label("money") == "money"
