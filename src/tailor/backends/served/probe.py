"""Capability probes: a few cheap requests that find out what an OpenAI-compatible server really returns.

Servers that all call themselves "OpenAI-compatible" differ in exactly what option scoring needs: vLLM gives
prompt log-probs (``echo`` + ``logprobs`` on /completions, or its own ``prompt_logprobs``), OpenAI's chat API gives
top-k log-probs of generated tokens but never of the prompt, llama.cpp's server and ``transformers serve`` give
neither, and constrained output is spelt ``structured_outputs`` (vLLM), ``response_format`` (OpenAI) or ``grammar``
(llama.cpp). Rather than trust a server's name, tailor asks — each probe is an ordinary request, so it goes through
the response cache and costs nothing the second time — and chooses the best classification path from the answers
(or refuses the path a task file asks for, saying what the probe found). Nothing here guesses from a URL.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from .cache import cache_key
from .dispatch import Dispatcher, EndpointError, Reply, Request

# Two strings no model would write unprompted: an answer equal to one of them means the server constrained it.
PROBE_CHOICES = ("zq7x", "vb3k")
PROBE_TEXT = "The capital of France is Paris. The capital of Italy is"


@dataclass
class ProbeResult:
    """What a served model's server answered to the probes.

    Attributes:
        served: The model ids ``/models`` lists (empty when the server doesn't list them).
        prompt_logprobs: How the server gives the log-probs of a prompt's tokens: ``echo`` (/completions with
            ``echo`` and ``logprobs``), ``prompt_logprobs`` (vLLM's own field), or None.
        top_logprobs: How many top log-probs of a generated token it returns on the model's route (0: none).
        choice: How it constrains output to given strings: ``structured_outputs`` (vLLM), ``response_format``
            (a JSON schema, OpenAI), ``grammar`` (llama.cpp), or None.
        usage: Whether responses carry token usage.
        context_length: The model's context length, when the server says (vLLM's ``max_model_len``).
        notes: What each probe that failed answered, for messages.
    """

    served: list[str] = field(default_factory=list)
    prompt_logprobs: str | None = None
    top_logprobs: int = 0
    choice: str | None = None
    usage: bool = False
    context_length: int | None = None
    notes: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """One line: what the probes found."""
        parts = [
            f"prompt log-probs: {self.prompt_logprobs or 'no'}",
            f"top log-probs of answers: {self.top_logprobs or 'no'}",
            f"constrained choice: {self.choice or 'no'}",
        ]
        return "probes found " + ", ".join(parts)


def _first_choice(reply: Reply) -> dict[str, Any] | None:
    choices = (reply.body or {}).get("choices") or []
    return choices[0] if choices and isinstance(choices[0], dict) else None


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _echo_ok(reply: Reply) -> bool:
    """/completions with echo: a log-prob for every prompt token but the first."""
    choice = _first_choice(reply)
    lp = (choice or {}).get("logprobs") or {}
    values = lp.get("token_logprobs") or []
    return len(values) >= 3 and all(_is_number(v) for v in values[1:3])


def _prompt_logprobs_ok(reply: Reply) -> bool:
    """vLLM's ``prompt_logprobs``: per prompt position, a map of token id to its log-prob (None first)."""
    choice = _first_choice(reply) or {}
    rows = choice.get("prompt_logprobs") or (reply.body or {}).get("prompt_logprobs") or []
    return len(rows) >= 3 and isinstance(rows[1], dict) and bool(rows[1])


def top_logprobs_of(reply: Reply, route: str) -> dict[str, float] | None:
    """The first generated token's top log-probs in a chat or completions answer, or None."""
    choice = _first_choice(reply)
    if choice is None:
        return None
    lp = choice.get("logprobs") or {}
    if route == "chat/completions":
        content = lp.get("content") or []
        if not content or not isinstance(content[0], dict):
            return None
        top = content[0].get("top_logprobs") or []
        out = {t["token"]: float(t["logprob"]) for t in top if isinstance(t, dict) and _is_number(t.get("logprob"))}
        return out or None
    tops = lp.get("top_logprobs") or []
    if not tops or not isinstance(tops[0], dict):
        return None
    return {str(t): float(v) for t, v in tops[0].items() if _is_number(v)} or None


def answer_text(reply: Reply, route: str) -> str | None:
    """The generated text of a chat or completions answer."""
    choice = _first_choice(reply)
    if choice is None:
        return None
    if route == "chat/completions":
        return ((choice.get("message") or {}).get("content")) or ""
    return choice.get("text") or ""


