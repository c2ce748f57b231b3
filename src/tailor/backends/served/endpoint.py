"""Served models: the generative backend for any OpenAI-compatible endpoint (OpenAI, vLLM, SGLang, Ollama,
llama.cpp's server, TGI's Messages API, ``transformers serve``).

A model with ``endpoint:`` in a task file is not loaded here: :class:`EndpointLM` sends each query to the server
through one :class:`~tailor.backends.served.dispatch.Dispatcher` (the ``openai`` SDK's async client, bounded and
adaptive
concurrency, retries honouring ``Retry-After``, the response cache). What it can do is what the server answered to
the probes of :mod:`tailor.backends.served.probe`:

- **option scoring** (``score``) needs prompt log-probs and the model's tokenizer: each prompt and continuation is
  tokenized here exactly as local scoring does (:mod:`tailor.backends.local.tokens`) and sent as token ids, so a served
  model scores the same tokens as the same model loaded locally;
- **first-token scoring** (``first_token_logprobs``) needs the top-k log-probs of a generated token;
- **constrained choice** (``choose``) needs the server's way to restrict output to given strings;
- **generation** works everywhere.

A query that still fails after every retry comes back with its ``error`` (never as an empty answer scored as
wrong); a request the server rejects outright (a parameter it doesn't take) stops the trial with the server's
message. The API key is read from the environment variable the task file names and written nowhere.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ...config.task import ModelSpec
from ...costs.usage import Usage
from ...errors import MethodError, TailorError
from ...progress import Progress
from ..local.tokens import encode_continuations
from ..protocol import Capabilities, Generated, GenerationSettings, PromptInput, Scored, cut_at_stop
from .dispatch import Dispatcher, DispatchSettings, Reply, Request
from .probe import ProbeResult, answer_text, choice_body, chosen, probe, top_logprobs_of

# Body keys and the task-file option that set them, to name the key when a server rejects a parameter.
_OPTION_OF = {
    "temperature": "temperature",
    "top_p": "top_p",
    "max_tokens": "max_new_tokens",
    "stop": "stop",
    "seed": "seed",
    "logprobs": "mode",
    "top_logprobs": "mode",
    "echo": "mode",
    "prompt_logprobs": "mode",
    "structured_outputs": "mode",
    "response_format": "mode",
    "grammar": "mode",
}


def load_tokenizer(name: str | None) -> Any:
    """The served model's tokenizer from a folder or hub id, or None when it can't be had here."""
    if not name:
        return None
    try:
        from transformers import AutoTokenizer

        from ..local.hf import library_bars_off
        from ..models import resolve_path

        with library_bars_off():
            return AutoTokenizer.from_pretrained(resolve_path(name))
    except Exception:  # a served model's tokenizer is optional: without it, option scoring is refused up front
        return None


def cache_for(spec: ModelSpec) -> Any:
    from .cache import ResponseCache, default_cache_path

    setting = spec.endpoint.cache if spec.endpoint else False
    if setting is False:
        return None
    return ResponseCache(default_cache_path() if setting is True else Path(str(setting)).expanduser())


def api_key(spec: ModelSpec) -> str | None:
    var = spec.endpoint.api_key_env if spec.endpoint else None
    if not var:
        return None
    value = os.environ.get(var)
    if not value:
        raise TailorError(
            f"model.endpoint.api_key_env: the environment variable {var} is not set (it must hold the key)"
        )
    return value


class EndpointLM:
    """A model behind an OpenAI-compatible endpoint (a :class:`~tailor.backends.protocol.GenerativeBackend`)."""

    parameters: int | None = None  # a served model's size is not known here

    def __init__(self, spec: ModelSpec, dispatcher: Dispatcher, found: ProbeResult, tokenizer: Any = None) -> None:
        assert spec.endpoint is not None
        self.spec, self.name, self.dispatcher, self.probe, self.tokenizer = (
            spec,
            spec.name,
            dispatcher,
            found,
            tokenizer,
        )
        self.api: Literal["chat", "completions"] = spec.endpoint.api
        self.route = "chat/completions" if self.api == "chat" else "completions"
        self.no_usage = 0  # responses without a usage field (tokens then counted with the tokenizer, if any)
        template = bool(getattr(tokenizer, "chat_template", None))
        limit = found.context_length or (getattr(tokenizer, "model_max_length", None) if tokenizer else None)
        self.capabilities = Capabilities(
            score_continuations=found.prompt_logprobs is not None and tokenizer is not None,
            top_logprobs=found.top_logprobs,
            constrained_choice=found.choice is not None,
            local_tokenizer=tokenizer is not None,
            chat=self.api == "chat" or template,
            context_length=limit if isinstance(limit, int) and limit < 10**7 else None,
            source=f"{spec.endpoint.url} {found.describe()}"
            + ("" if tokenizer is not None else "; no tokenizer for the model here (set endpoint.tokenizer)"),
        )

    # -- text -----------------------------------------------------------------------------------------

    def render(self, prompt: PromptInput) -> str:
        """A string as it is; chat messages through the model's chat template when one is here, else the turns
        labelled by role (what a chat API receives, shown as text)."""
        if isinstance(prompt, str):
            return prompt
        if self.tokenizer is not None and getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        if self.api == "completions":
            return "\n\n".join(m["content"] for m in prompt)
        return "\n\n".join(f"[{m['role']}] {m['content']}" for m in prompt)

    def count_tokens(self, text: str) -> int:
        if self.tokenizer is None:
            raise MethodError(f"counting tokens needs the tokenizer of {self.name} (set endpoint.tokenizer)")
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _body(self, prompt: PromptInput) -> tuple[str, dict[str, Any]]:
        """The route and the body's prompt part: messages to a chat API, else one string."""
        if self.api == "chat" and not isinstance(prompt, str):
            return "chat/completions", {"model": self.name, "messages": list(prompt)}
        if self.api == "chat":
            return "chat/completions", {"model": self.name, "messages": [{"role": "user", "content": prompt}]}
        return "completions", {"model": self.name, "prompt": self.render(prompt)}

    # -- sending --------------------------------------------------------------------------------------

    def _send(self, requests: list[Request], progress: Progress | None, what: str) -> list[Reply]:
        if not requests:
            return []
        if progress is None:
            replies = self.dispatcher.send(requests)
        else:
            with progress.bar(what, len(requests)) as bar:
                replies = self.dispatcher.send(requests, on_done=bar.advance)
        self._refuse_rejected(requests, replies)
        return replies

    def _refuse_rejected(self, requests: list[Request], replies: list[Reply]) -> None:
        """Every request refused with the same client error: a parameter the server doesn't take, not a fault of
        one example. Stop with the server's message and the option that set the parameter."""
        statuses = {r.status for r in replies}
        if len(replies) < 1 or any(r.body is not None for r in replies) or not statuses <= {400, 422}:
            return
        message = replies[0].error or "rejected"
        keys = [k for k in requests[0].body if k in _OPTION_OF and k in message]
        key = _OPTION_OF[keys[0]] if keys else None
        raise MethodError(f"{self.dispatcher.base_url} rejected the request ({replies[0].status}): {message}", key=key)

    def _usage(self, reply: Reply, prompt_tokens: int = 0, output_tokens: int = 0) -> Usage:
        """What one request cost, as the server reports it (tokens counted here when it doesn't)."""
        usage = (reply.body or {}).get("usage")
        if not isinstance(usage, dict):
            if reply.body is not None:
                self.no_usage += 1
            return Usage(
                calls=1, input_tokens=prompt_tokens, output_tokens=output_tokens, cached_calls=int(reply.cached)
            )
        details = usage.get("prompt_tokens_details") or {}
        return Usage(
            calls=1,
            input_tokens=int(usage.get("prompt_tokens") or 0),
            output_tokens=int(usage.get("completion_tokens") or 0),
            cached_calls=int(reply.cached),
            cached_input_tokens=int((details or {}).get("cached_tokens") or 0),
        )

    # -- option scoring -------------------------------------------------------------------------------

    def score(
        self, prompts: Sequence[PromptInput], continuations: Sequence[str], progress: Progress | None = None
    ) -> Scored:
        """Log-likelihood of each continuation after each prompt, from the server's prompt log-probs of the token
        ids local scoring would use (one request per prompt and continuation)."""
        if not self.capabilities.score_continuations:
            raise MethodError(f"option scoring is not available on {self.name}: {self.capabilities.source}", key="mode")
        texts = [self.render(p) for p in prompts]
        ctx_ids, conts = encode_continuations(self.tokenizer, "causal", texts, [list(continuations)] * len(texts))
        requests, where = [], []
        for i, (ctx, row) in enumerate(zip(ctx_ids, conts)):
            for j, cont in enumerate(row):
                body: dict[str, Any] = {"model": self.name, "prompt": ctx + cont, "max_tokens": 1, "temperature": 0}
                body |= (
                    {"echo": True, "logprobs": 1} if self.probe.prompt_logprobs == "echo" else {"prompt_logprobs": 0}
                )
                requests.append(Request("completions", body))
                where.append((i, j, len(ctx), len(cont)))
        replies = self._send(requests, progress, "scoring options")
        logp = np.zeros((len(texts), len(continuations)))
        counts = np.array([[len(c) for c in row] for row in conts], dtype=np.int64).reshape(len(texts), -1)
        usage = [Usage() for _ in texts]
        errors: list[str | None] = [None] * len(texts)
        for (i, j, start, n), reply, req in zip(where, replies, requests):
            usage[i] = usage[i] + self._usage(reply, start + n)
            values = self._prompt_values(reply, req.body["prompt"]) if reply.body is not None else None
            if values is None or len(values) < start + n:
                errors[i] = errors[i] or reply.error or "the server's answer held no prompt log-probs"
                continue
            logp[i, j] = float(sum(values[start : start + n]))
        return Scored(logp, counts, usage, errors)

    def _prompt_values(self, reply: Reply, ids: list[int]) -> list[float] | None:
        """Per prompt token, its log-prob (the first one's is 0: nothing precedes it)."""
        choice = ((reply.body or {}).get("choices") or [{}])[0]
        if self.probe.prompt_logprobs == "echo":
            values = (choice.get("logprobs") or {}).get("token_logprobs") or []
            values = values[: len(ids)]
            return [0.0 if v is None else float(v) for v in values]
        rows = choice.get("prompt_logprobs") or (reply.body or {}).get("prompt_logprobs") or []
        out = []
        for tok, row in zip(ids, rows):
            if row is None:
                out.append(0.0)
                continue
            entry = row.get(str(tok))
            if entry is None:
                return None
            out.append(float(entry["logprob"] if isinstance(entry, dict) else entry))
        return out

    # -- answers --------------------------------------------------------------------------------------

    def _sampling(self, settings: GenerationSettings) -> dict[str, Any]:
        body: dict[str, Any] = {"max_tokens": settings.max_new_tokens, "seed": settings.seed}
        if settings.do_sample:
            body |= {"temperature": settings.temperature, "top_p": settings.top_p}
        else:
            body["temperature"] = 0
        if settings.stop:
            body["stop"] = list(settings.stop)[:4]  # OpenAI takes at most four; the rest are cut here
        return body

    def _answers(
        self, requests: list[Request], replies: list[Reply], prompts: Sequence[PromptInput]
    ) -> list[Generated]:
        out = []
        for req, reply, prompt in zip(requests, replies, prompts):
            text = answer_text(reply, req.route) if reply.body is not None else None
            reported = isinstance((reply.body or {}).get("usage"), dict)
            n = self.count_tokens(self.render(prompt)) if self.tokenizer is not None and not reported else 0
            usage = self._usage(reply, n, self.count_tokens(text) if text and n else 0)
            if text is None:
                out.append(Generated("", usage, reply.error or "the server's answer held no text"))
            else:
                out.append(Generated(text, usage, None, top_logprobs_of(reply, req.route)))
        return out

    def generate(
        self, prompts: Sequence[PromptInput], settings: GenerationSettings, progress: Progress | None = None
    ) -> list[Generated]:
        requests = []
        for p in prompts:
            route, body = self._body(p)
            requests.append(Request(route, body | self._sampling(settings)))
        answers = self._answers(requests, self._send(requests, progress, "generating"), prompts)
        return [Generated(cut_at_stop(a.text, settings.stop), a.usage, a.error) for a in answers]

    def first_token_logprobs(
        self, prompts: Sequence[PromptInput], k: int, progress: Progress | None = None
    ) -> list[Generated]:
        requests = []
        for p in prompts:
            route, body = self._body(p)
            extra = {"logprobs": True, "top_logprobs": k} if route == "chat/completions" else {"logprobs": k}
            requests.append(Request(route, body | {"max_tokens": 1, "temperature": 0} | extra))
        answers = self._answers(requests, self._send(requests, progress, "first-token scoring"), prompts)
        return [
            a if a.error or a.top_logprobs else Generated(a.text, a.usage, "the server's answer held no log-probs")
            for a in answers
        ]

    def choose(
        self, prompts: Sequence[PromptInput], choices: Sequence[str], progress: Progress | None = None
    ) -> list[Generated]:
        method = self.probe.choice
        if method is None:
            raise MethodError(
                f"constrained choice is not available on {self.name}: {self.capabilities.source}", key="mode"
            )
        longest = max(len(self.tokenizer(c)["input_ids"]) for c in choices) if self.tokenizer is not None else 16
        requests = []
        for p in prompts:
            route, body = self._body(p)
            body |= {"temperature": 0, "max_tokens": longest + (16 if method == "response_format" else 2)}
            requests.append(Request(route, body | choice_body(method, route, list(choices))))
        answers = self._answers(requests, self._send(requests, progress, "constrained choice"), prompts)
        return [a if a.error else Generated(chosen(method, a.text) or a.text, a.usage) for a in answers]

    def close(self) -> None:
        self.dispatcher.close()


