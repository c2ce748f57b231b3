"""A fake OpenAI-compatible server with scripted behaviour, for tests and benchmarks of the endpoint backend.

Real servers differ (vLLM returns prompt log-probs and honours constrained choice, OpenAI rejects unknown fields,
llama.cpp and ``transformers serve`` ignore them); :class:`FakeServer` emulates each (:data:`PRESETS`), answering
deterministically after a fixed latency (``asyncio.sleep``, so requests overlap as on a batching server)::

    with FakeServer("tiny", **PRESETS["vllm"], latency=0.1) as srv:
        client = openai.OpenAI(base_url=srv.url + "/v1", api_key="x")

A throughput benchmark must not share the client's GIL with the server, so it also runs as a process
(``python -m tailor.testing.fake_server --port N --latency-ms 100 --preset vllm``, :func:`start_process`; there
``GET /stats`` gives the counters). :class:`ServerThread`, :func:`start_server_process` and :func:`stop_process` run
any aiohttp application either way (the fault proxy uses them too). Servers bind 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from aiohttp import web

from .serving import (  # noqa: F401 (re-exported: the helpers this module's users import from here)
    FakeServerError,
    InThread,
    ServerThread,
    serve,
    start_server_process,
    stop_process,
)

DEFAULT_WORDS = ("positive", "negative", "sports", "world")
GENERATED_LOGPROB = -0.01  # every generated token's; alternatives get token_logprob(previous, alternative) - 1

PRESETS: dict[str, dict[str, bool]] = {
    # vLLM (and SGLang): echo + logprobs and prompt_logprobs, top-k log-probs, structured_outputs; extra fields ignored
    "vllm": {"prompt_logprobs": True, "top_logprobs": True, "choice": True, "strict": False},
    # OpenAI: top-k log-probs of generated tokens only (no echo with logprobs), unknown fields rejected with 400
    "openai": {"prompt_logprobs": False, "top_logprobs": True, "choice": False, "strict": True},
    # llama.cpp's server: top-k log-probs of generated tokens, no prompt log-probs, no vLLM choice; fields ignored
    "llamacpp": {"prompt_logprobs": False, "top_logprobs": True, "choice": False, "strict": False},
    # transformers serve (and TGI-like generation-only servers): text only, log-prob fields silently ignored
    "generate-only": {"prompt_logprobs": False, "top_logprobs": False, "choice": False, "strict": False},
}

FEATURES = ("prompt_logprobs", "top_logprobs", "choice", "strict", "no_usage")  # CLI: --prompt-logprobs etc.

_COMMON_FIELDS = {
    "model",
    "max_tokens",
    "temperature",
    "top_p",
    "n",
    "stop",
    "seed",
    "stream",
    "stream_options",
    "user",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
}
_COMPLETION_FIELDS = _COMMON_FIELDS | {"prompt", "suffix", "best_of"}
_CHAT_FIELDS = _COMMON_FIELDS | {"messages", "max_completion_tokens"}


def hash_pick(value: Any, options: Sequence[str]) -> str:
    """One of ``options``, picked by a SHA-256 of ``value``'s canonical JSON: the same value, the same pick."""
    digest = hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False).encode()).digest()
    return options[int.from_bytes(digest[:8], "big") % len(options)]


def token_logprob(previous: str, token: str) -> float:
    """The fake log-probability of ``token`` after ``previous``, in [-10.0, -0.01]; ids are passed as strings."""
    digest = hashlib.sha256(f"{previous}\x00{token}".encode()).digest()
    return round(-0.01 - (int.from_bytes(digest[:4], "big") % 9991) / 1000, 3)


def split_tokens(text: str) -> list[str]:
    """Whitespace tokens that join back to ``text``: each keeps the whitespace before it (the last, also after)."""
    return re.findall(r"\s*\S+(?:\s+$)?", text)


def _alternatives(token: str, words: Sequence[str]) -> list[str]:
    """Other tokens that could stand where ``token`` is: neighbouring ids for an id, else ``words``, same spacing."""
    if token.isdigit():
        return [str(int(token) + j) for j in range(1, 6)]
    space = token[: len(token) - len(token.lstrip())]
    return [space + w for w in words if space + w != token]


def _prompt_entry(prev: str, tok: str, words: Sequence[str], k: int) -> tuple[float, dict[str, float]]:
    lp = token_logprob(prev, tok)
    alts = sorted(((token_logprob(prev, a), a) for a in _alternatives(tok, words)), reverse=True)[:k]
    return lp, {**{a: alp for alp, a in alts}, tok: lp}


