"""Break-even volume: after how many queries adapting once (fine-tuning) is cheaper than paying per query (prompting).

Each route costs a one-off amount to adapt and an amount per query served, in any one unit (FLOPs, seconds, money):
cumulative cost after ``q`` queries is ``adapt + q · per_query``. Two such lines cross once, at

    Q* = (adapt_finetune − adapt_prompt) / (per_query_prompt − per_query_finetune)

when they cross at all. The usual case — fine-tuning dearer to adapt, cheaper per query — makes fine-tuning the
cheaper route from Q* on. The other cases have answers too (one route cheaper at every volume; or fine-tuning cheaper
only *below* Q*, when a long training run buys a model dearer to serve), and :func:`break_even` says which.

The arithmetic is the T-Few paper's (Liu et al. 2022); ``tests/costs/test_breakeven.py`` reproduces its figures from the
FLOPs convention of :mod:`tailor.costs.usage`. Costs come from the usage records and the user's prices; nothing here
knows a price.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Route = Literal["prompt", "finetune"]


@dataclass(frozen=True)
class Costs:
    """One route's costs in one unit: once to adapt, and for each query served."""

    adapt: float
    per_query: float

    def __post_init__(self) -> None:
        if self.adapt < 0 or self.per_query < 0:
            raise ValueError(f"costs are never negative: adapt {self.adapt}, per query {self.per_query}")

    def after(self, queries: float) -> float:
        """Cumulative cost after ``queries`` queries."""
        return self.adapt + queries * self.per_query


@dataclass(frozen=True)
class BreakEven:
    """Where the cumulative costs of prompting and fine-tuning cross.

    ``queries``: the volume Q* at which they are equal, ``None`` when they never are (one route is cheaper at every
    volume: ``cheaper_below`` and ``cheaper_above`` then name the same route) and ``0.0`` when they are equal from
    the first query on. ``cheaper_below`` / ``cheaper_above``: the cheaper route before and after Q* (``None`` where
    the two cost the same).
    """

    queries: float | None
    cheaper_below: Route | None
    cheaper_above: Route | None

    def sentence(self, unit: str = "") -> str:
        """The verdict in words, for the report."""
        if self.queries is None:
            return f"{self.cheaper_above} is cheaper at every volume"
        if self.cheaper_above is None:
            return "both routes cost the same at every volume"
        where = f"{self.cheaper_below} is cheaper up to {self.queries:,.0f} queries, {self.cheaper_above} beyond"
        return where + (f" (costs in {unit})" if unit else "")


def break_even(finetune: Costs, prompt: Costs) -> BreakEven:
    """The volume from which the cheaper route changes (see the module's docstring for the formula)."""
    extra_adapt = finetune.adapt - prompt.adapt  # what fine-tuning pays up front beyond prompting
    saved_per_query = prompt.per_query - finetune.per_query  # what it saves on every query
    if extra_adapt == 0 and saved_per_query == 0:
        return BreakEven(0.0, None, None)
    if extra_adapt <= 0 and saved_per_query >= 0:  # no dearer up front, no dearer per query
        return BreakEven(None, "finetune", "finetune")
    if extra_adapt >= 0 and saved_per_query <= 0:  # no cheaper up front, no cheaper per query
        return BreakEven(None, "prompt", "prompt")
    queries = extra_adapt / saved_per_query  # both differences have the same sign here, so queries > 0
    if extra_adapt > 0:  # dearer to adapt, cheaper to serve: prompting first, fine-tuning from Q* on
        return BreakEven(queries, "prompt", "finetune")
    return BreakEven(queries, "finetune", "prompt")  # cheaper to adapt, dearer to serve


def sensitivity(finetune: Costs, prompt: Costs, factor: float = 2.0) -> dict[str, float | None]:
    """How Q* moves when one price moves: Q* with each route's adapt and per-query cost multiplied and divided by
    ``factor`` (the others held), keyed e.g. ``"prompt.per_query×2"``; ``None`` where the routes never cross."""
    if factor <= 0 or factor == 1:
        raise ValueError(f"factor must be positive and not 1, got {factor}")
    out: dict[str, float | None] = {}
    for route in ("finetune", "prompt"):
        for part in ("adapt", "per_query"):
            for scale, name in ((factor, f"×{factor:g}"), (1 / factor, f"÷{factor:g}")):
                costs = {"finetune": finetune, "prompt": prompt}
                base = costs[route]
                adapt_scale, query_scale = (scale, 1.0) if part == "adapt" else (1.0, scale)
                costs[route] = Costs(base.adapt * adapt_scale, base.per_query * query_scale)
                out[f"{route}.{part}{name}"] = break_even(costs["finetune"], costs["prompt"]).queries
    return out
