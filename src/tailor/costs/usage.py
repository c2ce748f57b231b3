"""Usage: what answering queries and adapting cost, counted the same way for every method and backend.

Every prediction carries the :class:`Usage` of its own query (calls, input tokens — demonstrations included —,
output tokens, estimated FLOPs); the runner sums them per trial and the report shows them per 1,000 test queries,
beside the FLOPs a method spent adapting. Later analyses turn these counts into money and break-even volume.

FLOPs are estimates, by the usual convention (Kaplan et al. 2020): a token through a forward pass costs
``2·N`` and a trained token ``6·N`` (forward, then backward for activations and weights), where ``N`` is the
number of parameters used per token: every weight matrix the token meets, **not** the input embedding table
(a lookup, not a multiply), but the output layer (counted even when tied to the input embeddings). Where tailor
computes the output layer only on some positions — option scoring keeps the logits of the option's tokens, the
fine-tuning loop of answer-predicting positions — the true cost is lower by ``2·d·V`` (forward) or ``6·d·V``
(training) per skipped position, ``d`` the hidden width and ``V`` the vocabulary; we keep the plain convention, so
the figures are an upper bound, comparable across methods and with served models that charge per token. A local
model reusing a shared prompt prefix computes less than this too; usage counts the tokens a query *contains*
(what a served model bills), not the ones a cache saved.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Usage:
    """Calls, tokens and estimated FLOPs of one query (or a sum of them).

    Attributes:
        calls: Requests to the model (one per query for local models, whatever their batching).
        input_tokens: Tokens the model read: the whole prompt, demonstrations included, and for option scoring
            every option's tokens.
        output_tokens: Tokens the model wrote.
        flops: Estimated floating-point operations (see the module docstring); 0 when unknown (served models).
        cached_calls: Of ``calls``, those answered from tailor's response cache: no request was sent, but the tokens
            (and the money) are still counted — what the query costs when it is not cached.
        cached_input_tokens: Of ``input_tokens``, those a server reported as read from its own prompt cache (served
            models that bill them at a discount).
    """

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    flops: float = 0.0
    cached_calls: int = 0
    cached_input_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.calls + other.calls,
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.flops + other.flops,
            self.cached_calls + other.cached_calls,
            self.cached_input_tokens + other.cached_input_tokens,
        )

    def __sub__(self, other: Usage) -> Usage:
        """What is left of this usage without ``other`` (a part of it)."""
        return Usage(
            self.calls - other.calls,
            self.input_tokens - other.input_tokens,
            self.output_tokens - other.output_tokens,
            self.flops - other.flops,
            self.cached_calls - other.cached_calls,
            self.cached_input_tokens - other.cached_input_tokens,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Usage:
        return cls(**{k: d[k] for k in _FIELDS if k in d}) if d else cls()


_FIELDS = ("calls", "input_tokens", "output_tokens", "flops", "cached_calls", "cached_input_tokens")
NO_USAGE = Usage()


def total(usages: Iterable[Usage | None]) -> Usage:
    out = NO_USAGE
    for u in usages:
        if u is not None:
            out = out + u
    return out


def forward_flops(params: int, tokens: int) -> float:
    """Estimated FLOPs of ``tokens`` tokens through a forward pass of a model using ``params`` parameters per token."""
    return 2.0 * params * tokens


def training_flops(params: int, tokens: int) -> float:
    """Estimated FLOPs of training on ``tokens`` tokens (forward and backward) with ``params`` parameters per token."""
    return 6.0 * params * tokens


def query_usage(params: int, input_tokens: int, output_tokens: int = 0) -> Usage:
    """One local query: its tokens, and every one of them through a forward pass."""
    return Usage(1, input_tokens, output_tokens, forward_flops(params, input_tokens + output_tokens))


def params_per_token(model: Any) -> int:
    """Parameters a token meets in a torch model: all of them but the input embedding table (a lookup), with the
    output layer counted even when its weights are tied to the input embeddings."""
    seen: set[int] = set()
    n = 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            n += p.numel()
    inputs = getattr(model, "get_input_embeddings", lambda: None)()
    outputs = getattr(model, "get_output_embeddings", lambda: None)()
    if inputs is not None and getattr(inputs, "weight", None) is not None:
        n -= inputs.weight.numel()
        if outputs is not None and getattr(outputs, "weight", None) is inputs.weight:
            n += outputs.weight.numel()
    return int(n)


def money(usage: dict[str, Any] | Usage, price: Any) -> float:
    """What ``usage`` costs at ``price`` (a :class:`~tailor.config.task.Price`: per million input, cached input and
    output
    tokens). Cached calls cost what they would have cost: the figure is what the queries cost when sent."""
    u = usage if isinstance(usage, Usage) else Usage.from_dict(usage)
    cached_price = price.cached_input if price.cached_input is not None else price.input
    fresh = u.input_tokens - u.cached_input_tokens
    return (fresh * price.input + u.cached_input_tokens * cached_price + u.output_tokens * price.output) / 1e6


def money_summary(usage: dict[str, Any], price: Any) -> dict[str, Any]:
    """Money for each part of a trial's usage summary (adapt, dev, test, per 1,000 test queries)."""
    out: dict[str, Any] = {"currency": price.currency}
    for part in ("adapt", "dev", "test", "test_per_1k"):
        if usage.get(part):
            out[part] = money(usage[part], price)
    out["total"] = sum(out.get(p, 0.0) for p in ("adapt", "dev", "test"))
    return out