class ServedModels:
    """The registry's ``endpoint`` kind: connected (and probed) once per model spec, at the first question."""

    role: Literal["generative"] = "generative"

    def __init__(self) -> None:
        self._connected: dict[str, EndpointLM] = {}

    def connect(self, spec: ModelSpec) -> EndpointLM:
        key = json.dumps(spec.model_dump(mode="json"), sort_keys=True)
        if key not in self._connected:
            e = spec.endpoint
            assert e is not None
            settings = DispatchSettings(
                max_concurrency=e.max_concurrency,
                connect_timeout=e.connect_timeout,
                read_timeout=e.timeout,
                max_retries=e.max_retries,
                requests_per_minute=e.requests_per_minute,
                tokens_per_minute=e.tokens_per_minute,
                transport=e.transport,
            )
            dispatcher = Dispatcher(
                e.url, api_key=api_key(spec), api_key_env=e.api_key_env, settings=settings, cache=cache_for(spec)
            )
            route = "chat/completions" if e.api == "chat" else "completions"
            found = probe(dispatcher, spec.name, route)
            self._connected[key] = EndpointLM(spec, dispatcher, found, load_tokenizer(e.tokenizer or spec.name))
        return self._connected[key]

    def capabilities(self, spec: ModelSpec) -> Capabilities:
        return self.connect(spec).capabilities

    def load(self, spec: ModelSpec) -> EndpointLM:
        return self.connect(spec)


KIND = ServedModels()