def choice_body(method: str, route: str, choices: list[str]) -> dict[str, Any]:
    """The body fields that constrain an answer to ``choices``, as the server spells it."""
    if method == "structured_outputs":
        return {"structured_outputs": {"choice": list(choices)}}
    if method == "grammar":
        return {"grammar": "root ::= " + " | ".join(json.dumps(c) for c in choices)}
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string", "enum": list(choices)}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    return {
        "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}
    }


def chosen(method: str, text: str | None) -> str | None:
    """The choice an answer constrained by ``method`` holds (a JSON object's ``answer`` for ``response_format``)."""
    if text is None:
        return None
    if method == "response_format":
        try:
            value = json.loads(text)
        except ValueError:
            return None
        return value.get("answer") if isinstance(value, dict) and isinstance(value.get("answer"), str) else None
    return text.strip()


def _note(reply: Reply) -> str:
    if reply.error:
        return reply.error[:200]
    return "answered without what was asked"


def prompt_body(model: str, route: str, text: str) -> dict[str, Any]:
    if route == "chat/completions":
        return {"model": model, "messages": [{"role": "user", "content": text}]}
    return {"model": model, "prompt": text}


def served_models(dispatcher: Dispatcher, model: str) -> list[Any]:
    """What ``GET /models`` lists, kept in the dispatcher's response cache like the probes' answers, so that a
    re-run of a finished run sends nothing at all. A cached list without ``model`` is asked again (the server may
    serve it now); a list that names it but is stale costs nothing: a request for a model no longer served gets a
    404, which names what the server serves then."""
    cache, key = dispatcher.cache, cache_key(dispatcher.base_url, "models", {})
    hit = cache.get(key) if cache is not None else None
    if isinstance(hit, dict) and isinstance(hit.get("data"), list):
        if any((m.get("id") if isinstance(m, dict) else m) == model for m in hit["data"]):
            return hit["data"]
    listed = dispatcher.model_entries()
    if cache is not None and listed:
        cache.put(key, {"data": listed})
    return listed


def probe(dispatcher: Dispatcher, model: str, route: str) -> ProbeResult:
    """Ask the server at ``dispatcher`` what it can do for ``model``, whose prompts go to ``route``.

    Raises:
        EndpointError: the server can't be reached, refuses the key, or doesn't serve ``model`` (the message lists
            what it serves).
    """
    found = ProbeResult()
    try:
        listed = served_models(dispatcher, model)
    except EndpointError:
        raise
    except Exception as exc:  # some servers list no models (transformers serve without a hub cache): not fatal
        listed = []
        found.notes["models"] = str(exc)[:200]
    found.served = [m.get("id", "") if isinstance(m, dict) else str(m) for m in listed]
    if found.served and model not in found.served:
        raise EndpointError(
            f"model {model!r} is not served at {dispatcher.base_url}; it serves: {', '.join(found.served[:20])}"
        )
    for m in listed:
        if isinstance(m, dict) and m.get("id") == model and isinstance(m.get("max_model_len"), int):
            found.context_length = m["max_model_len"]
    greedy = {"temperature": 0, "max_tokens": 1}
    requests = {
        "echo": Request(
            "completions", {**prompt_body(model, "completions", PROBE_TEXT), **greedy, "echo": True, "logprobs": 1}
        ),
        "prompt_logprobs": Request(
            "completions", {**prompt_body(model, "completions", PROBE_TEXT), **greedy, "prompt_logprobs": 1}
        ),
        "top_logprobs": Request(
            route,
            {**prompt_body(model, route, PROBE_TEXT), **greedy}
            | ({"logprobs": True, "top_logprobs": 5} if route == "chat/completions" else {"logprobs": 5}),
        ),
    }
    for method in ("structured_outputs", "response_format", "grammar"):
        body = {**prompt_body(model, route, "Answer with one word."), "temperature": 0, "max_tokens": 16}
        requests[method] = Request(route, body | choice_body(method, route, list(PROBE_CHOICES)))
    replies = dict(zip(requests, dispatcher.send(list(requests.values()))))
    found.usage = any(isinstance((r.body or {}).get("usage"), dict) for r in replies.values())
    if _echo_ok(replies["echo"]):
        found.prompt_logprobs = "echo"
    elif _prompt_logprobs_ok(replies["prompt_logprobs"]):
        found.prompt_logprobs = "prompt_logprobs"
    else:
        found.notes["prompt_logprobs"] = _note(replies["echo"])
    top = top_logprobs_of(replies["top_logprobs"], route)
    found.top_logprobs = len(top) if top and len(top) >= 2 else 0
    if not found.top_logprobs:
        found.notes["top_logprobs"] = _note(replies["top_logprobs"])
    for method in ("structured_outputs", "response_format", "grammar"):
        if chosen(method, answer_text(replies[method], route)) in PROBE_CHOICES:
            found.choice = method
            break
    else:
        found.notes["choice"] = _note(replies["structured_outputs"])
    return found
