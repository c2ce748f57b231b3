"""The backend contract: what the methods may ask of a model, whatever runs it.

A generative backend takes prompts as a completion string or as chat messages and can score continuations
and/or generate; an encoder backend embeds texts. Each declares its :class:`Capabilities`, and a method's
``check`` refuses, before any model is called, an option its backend cannot serve, naming what is missing
(:func:`require`). Every answer comes with the :class:`~tailor.costs.usage.Usage` of each query.

Local Hugging Face models (:mod:`tailor.backends.local.lm`, :mod:`tailor.backends.local.encoder`), models served
behind an OpenAI-compatible endpoint (:mod:`tailor.backends.served.endpoint`) and the scripted fake of
:mod:`tailor.testing` all implement these protocols; the prompt route uses nothing else. Every member a method reads
is declared here: a backend that lacks a capability still has the member, and says so (``None``, or an error naming
the capability), so no method probes a backend for what it has.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..costs.usage import Usage
from ..errors import MethodError
from ..progress import Progress

Message = dict[str, str]
"""One chat turn: ``{"role": "system" | "user" | "assistant", "content": ...}``."""
PromptInput = str | list[Message]
"""A prompt: one completion string, or chat messages (the backend applies its chat template or chat API)."""


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do. Options that need a capability are refused up front when it is missing.

    Attributes:
        score_continuations: Gives the log-likelihood of any continuation after a prompt (option scoring,
            calibration).
        prefix_reuse: Computes a prefix shared by many prompts once (a local KV cache, a server's prefix cache).
        top_logprobs: How many next-token log-probabilities it returns per position (0: none).
        constrained_choice: Can restrict its output to one of given strings natively.
        local_tokenizer: Counts tokens here, so prompts can be fitted to the context before they are sent.
        chat: Takes chat messages (a chat template, or a chat API).
        context_length: The longest sequence it takes, in tokens (None: unknown).
    """

    score_continuations: bool = False
    prefix_reuse: bool = False
    top_logprobs: int = 0
    constrained_choice: bool = False
    local_tokenizer: bool = False
    chat: bool = False
    context_length: int | None = None
    source: str = ""
    """How these were established, for error messages (a served model: what its probes found)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "score_continuations": self.score_continuations,
            "prefix_reuse": self.prefix_reuse,
            "top_logprobs": self.top_logprobs,
            "constrained_choice": self.constrained_choice,
            "local_tokenizer": self.local_tokenizer,
            "chat": self.chat,
            "context_length": self.context_length,
        }


# How each capability reads in an error message.
CAPABILITY_NAMES = {
    "score_continuations": "scoring arbitrary continuations (log-likelihoods)",
    "prefix_reuse": "reusing a shared prompt prefix",
    "top_logprobs": "top-k next-token log-probabilities",
    "constrained_choice": "constraining the output to a choice",
    "local_tokenizer": "a local tokenizer (to count tokens before sending)",
    "chat": "chat messages (a chat template or a chat API)",
}


def require(caps: Capabilities, capability: str, *, model: str, key: str, why: str, fix: str = "") -> None:
    """Raise a :class:`MethodError` naming ``key`` when ``caps`` lacks ``capability``.

    Args:
        caps: The backend's capabilities.
        capability: A field of :class:`Capabilities`.
        model: The model's name, for the message.
        key: The option that needs it (e.g. ``mode``), for the message's key.
        why: What the option is for, e.g. "mode: score".
        fix: What the user can do instead, appended to the message (starting with "; ").
    """
    if not getattr(caps, capability):
        found = f"; {caps.source}" if caps.source else ""
        raise MethodError(
            f"{why} needs {CAPABILITY_NAMES[capability]}, which the backend of {model} does not offer "
            f"(missing capability: {capability}){found}{fix}",
            key=key,
        )


@dataclass(frozen=True)
class GenerationSettings:
    """How to generate: greedy unless ``do_sample``; the output is cut before the first ``stop`` string."""

    max_new_tokens: int = 64
    stop: tuple[str, ...] = ()
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """``text`` up to the first of the ``stop`` strings (all of it when none occurs): how every backend ends an
    answer, whether or not the model or server stopped there itself."""
    ends = [text.find(s) for s in stop if s and s in text]
    return text[: min(ends)] if ends else text


@dataclass
class Scored:
    """Log-likelihoods of every continuation after every prompt.

    Attributes:
        logprobs: ``(prompts, continuations)``, summed over each continuation's tokens.
        token_counts: ``(prompts, continuations)``, tokens of each continuation (for per-token means).
        usage: One :class:`Usage` per prompt (the whole query: the prompt and every continuation).
        errors: Per prompt, why it could not be scored (a served model failing after every retry), else None.
    """

    logprobs: np.ndarray
    token_counts: np.ndarray
    usage: list[Usage] = field(default_factory=list)
    errors: list[str | None] = field(default_factory=list)


@dataclass(frozen=True)
class Generated:
    """One generated answer and what its query cost.

    Attributes:
        error: Why there is no answer (a served model failing after every retry); ``text`` is then empty.
        top_logprobs: The first generated token's most likely tokens and their log-probabilities, when asked.
    """

    text: str
    usage: Usage
    error: str | None = None
    top_logprobs: dict[str, float] | None = None


class Probe(Protocol):
    """What a served model's probes found, as stored with each trial that prompted it."""

    def to_dict(self) -> dict[str, Any]: ...


