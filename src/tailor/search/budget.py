"""A prompt search's hard budget, and what has been spent against it.

A budget is one limit in one unit:

* ``evaluations`` — candidate scorings on one dev minibatch (scoring on a whole part of dev counts as its number of
  minibatches), the unit that compares searches across models;
* ``calls`` — model calls (one per example scored; a served model's requests);
* ``tokens`` — input plus output tokens, demonstrations included;
* ``money`` — a served model's price applied to its tokens (the task file's ``price:``).

Before each scoring the search asks :meth:`Spend.allows` with what that scoring is expected to cost (an
evaluation count is exact; calls, tokens and money are estimated from the scorings so far), so the budget is
never exceeded by more than one batch in flight.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from ..config.strict import STRICT
from ..costs.usage import Usage, money

Unit = Literal["evaluations", "calls", "tokens", "money"]
UNITS: tuple[Unit, ...] = ("evaluations", "calls", "tokens", "money")


class Budget(BaseModel):
    """The search's limit: give exactly one of the four units."""

    model_config = STRICT

    evaluations: int | None = Field(None, ge=1)
    """Candidate scorings on one dev minibatch (a whole part of dev counts as its number of minibatches)."""
    calls: int | None = Field(None, ge=1)
    """Model calls: one per example scored."""
    tokens: int | None = Field(None, ge=1)
    """Input plus output tokens read and written while scoring candidates."""
    money: float | None = Field(None, gt=0)
    """Money at the model's `price:` (served models only)."""

    @model_validator(mode="after")
    def _one(self) -> Budget:
        given = [u for u in UNITS if getattr(self, u) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one budget unit of {', '.join(UNITS)}; got {', '.join(given) or 'none'}")
        return self

    @property
    def unit(self) -> Unit:
        return next(u for u in UNITS if getattr(self, u) is not None)

    @property
    def limit(self) -> float:
        return float(getattr(self, self.unit))


@dataclass
class Cost:
    """What one or more scorings cost, in every unit (and the FLOPs, for the trial's usage)."""

    evaluations: int = 0
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    money: float = 0.0
    flops: float = 0.0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Cost) -> Cost:
        return Cost(
            self.evaluations + other.evaluations,
            self.calls + other.calls,
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.money + other.money,
            self.flops + other.flops,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "evaluations": self.evaluations,
            "calls": self.calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "tokens": self.tokens,
            "money": self.money,
            "flops": self.flops,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Cost:
        return cls(
            int(d["evaluations"]),
            int(d["calls"]),
            int(d["input_tokens"]),
            int(d["output_tokens"]),
            float(d["money"]),
            float(d["flops"]),
        )

    def usage(self) -> Usage:
        """As a :class:`~tailor.costs.usage.Usage` (what the search cost, counted as adapting)."""
        return Usage(self.calls, self.input_tokens, self.output_tokens, self.flops)


def cost_of(usage: Usage, evaluations: int, price: Any = None) -> Cost:
    """A scoring's cost from the usage of its predictions; ``price`` (a served model's) turns tokens into money."""
    spent = money(usage, price) if price is not None else 0.0
    return Cost(evaluations, usage.calls, usage.input_tokens, usage.output_tokens, spent, usage.flops)


@dataclass
class Spend:
    """Spending against a budget, with a reserve kept back for the final choice among the finalists."""

    budget: Budget
    spent: Cost
    reserve: float = 0.0

    def used(self) -> float:
        return float(getattr(self.spent, self.budget.unit))

    def allows(self, expected: Cost, reserved: bool = True) -> bool:
        """Whether a scoring expected to cost ``expected`` may start; ``reserved``: keep the reserve back."""
        room = self.budget.limit - (self.reserve if reserved else 0.0)
        return self.used() + float(getattr(expected, self.budget.unit)) <= room + 1e-12

    def add(self, cost: Cost) -> None:
        self.spent = self.spent + cost