def _generated_entry(prev: str, tok: str, words: Sequence[str], k: int) -> tuple[float, list[tuple[str, float]]]:
    alts = sorted(((round(token_logprob(prev, a) - 1.0, 3), a) for a in _alternatives(tok, words)), reverse=True)
    return GENERATED_LOGPROB, [(tok, GENERATED_LOGPROB)] + [(a, alp) for alp, a in alts][: max(k - 1, 0)]


def _error(status: int, message: str, kind: str, param: str | None = None) -> web.Response:
    """An OpenAI/vLLM-style error body: ``{"error": {"message", "type", "param", "code"}}``."""
    return web.json_response(
        {"error": {"message": message, "type": kind, "param": param, "code": status}}, status=status
    )


class FakeServer(InThread):
    """An OpenAI-compatible server answering from a script; ``with FakeServer(...) as srv: srv.url``.

    The answer is ``answer_fn(body)`` when given (for a list of prompts, called per prompt with ``body["prompt"]``
    set to it), else a word of ``words`` picked by a stable hash of the prompt or messages (:func:`hash_pick`).
    Tokens are words keeping the whitespace before them (:func:`split_tokens`), or the ids themselves for a prompt of
    token ids. A prompt token's log-prob is :func:`token_logprob` ``(previous token, token)``; a generated token's is
    :data:`GENERATED_LOGPROB`, above every alternative, so top-1 is what was generated (not normalised).

    Feature switches (all off: a generation-only server): ``prompt_logprobs`` — completions honour ``echo`` with
    ``logprobs: k`` (log-probs of the prompt's tokens, then the generated ones; not vLLM's ``prompt_logprobs``);
    ``top_logprobs`` — chat ``logprobs`` + ``top_logprobs: k`` and completions ``logprobs: k`` over generated tokens;
    ``choice`` — vLLM's ``structured_outputs: {"choice": [...]}`` (or older ``guided_choice``) makes the answer one
    of the choices. A field of a feature that is off is ignored, or with ``strict`` rejected with 400 naming it, as
    is any field the fake does not know; ``reject_fields`` are rejected in any mode (as OpenAI's reasoning models
    reject ``top_p``). ``no_usage`` drops ``usage`` from answers. ``stream`` is refused (400). Once more requests
    than ``fail_after`` (an attribute, None by default) have come, every answer is 503: a server going down.
    """

    def __init__(
        self,
        model: str = "fake-model",
        *,
        latency: float = 0.0,
        answer_fn: Callable[[dict], str] | None = None,
        words: Sequence[str] = DEFAULT_WORDS,
        prompt_logprobs: bool = False,
        top_logprobs: bool = False,
        choice: bool = False,
        strict: bool = False,
        no_usage: bool = False,
        reject_fields: Iterable[str] = (),
        port: int = 0,
    ):
        self.model, self.latency, self.answer_fn, self.words = model, latency, answer_fn, tuple(words)
        self.prompt_logprobs, self.top_logprobs, self.choice = prompt_logprobs, top_logprobs, choice
        self.strict, self.no_usage, self.reject_fields, self.port = strict, no_usage, set(reject_fields), port
        self.counts: dict[str, int] = {}
        self._bodies: list[bytes] = []  # as received: bytes are not tracked by the GC, as a dict per request is
        self.max_in_flight = self._in_flight = 0
        self.fail_after: int | None = None  # settable while serving: then every request past that many gets 503
        self._thread: ServerThread | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024**2)  # long prompts and batches: aiohttp's default is 1 MiB
        app.router.add_get("/health", self._own)
        app.router.add_get("/stats", self._own)
        models = {"object": "list", "data": [{"id": self.model, "object": "model", "owned_by": "tailor-fake"}]}
        for path, handler in (
            ("/v1/models", lambda _: web.json_response(models)),
            ("/v1/completions", self._completions),
            ("/v1/chat/completions", self._chat),
        ):
            app.router.add_route("GET" if path == "/v1/models" else "POST", path, self._counted(path, handler))
        return app

    @property
    def bodies(self) -> list[Any]:
        """every JSON body received, in order"""
        return [json.loads(raw) for raw in self._bodies]

    def reset(self) -> None:
        self.counts.clear()
        self._bodies.clear()
        self.max_in_flight = 0

    async def _own(self, request: web.Request) -> web.Response:
        """``GET /health``; ``GET /stats``: the counters (for process mode)."""
        if request.path == "/health":
            return web.json_response({"status": "ok"})
        return web.json_response({"counts": self.counts, "bodies": self.bodies, "max_in_flight": self.max_in_flight})

    def _counted(self, path: str, handler: Callable[[dict], web.Response]) -> Callable:
        async def wrapped(request: web.Request) -> web.Response:
            self.counts[path] = self.counts.get(path, 0) + 1
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            try:
                body: dict = {}
                if request.method == "POST":
                    try:
                        body = json.loads(raw := await request.read())
                    except ValueError as e:
                        return _error(400, f"the request body is not valid JSON: {e}", "BadRequestError")
                    self._bodies.append(raw)
                    if not isinstance(body, dict):
                        return _error(400, "the request body must be a JSON object", "BadRequestError")
                if self.fail_after is not None and sum(self.counts.values()) > self.fail_after:
                    return _error(503, f"FakeServer fails after {self.fail_after} requests", "ServiceUnavailable")
                if self.latency > 0:
                    await asyncio.sleep(self.latency)
                return handler(body)
            finally:
                self._in_flight -= 1

        return wrapped

    def _check(self, body: dict, fields: set[str], required: str) -> web.Response | None:
        """The error answer for ``body``, or None: wrong model (404), unknown field (strict only), missing input."""
        if body.get("model") != self.model:
            return _error(404, f"The model `{body.get('model')}` does not exist.", "NotFoundError", "model")
        fields = fields | ({"structured_outputs", "guided_choice"} if self.choice else set())
        unknown = sorted(set(body) & self.reject_fields) or sorted(set(body) - fields if self.strict else [])
        if unknown:
            return _error(
                400,
                f"Unsupported parameter: '{unknown[0]}' is not supported by this server",
                "invalid_request_error",
                unknown[0],
            )
        if required not in body:
            return _error(400, f"`{required}` is required", "BadRequestError", required)
        if body.get("stream"):
            return _error(400, "stream is not supported by FakeServer", "BadRequestError", "stream")
        return None

    def _answer(self, body: dict, key: Any) -> str:
        text = self.answer_fn(body) if self.answer_fn is not None else hash_pick(key, self.words)
        spec = body.get("structured_outputs") if self.choice else None
        options = spec.get("choice") if isinstance(spec, dict) else body.get("guided_choice") if self.choice else None
        if options:
            text = text if text in options else hash_pick(key, options)
        return text

    def _limit(self, body: dict, text: str) -> tuple[list[str], str]:
        """The generated tokens, cut to ``max_tokens`` (loosely: one word a token), and the finish reason."""
        tokens = split_tokens(text)
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
        if isinstance(limit, int) and len(tokens) > limit:
            return tokens[: max(limit, 0)], "length"
        return tokens, "stop"

    def _usage(self, prompt_tokens: int, completion_tokens: int) -> dict[str, dict[str, int]]:
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        return {} if self.no_usage else {"usage": usage}

    def _completions(self, body: dict) -> web.Response:
        fields = _COMPLETION_FIELDS | ({"logprobs"} if self.top_logprobs or self.prompt_logprobs else set())
        fields |= {"echo"} if self.prompt_logprobs else set()
        if (error := self._check(body, fields, "prompt")) is not None:
            return error
        prompts = body["prompt"]
        if isinstance(prompts, str) or _is_ids(prompts):
            prompts = [prompts]
        echo = bool(body.get("echo")) and self.prompt_logprobs
        k = body.get("logprobs") if "logprobs" in fields else None
        n = int(body.get("n") or 1)
        choices, prompt_total, completion_total = [], 0, 0
        if not isinstance(prompts, list) or not all(isinstance(p, str) or _is_ids(p) for p in prompts):
            return _error(
                400, "`prompt` must be a string, a list of token ids, or a list of either", "BadRequestError", "prompt"
            )
        for prompt in prompts:
            ids = list(prompt) if not isinstance(prompt, str) else None
            prompt_toks = [str(i) for i in ids] if ids is not None else split_tokens(prompt)
            prompt_text = "".join(prompt_toks) if ids is not None else prompt
            tokens, finish = self._limit(body, self._answer({**body, "prompt": prompt}, prompt))
            prompt_total += len(prompt_toks)
            completion_total += len(tokens) * n
            choice: dict[str, Any] = {
                "text": (prompt_text if echo else "") + "".join(tokens),
                "logprobs": None,
                "finish_reason": finish,
            }
            if isinstance(k, int):
                choice["logprobs"] = self._completion_logprobs(prompt_toks if echo else [], tokens, k)
            choices += [{"index": len(choices) + j, **choice} for j in range(n)]
        return web.json_response(
            {
                "id": "cmpl-" + _digest(body),
                "object": "text_completion",
                "created": int(time.time()),
                "model": self.model,
                "choices": choices,
                **self._usage(prompt_total, completion_total),
            }
        )

    def _completion_logprobs(self, prompt_toks: list[str], generated: list[str], k: int) -> dict[str, list]:
        """OpenAI's legacy ``logprobs``: the prompt's tokens (when echoed; the first has None), then the generated."""
        out: dict[str, list] = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
        offset, prev = 0, ""
        for i, tok in enumerate(prompt_toks + generated):
            if i < len(prompt_toks):
                lp, top = _prompt_entry(prev, tok, self.words, k) if i else (None, None)
            else:
                lp, pairs = _generated_entry(prev, tok, self.words, k)
                top = dict(pairs)
            for key, value in zip(out, (tok, lp, top, offset)):
                out[key].append(value)
            offset, prev = offset + len(tok), tok
        return out

    def _chat(self, body: dict) -> web.Response:
        fields = _CHAT_FIELDS | ({"logprobs", "top_logprobs"} if self.top_logprobs else set())
        if (error := self._check(body, fields, "messages")) is not None:
            return error
        messages = body["messages"]
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            return _error(400, "`messages` must be a list of objects", "BadRequestError", "messages")
        tokens, finish = self._limit(body, self._answer(body, messages))
        want = self.top_logprobs and bool(body.get("logprobs"))
        k = int(body.get("top_logprobs") or 0)
        content, prev = [], ""
        for tok in tokens if want else []:
            lp, pairs = _generated_entry(prev, tok, self.words, k)
            content.append(
                {
                    "token": tok,
                    "logprob": lp,
                    "bytes": list(tok.encode()),
                    "top_logprobs": [{"token": t, "logprob": v, "bytes": list(t.encode())} for t, v in pairs[:k]],
                }
            )
            prev = tok
        n = int(body.get("n") or 1)
        choice = {
            "message": {"role": "assistant", "content": "".join(tokens)},
            "logprobs": {"content": content} if want else None,
            "finish_reason": finish,
        }
        contents = [m.get("content") for m in messages]
        texts = [
            c if isinstance(c, str) else " ".join(p.get("text", "") for p in c if isinstance(p, dict))
            for c in contents
            if isinstance(c, (str, list))
        ]
        prompt_tokens = sum(len(split_tokens(text)) for text in texts)
        return web.json_response(
            {
                "id": "chatcmpl-" + _digest(body),
                "object": "chat.completion",
                "created": int(time.time()),
                "model": self.model,
                "choices": [{"index": j, **choice} for j in range(n)],
                **self._usage(prompt_tokens, len(tokens) * n),
            }
        )