@runtime_checkable
class GenerativeBackend(Protocol):
    """A generative model (causal or encoder-decoder), local or served."""

    name: str
    """The model's name as the task file gives it (hub id, folder, endpoint model id)."""
    capabilities: Capabilities
    parameters: int | None
    """Total parameters of the model (None when unknown, e.g. a served model)."""
    tokenizer: Any
    """The model's Hugging Face tokenizer when there is one here (a local model; a served model's
    ``endpoint.tokenizer``), for what only token ids can tell (two verbalizers that begin with the same token); None
    otherwise (the scripted fake, a served model without one)."""
    probe: Probe | None
    """What the probes of a served model found (stored with each trial); None for a model that runs here."""

    def render(self, prompt: PromptInput) -> str:
        """The prompt as the text the model reads (the chat template applied): what is stored beside a prediction."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` (backends with ``local_tokenizer`` only)."""
        ...

    def score(
        self, prompts: Sequence[PromptInput], continuations: Sequence[str], progress: Progress | None = None
    ) -> Scored:
        """Log-likelihood of each continuation after each prompt (backends with ``score_continuations`` only)."""
        ...

    def generate(
        self, prompts: Sequence[PromptInput], settings: GenerationSettings, progress: Progress | None = None
    ) -> list[Generated]:
        """One answer per prompt."""
        ...

    def first_token_logprobs(
        self, prompts: Sequence[PromptInput], k: int, progress: Progress | None = None
    ) -> list[Generated]:
        """One answer token per prompt, with ``top_logprobs`` holding the ``k`` most likely first tokens (backends
        with ``top_logprobs`` only: first-token scoring)."""
        ...

    def choose(
        self, prompts: Sequence[PromptInput], choices: Sequence[str], progress: Progress | None = None
    ) -> list[Generated]:
        """One of ``choices`` per prompt, the model constrained to them (backends with ``constrained_choice`` only)."""
        ...


@runtime_checkable
class EncoderBackend(Protocol):
    """A sentence encoder: texts in, L2-normalized embeddings out."""

    name: str
    parameters: int | None
    dim: int
    truncated: int
    """Texts cut to the model's longest input so far, a running count (a trial reads its change over a split)."""

    def embed(self, texts: Sequence[str], progress: Progress | None = None, what: str = "embedding") -> np.ndarray:
        """Embeddings ``(len(texts), dim)``, rows L2-normalized."""
        ...

    def usage_of(self, texts: Sequence[str]) -> list[Usage]:
        """The usage of embedding each text (one query each)."""
        ...

    def cache_disabled(self) -> AbstractContextManager[None]:
        """Within this block nothing is served from a cache (for timing costs cold)."""
        ...

    def private_cache(self) -> AbstractContextManager[None]:
        """Within this block embeddings are cached apart from the run's cache, neither read from it nor added to it
        (a prompt search pays for each text it embeds once, and for none another trial paid for)."""
        ...
