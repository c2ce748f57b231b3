"""Break-even volume: the T-Few paper's published arithmetic, and every way two cost lines can (not) cross."""

from __future__ import annotations

import pytest

from tailor.costs.breakeven import BreakEven, Costs, break_even, sensitivity
from tailor.costs.usage import forward_flops, training_flops

# T-Few (Liu et al. 2022, section 4.3): T0 has 11B parameters, an encoder-decoder whose input tokens meet the
# encoder's half; GPT-3 175B is a decoder, every token meets all of it.
T0_ENCODER = 11e9 / 2
GPT3 = 175e9
QUERY_TOKENS = 103  # the average query
DEMOS, DEMO_TOKENS = 41, 98  # GPT-3's in-context examples, each of 98 tokens on average
STEPS, BATCH = 1000, 8


def test_t_few_flops_per_query_and_to_train() -> None:
    t_few_query = forward_flops(T0_ENCODER, QUERY_TOKENS)
    gpt3_query = forward_flops(GPT3, DEMOS * DEMO_TOKENS + QUERY_TOKENS)
    t_few_train = training_flops(T0_ENCODER, STEPS * BATCH * QUERY_TOKENS)
    assert t_few_query == pytest.approx(1.1e12, rel=0.05)  # the paper: 1.1e12
    assert gpt3_query == pytest.approx(1.4e15, rel=0.05)  # 1.4e15
    assert t_few_train == pytest.approx(2.7e16, rel=0.05)  # 3 · 11e9 · 1,000 · 8 · 103 = 2.7e16


def test_t_few_breaks_even_near_20_queries() -> None:
    t_few = Costs(
        adapt=training_flops(T0_ENCODER, STEPS * BATCH * QUERY_TOKENS), per_query=forward_flops(T0_ENCODER, 103)
    )
    gpt3 = Costs(adapt=0.0, per_query=forward_flops(GPT3, DEMOS * DEMO_TOKENS + QUERY_TOKENS))
    verdict = break_even(finetune=t_few, prompt=gpt3)
    assert verdict.cheaper_below == "prompt" and verdict.cheaper_above == "finetune"
    assert 15 < verdict.queries < 25  # the paper: "about 20"
    assert t_few.after(verdict.queries) == pytest.approx(gpt3.after(verdict.queries))
    assert t_few.after(verdict.queries + 1) < gpt3.after(verdict.queries + 1)
    assert verdict.sentence("FLOPs") == "prompt is cheaper up to 19 queries, finetune beyond (costs in FLOPs)"


@pytest.mark.parametrize(
    ("finetune", "prompt", "expected"),
    [
        (Costs(100, 1), Costs(0, 3), BreakEven(50.0, "prompt", "finetune")),  # the usual case
        (Costs(0, 3), Costs(100, 1), BreakEven(50.0, "finetune", "prompt")),  # cheap to adapt, dear to serve
        (Costs(0, 1), Costs(10, 3), BreakEven(None, "finetune", "finetune")),  # cheaper both ways
        (Costs(10, 3), Costs(10, 3), BreakEven(0.0, None, None)),  # the same
        (Costs(10, 3), Costs(0, 3), BreakEven(None, "prompt", "prompt")),  # dearer up front, same per query
        (Costs(10, 3), Costs(10, 1), BreakEven(None, "prompt", "prompt")),  # same up front, dearer per query
        (Costs(10, 1), Costs(10, 3), BreakEven(None, "finetune", "finetune")),
    ],
)
def test_every_way_the_lines_can_lie(finetune: Costs, prompt: Costs, expected: BreakEven) -> None:
    got = break_even(finetune, prompt)
    assert got == expected
    if got.queries:  # where they cross, they are equal there, and the named route is cheaper on each side
        assert finetune.after(got.queries) == pytest.approx(prompt.after(got.queries))
        below, above = got.queries / 2, got.queries * 2
        costs = {"finetune": finetune, "prompt": prompt}
        other = {"finetune": "prompt", "prompt": "finetune"}
        assert costs[got.cheaper_below].after(below) < costs[other[got.cheaper_below]].after(below)
        assert costs[got.cheaper_above].after(above) < costs[other[got.cheaper_above]].after(above)
    assert got.sentence()


def test_sensitivity_moves_the_break_even_as_prices_move() -> None:
    moved = sensitivity(Costs(100, 1), Costs(0, 3), factor=2)
    assert moved["finetune.adapt×2"] == pytest.approx(100.0)  # twice the training bill: twice the volume
    assert moved["finetune.adapt÷2"] == pytest.approx(25.0)
    assert moved["prompt.per_query×2"] == pytest.approx(20.0)  # 100 / (6 − 1)
    assert moved["prompt.per_query÷2"] == pytest.approx(200.0)  # 100 / (1.5 − 1)
    assert moved["finetune.per_query×2"] == pytest.approx(100.0)  # 100 / (3 − 2)
    assert len(moved) == 8


def test_bad_costs_are_refused() -> None:
    with pytest.raises(ValueError, match="never negative"):
        Costs(-1, 0)
    with pytest.raises(ValueError, match="factor"):
        sensitivity(Costs(1, 1), Costs(0, 2), factor=1)
