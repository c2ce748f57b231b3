"""Cost views: each trial's costs in money, FLOPs and seconds from hand-made report rows, and the break-even table
between the routes, with hand-computed figures."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from tailor.config.costs import CostsSpec
from tailor.costs.pricing import (
    CPU_HINT,
    GPU_HINT,
    break_even_table,
    cost_view,
    cumulative_lines,
    mean_costs,
    trial_costs,
)

PRICE = {"input": 2.0, "output": 8.0, "cached_input": 0.5, "currency": "USD"}


def row(
    method: str,
    route: str,
    *,
    adapt_seconds: float = 0.0,
    per_1k_seconds: float = 1.0,
    device: str | None = "cpu",
    adapt_flops: float = 0.0,
    per_1k: dict[str, float] | None = None,
    adapt_usage: dict[str, float] | None = None,
    accuracy: float = 0.5,
    model: str = "local-model",
    status: str = "ok",
) -> dict[str, Any]:
    costs: dict[str, Any] = {
        "adapt_seconds": adapt_seconds,
        "predict_seconds_per_1k": per_1k_seconds,
        "adapt_flops": adapt_flops,
        "trainable_params": 0,
        "disk_bytes": 0,
    }
    if device is not None:
        costs["device"] = device
    per_1k = (
        per_1k if per_1k is not None else {"calls": 1000, "input_tokens": 50_000, "output_tokens": 0, "flops": 1e12}
    )
    return {
        "trial": method,
        "route": route,
        "status": status,
        "model": model,
        "costs": costs,
        "usage": {"adapt": adapt_usage or {}, "test_per_1k": per_1k},
        "test": {"accuracy": {"value": accuracy, "ci_low": accuracy - 0.1, "ci_high": accuracy + 0.1}},
    }


def test_costs_spec_is_strict_and_never_negative() -> None:
    assert CostsSpec().currency == "USD" and CostsSpec().cpu_hour is None
    with pytest.raises(ValidationError):
        CostsSpec(cpu_hour=-1)
    with pytest.raises(ValidationError):
        CostsSpec(cpu_per_hour=1)  # type: ignore[call-arg]


def test_local_cpu_trial_is_priced_by_the_hour() -> None:
    r = row("ft", "finetune", adapt_seconds=1800, per_1k_seconds=36, adapt_flops=5e15)
    got = trial_costs(r, {"currency": "EUR", "cpu_hour": 2.0, "gpu_hour": 10.0}, None)
    assert got["adapt"] == {"seconds": 1800.0, "flops": 5e15, "money": 1800 / 3600 * 2.0}
    assert got["adapt"]["money"] == 1.0
    assert got["per_1k"] == {"tokens": 50_000.0, "flops": 1e12, "seconds": 36.0, "money": 36 / 3600 * 2.0}
    assert got["device"] == "cpu" and got["served"] is False and got["currency"] == "EUR" and got["missing"] == []


@pytest.mark.parametrize("device", ["cuda", "mps"])
def test_gpu_trial_uses_the_gpu_hour(device: str) -> None:
    got = trial_costs(row("ft", "finetune", adapt_seconds=720, device=device), CostsSpec(cpu_hour=1, gpu_hour=3), None)
    assert got["adapt"]["money"] == pytest.approx(0.6)  # 720 s = 0.2 h at 3 per hour
    assert got["per_1k"]["money"] == pytest.approx(3 / 3600)


def test_missing_hourly_prices_leave_money_out_with_a_hint() -> None:
    got = trial_costs(row("ft", "finetune", adapt_seconds=100), {"gpu_hour": 3.0}, None)
    assert got["adapt"]["money"] is None and got["per_1k"]["money"] is None
    assert got["adapt"]["seconds"] == 100.0 and got["per_1k"]["flops"] == 1e12  # the other units stay
    assert got["missing"] == [CPU_HINT] and "`costs.cpu_hour`" in CPU_HINT
    assert trial_costs(row("ft", "finetune", device="cuda"), None, None)["missing"] == [GPU_HINT]
    old = trial_costs(row("ft", "finetune", device=None), {"cpu_hour": 1.0, "gpu_hour": 3.0}, None)
    assert old["adapt"]["money"] is None and old["device"] is None and "no device" in old["missing"][0]


def test_served_trial_is_priced_by_the_token() -> None:
    per_1k = {
        "calls": 1000,
        "input_tokens": 400_000,
        "output_tokens": 5_000,
        "flops": 0.0,
        "cached_input_tokens": 100_000,
    }
    adapt = {"calls": 10, "input_tokens": 20_000, "output_tokens": 1_000, "flops": 0.0}
    r = row("gpt", "prompt", per_1k=per_1k, adapt_usage=adapt, model="gpt-x", device="served", per_1k_seconds=90)
    got = trial_costs(r, {"cpu_hour": 100.0}, PRICE)
    # 300k fresh input × 2 + 100k cached × 0.5 + 5k output × 8, per million
    assert got["per_1k"]["money"] == pytest.approx((300_000 * 2 + 100_000 * 0.5 + 5_000 * 8) / 1e6)
    assert got["per_1k"]["money"] == pytest.approx(0.69)
    assert got["adapt"]["money"] == pytest.approx((20_000 * 2 + 1_000 * 8) / 1e6)  # 0.048
    assert got["per_1k"]["seconds"] == 90.0 and got["per_1k"]["tokens"] == 405_000.0  # reported, not charged
    assert got["per_1k"]["flops"] is None and got["adapt"]["flops"] is None  # unknown, not zero
    assert got["served"] is True and got["missing"] == []
    unpriced = trial_costs(r, {"cpu_hour": 100.0}, None)
    assert unpriced["per_1k"]["money"] is None
    assert len(unpriced["missing"]) == 1 and "add `price:` to the model `gpt-x`" in unpriced["missing"][0]


def test_break_even_where_q_star_is_known() -> None:
    # fine-tuning: 3600 s at 1 per hour = 1.0 to adapt, 36 s per 1k = 0.01; prompting: nothing to adapt, 0.11 per 1k
    ft = row("ft", "finetune", adapt_seconds=3600, per_1k_seconds=36, accuracy=0.8, adapt_flops=1e15)
    pr = row("pr", "prompt", adapt_seconds=0, per_1k_seconds=396, accuracy=0.7)
    failed = row("broken", "finetune", status="failed")
    table = break_even_table([pr, ft, failed], {"cpu_hour": 1.0}, {}, "accuracy")
    by_unit = {e["unit"]: e for e in table}
    assert set(by_unit) == {"money", "flops", "seconds"}
    money = by_unit["money"]
    assert money["queries"] == pytest.approx(10_000)  # 1.0 / (0.00011 − 0.00001)
    assert (money["cheaper_below"], money["cheaper_above"]) == ("prompt", "finetune")
    assert money["sentence"] == "prompt is cheaper up to 10,000 queries, finetune beyond (costs in USD)"
    assert money["quality_difference"] == pytest.approx(0.1)
    assert money["adapt"] == {"prompt": 0.0, "finetune": 1.0}
    assert money["per_query"]["prompt"] == pytest.approx(0.11 / 1000)
    assert money["per_query"]["finetune"] == pytest.approx(0.01 / 1000)
    assert len(money["sensitivity"]) == 8
    assert money["sensitivity"]["finetune.adapt×2"] == pytest.approx(20_000)
    assert money["sensitivity"]["prompt.per_query÷2"] == pytest.approx(1.0 / (0.055e-3 - 0.01e-3))
    assert by_unit["seconds"]["queries"] == pytest.approx(10_000)  # the same line at 1 per hour
    assert by_unit["seconds"]["sensitivity"] is None and by_unit["flops"]["sensitivity"] is None
    # equal FLOPs per query, fine-tuning dearer to adapt: prompting cheaper at every volume
    assert (by_unit["flops"]["queries"], by_unit["flops"]["cheaper_above"]) == (None, "prompt")

    lines = cumulative_lines(money, [0, 10_000, 20_000])
    assert lines["prompt"] == pytest.approx([0.0, 1.1, 2.2])
    assert lines["finetune"] == pytest.approx([1.0, 1.1, 1.2])


def test_prompting_cheaper_at_every_volume_and_money_only_within_a_currency() -> None:
    ft = row("ft", "finetune", adapt_seconds=3600, per_1k_seconds=36)
    pr = row("pr", "prompt", per_1k_seconds=18, adapt_seconds=0)
    (money,) = [e for e in break_even_table([pr, ft], {"cpu_hour": 2.0}, {}, "accuracy") if e["unit"] == "money"]
    assert money["queries"] is None
    assert (money["cheaper_below"], money["cheaper_above"]) == ("prompt", "prompt")
    assert money["sentence"] == "prompt is cheaper at every volume"
    assert all(v is None for v in money["sensitivity"].values())
    served = row("gpt", "prompt", model="gpt-x", device="served")
    eur = {**PRICE, "currency": "EUR"}
    units = {e["unit"] for e in break_even_table([served, ft], {"cpu_hour": 2.0}, {"gpt-x": eur}, "accuracy")}
    assert units == {"seconds"}  # no money across currencies; no FLOPs for a served model
    view = cost_view([served, ft], {"cpu_hour": 2.0}, {"gpt-x": eur, "local-model": None}, "accuracy")
    assert any("same currency" in h for h in view["missing"])
    assert view["prices"]["models"] == {"gpt-x": {**eur}}


def test_mean_costs_propagates_none() -> None:
    a = trial_costs(row("a", "finetune", adapt_seconds=100, per_1k_seconds=2), {"cpu_hour": 36.0}, None)
    b = trial_costs(row("b", "finetune", adapt_seconds=300, per_1k_seconds=4), {"cpu_hour": 36.0}, None)
    c = trial_costs(row("c", "finetune", adapt_seconds=200, device="cuda"), {"cpu_hour": 36.0}, None)
    m = mean_costs([a, b])
    assert m["adapt"] == {"seconds": 200.0, "flops": 0.0, "money": 2.0}  # (1 + 3) / 2
    assert m["per_1k"]["seconds"] == 3.0 and m["per_1k"]["money"] == pytest.approx(0.03)
    assert m["device"] == "cpu" and m["missing"] == []
    mixed = mean_costs([a, c])
    assert mixed["adapt"]["money"] is None and mixed["adapt"]["seconds"] == 150.0
    assert mixed["device"] is None and mixed["missing"] == [GPU_HINT]
    with pytest.raises(ValueError):
        mean_costs([])


def test_cost_view() -> None:
    ft = row("ft", "finetune", adapt_seconds=3600, per_1k_seconds=36, accuracy=0.8)
    pr = row("pr", "prompt", per_1k_seconds=396, accuracy=0.7)
    gpu = row("ft-gpu", "finetune", adapt_seconds=60, device="cuda", accuracy=0.75)
    view = cost_view([pr, ft, gpu], {"cpu_hour": 1.0}, {"local-model": None}, "accuracy")
    assert view["prices"] == {"currency": "USD", "cpu_hour": 1.0, "gpu_hour": None, "models": {}}
    assert set(view["trials"]) == {"pr", "ft", "ft-gpu"}
    assert view["missing"] == [GPU_HINT]
    assert {(e["finetune"], e["unit"]) for e in view["break_even"]} == {
        ("ft", "money"),
        ("ft", "flops"),
        ("ft", "seconds"),
        ("ft-gpu", "flops"),
        ("ft-gpu", "seconds"),
    }