def _is_ids(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(type(i) is int for i in value)


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:24]


def start_process(
    model: str = "fake-model",
    *,
    latency: float = 0.0,
    preset: str | None = None,
    reject_fields: Iterable[str] = (),
    timeout: float = 30.0,
    **features: bool,
) -> tuple[subprocess.Popen, str]:
    """A :class:`FakeServer` in its own process (``features``: prompt_logprobs, top_logprobs, choice, strict,
    no_usage, each True or False); returns the process and its base URL. Stop it with :func:`stop_process`."""
    flags = ["--model", model, "--latency-ms", str(latency * 1000), "--reject-fields", ",".join(reject_fields)]
    flags += ["--preset", preset] if preset else []
    flags += [("--" if on else "--no-") + key.replace("_", "-") for key, on in features.items()]
    return start_server_process("tailor.testing.fake_server", flags, timeout=timeout)


def main(argv: Sequence[str] | None = None) -> None:
    about = (__doc__ or "").split("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m tailor.testing.fake_server", description=about)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", default="fake-model")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--preset", choices=sorted(PRESETS), help="a preset; the feature flags below override it")
    parser.add_argument("--words", default=",".join(DEFAULT_WORDS), help="comma-separated answers")
    parser.add_argument("--reject-fields", default="", help="comma-separated request fields answered with 400")
    for key in FEATURES:
        parser.add_argument("--" + key.replace("_", "-"), action=argparse.BooleanOptionalAction, default=None)
    args = parser.parse_args(argv)
    features = {**PRESETS.get(args.preset, {}), **{k: v for k in FEATURES if (v := getattr(args, k)) is not None}}
    server = FakeServer(
        args.model,
        latency=args.latency_ms / 1000,
        words=args.words.split(","),
        reject_fields=filter(None, args.reject_fields.split(",")),
        **features,
    )
    serve(server.app(), args.port)


if __name__ == "__main__":
    main()
