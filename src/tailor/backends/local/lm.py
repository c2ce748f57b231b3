"""Local generative models (causal and seq2seq) behind the backend contract: scoring continuations and generating.

:class:`LanguageModel` implements :class:`~tailor.backends.protocol.GenerativeBackend` over a Hugging Face model
and its tokenizer: ``render`` applies the chat template to chat messages, ``score`` finds the prefix the prompts
share and scores every continuation on top of its cached keys and values (:mod:`tailor.backends.local.scoring`), and
``generate`` decodes in left-padded batches. Every answer carries its query's usage: the tokens it contains and
``2·N`` FLOPs per token (:mod:`tailor.costs.usage`).

Fine-tuning builds a :class:`LanguageModel` around the model it trains, so a fine-tuned model predicts through
the same backend as a prompted one. :data:`KIND` is the registry's loader for the ``causal`` and ``seq2seq`` kinds.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Literal

import numpy as np

from ...config.task import ModelSpec
from ...costs.usage import params_per_token, query_usage
from ...errors import TailorError
from ...progress import NULL_PROGRESS, Progress
from ..models import best_device, model_kind, resolve_path
from ..protocol import Capabilities, Generated, GenerationSettings, PromptInput, Scored, cut_at_stop, require
from .scoring import batches, pad_rows, score_encoded, score_options, shared_prefix
from .tokens import encode, encode_continuations

# A prefix's last few tokens may merge with the example's first characters (a BPE boundary). Up to
# this many are dropped from the cache and re-run per example before that example falls back.
_BOUNDARY_SLACK = 4


def _context_length(config: Any, tokenizer: Any, max_length: int | None) -> int:
    """``max_length`` when given, else the model's positions, else the tokenizer's limit, else 2048."""
    if max_length:
        return max_length
    text = config.get_text_config(decoder=True)
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        if isinstance(getattr(text, name, None), int):
            return int(getattr(text, name))
    limit = getattr(tokenizer, "model_max_length", None)
    return int(limit) if isinstance(limit, int) and 0 < limit < 1_000_000 else 2048


class LanguageModel:
    """A local causal or seq2seq language model with its tokenizer: a generative backend.

    Attributes:
        name: The model's name (the task file's, or the model's own path).
        kind: ``"causal"`` or ``"seq2seq"``.
        batch_size: Most sequences per forward pass (a token budget may make batches smaller).
        boundary_slack: Prefix tokens that may be re-encoded per example before it is scored without the cache.
        prefix_cached: Examples scored so far on top of a cached prefix.
        prefix_fallbacks: Examples scored so far without the cache because the prefix's tokens were not a
            prefix of theirs (or the model can't take the packed layout); for the run record.
        keeps_logits: The model's forward takes ``logits_to_keep`` (only the needed positions' logits are made).
        cache_argument: The forward's name for a KV cache passed in (the inner model's, see ``inner_model``).
    """

    probe: None = None  # nothing to probe: the model runs here, its capabilities are known from its files

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        kind: str,
        *,
        batch_size: int = 64,
        max_length: int | None = None,
        name: str | None = None,
    ):
        if kind not in ("causal", "seq2seq"):
            raise TailorError(f"model.kind: a language model is causal or seq2seq, not {kind!r}")
        self.model, self.tokenizer, self.kind = model, tokenizer, kind
        self.name = name or str(getattr(model, "name_or_path", "") or kind)
        self.batch_size = batch_size
        self.boundary_slack = _BOUNDARY_SLACK
        self.prefix_cached = 0
        self.prefix_fallbacks = 0
        self._max_length = max_length
        # A PEFT wrapper's forward takes **kwargs and hands them on to the transformers model inside, so that
        # model's signature says what the wrapper takes (read off the wrapper, both came out wrong).
        forward = inspect.signature(self.inner_model.forward).parameters
        self.keeps_logits = "logits_to_keep" in forward
        # what the forward calls a KV cache passed in: `cache` from transformers 5.24, `past_key_values` before
        self.cache_argument = "cache" if "cache" in forward else "past_key_values"

    @classmethod
    def from_spec(cls, spec: ModelSpec, kind: str | None = None, *, dtype: str | None = None) -> LanguageModel:
        """Load ``spec``'s model and tokenizer; ``dtype`` (e.g. "float32") overrides the device's default."""
        import torch
        from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

        from .hf import library_bars_off

        kind = kind or model_kind(spec)
        path, device = resolve_path(spec.name), best_device(spec.device)
        dtype = dtype or (spec.dtype if spec.dtype != "auto" else None)
        if dtype is None:
            dtype = "float32"
            if device.startswith("cuda"):
                dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        auto = AutoModelForSeq2SeqLM if kind == "seq2seq" else AutoModelForCausalLM
        with library_bars_off():
            tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=spec.trust_remote_code)
            model = auto.from_pretrained(path, dtype=getattr(torch, dtype), trust_remote_code=spec.trust_remote_code)
        model.to(device).eval()
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        return cls(model, tokenizer, kind, batch_size=spec.batch_size, max_length=spec.max_length, name=spec.name)

    # -- what it is -----------------------------------------------------------------------------------

    @property
    def device(self) -> Any:
        return self.model.device

    @property
    def inner_model(self) -> Any:
        """The transformers model itself: ``model``, or the one inside a PEFT wrapper (a soft prompt's, which puts
        the same virtual tokens, or their keys and values, in front of every input)."""
        return self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    @property
    def context_length(self) -> int:
        """Longest sequence the model takes: ``model.max_length``, else the model's positions, else the tokenizer's."""
        return _context_length(self.model.config, self.tokenizer, self._max_length)

    def cap_context(self, n: int) -> None:
        """Take at most ``n`` tokens from now on (a fine-tuned model keeps its training's ``max_length``)."""
        self._max_length = min(n, self.context_length)

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            score_continuations=True,
            prefix_reuse=self.kind == "causal",
            local_tokenizer=True,
            chat=self.has_chat_template,
            context_length=self.context_length,
        )

    @property
    def parameters(self) -> int:
        """Total parameters (shared ones once)."""
        return int(sum(p.numel() for p in {id(p): p for p in self.model.parameters()}.values()))

    # -- text -----------------------------------------------------------------------------------------

    def render(self, prompt: PromptInput) -> str:
        """The prompt's text: a string as it is; chat messages through the chat template with a generation prompt
        (without a chat template, their contents joined by blank lines)."""
        if isinstance(prompt, str):
            return prompt
        if self.has_chat_template:
            return self.tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        return "\n\n".join(m["content"] for m in prompt)

    def count_tokens(self, text: str) -> int:
        return len(self.encode([text])[0])

    def encode(self, texts: Sequence[str], special: bool = True) -> list[list[int]]:
        """Token ids as lm-eval's ``tok_encode`` (see :func:`tailor.backends.local.tokens.encode`)."""
        return encode(self.tokenizer, texts, special)

    def encode_continuations(
        self, contexts: Sequence[str], options: Sequence[Sequence[str]]
    ) -> tuple[list[list[int]], list[list[list[int]]]]:
        """Each context's ids and the ids of each of its continuations (see
        :func:`tailor.backends.local.tokens.encode_continuations`)."""
        return encode_continuations(self.tokenizer, self.kind, contexts, options)

    # -- scoring --------------------------------------------------------------------------------------

    def score(
        self, prompts: Sequence[PromptInput], continuations: Sequence[str], progress: Progress | None = None
    ) -> Scored:
        """Log-likelihood of each continuation after each prompt; the prompts' common prefix is computed once.

        A query's usage counts the prompt's tokens and every continuation's (what it contains, not what the cache
        saved).
        """
        texts = [self.render(p) for p in prompts]
        if not texts or not continuations:
            empty = np.zeros((len(texts), len(continuations)))
            return Scored(empty, empty.astype(np.int64), [query_usage(0, 0) for _ in texts])
        prefix = shared_prefix(texts)  # encoded once, its KV cache reused for every prompt
        # tokenized once: for scoring, and for the usage (each prompt's tokens as scored, plus its continuations')
        ctx_ids, conts = self.encode_continuations(texts, [list(continuations)] * len(texts))
        lengths = [len(ids) for ids in ctx_ids]
        logp, counts = score_encoded(self, prefix, ctx_ids, conts, progress=progress or NULL_PROGRESS)
        per_token = params_per_token(self.model)
        usage = [query_usage(per_token, n + int(row.sum())) for n, row in zip(lengths, counts)]
        return Scored(logp, counts, usage)

    def score_options(
        self,
        prefix: str,
        prompts: Sequence[str],
        options: Sequence[str],
        *,
        use_prefix_cache: bool = True,
        batch_size: int | None = None,
        progress: Progress = NULL_PROGRESS,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(logprobs, token_counts)`` of each option after ``prefix + prompts[i]``, the prefix given explicitly.

        See :func:`tailor.backends.local.scoring.score_options` for the arguments.
        """
        return score_options(
            self,
            prefix,
            prompts,
            options,
            use_prefix_cache=use_prefix_cache,
            batch_size=batch_size,
            progress=progress,
        )

    # -- generation -----------------------------------------------------------------------------------

    def generate(
        self, prompts: Sequence[PromptInput], settings: GenerationSettings, progress: Progress | None = None
    ) -> list[Generated]:
        """One answer per prompt, each with its query's usage: the prompt's tokens in, the generated tokens out."""
        per_token = params_per_token(self.model)
        rows = self._generate([self.render(p) for p in prompts], settings, None, progress or NULL_PROGRESS)
        return [Generated(text, query_usage(per_token, n_in, n_out)) for text, n_in, n_out in rows]

    def first_token_logprobs(
        self, prompts: Sequence[PromptInput], k: int, progress: Progress | None = None
    ) -> list[Generated]:
        """Not offered: a local model scores each verbalizer in full (``mode: score``), which first-token scoring
        only approximates."""
        require(self.capabilities, "top_logprobs", model=self.name, key="mode", why="mode: first-token")
        return []

    def choose(
        self, prompts: Sequence[PromptInput], choices: Sequence[str], progress: Progress | None = None
    ) -> list[Generated]:
        """Not offered: scoring every choice (``mode: score``) does what a constrained answer would."""
        require(self.capabilities, "constrained_choice", model=self.name, key="mode", why="mode: choice")
        return []

    def generate_texts(
        self,
        prompts: Sequence[str],
        *,
        max_new_tokens: int = 64,
        stop: Sequence[str] = (),
        do_sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int = 0,
        batch_size: int | None = None,
        progress: Progress = NULL_PROGRESS,
    ) -> list[str]:
        """The text each prompt continues with: greedy unless ``do_sample``, cut before the first ``stop`` string.

        Prompts are batched with left padding. Sampling seeds torch's RNG with ``seed`` inside a forked RNG
        state, so the same call gives the same texts and the caller's random stream is left as it was.
        """
        settings = GenerationSettings(max_new_tokens, tuple(stop), do_sample, temperature, top_p, seed)
        rows = self._generate(list(prompts), settings, batch_size, progress)
        return [text for text, _, _ in rows]

    def _generate(
        self, texts: list[str], settings: GenerationSettings, batch_size: int | None, progress: Progress
    ) -> list[tuple[str, int, int]]:
        """(text, prompt tokens read, tokens generated) per prompt."""
        import torch

        outputs: list[tuple[str, int, int]] = [("", 0, 0)] * len(texts)
        if not texts:
            return outputs
        encoded = self.encode(texts)
        g = settings
        room = self.context_length - (g.max_new_tokens if self.kind == "causal" else 0)
        encoded = [ids[-max(1, room) :] for ids in encoded]
        options: dict[str, Any] = {"max_new_tokens": g.max_new_tokens, "do_sample": g.do_sample}
        options["pad_token_id"] = self.tokenizer.pad_token_id
        if g.do_sample:
            options.update(temperature=g.temperature, top_p=g.top_p, top_k=0)
        if g.stop:
            options.update(stop_strings=list(g.stop), tokenizer=self.tokenizer)
        devices = [self.device] if self.device.type == "cuda" else []
        with (
            torch.inference_mode(),
            torch.random.fork_rng(devices=devices),
            progress.bar("generating", len(texts)) as bar,
        ):
            torch.manual_seed(g.seed)
            for batch in batches([len(e) for e in encoded], batch_size or self.batch_size, budget=None):
                ids, mask = pad_rows(
                    [encoded[b] for b in batch], self.tokenizer.pad_token_id, left=self.kind == "causal"
                )
                with warnings.catch_warnings():
                    # Some transformers versions warn about their own T5 internals here, on every batch; it is
                    # nothing the user did or can change, so exactly that warning is hidden.
                    warnings.filterwarnings(
                        "ignore", message=r"Both `past_key_values` and `cache`", category=FutureWarning
                    )
                    new = self.model.generate(
                        input_ids=ids.to(self.device), attention_mask=mask.to(self.device), **options
                    )
                # causal: the prompt comes back in front; seq2seq: the decoder's start token does
                new = new[:, ids.shape[1] :] if self.kind == "causal" else new[:, 1:]
                for r, b in enumerate(batch):
                    tokens = self._generated_tokens(new[r].tolist())
                    text = cut_at_stop(self.tokenizer.decode(tokens, skip_special_tokens=True), g.stop)
                    outputs[b] = (text, len(encoded[b]), len(tokens))
                bar.advance(len(batch))
        return outputs

    def _generated_tokens(self, row: list[int]) -> list[int]:
        """The tokens the model wrote in one row of a batch: up to its EOS (included), without the padding after
        a row that finished early."""
        eos, pad = self.tokenizer.eos_token_id, self.tokenizer.pad_token_id
        if eos is not None and eos in row:
            return row[: row.index(eos) + 1]
        while row and row[-1] == pad:
            row = row[:-1]
        return row


@lru_cache(maxsize=32)
def _capabilities(path: str, kind: str, trust_remote_code: bool, max_length: int | None) -> Capabilities:
    from transformers import AutoConfig, AutoTokenizer

    from .hf import library_bars_off

    with library_bars_off():
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    return Capabilities(
        score_continuations=True,
        prefix_reuse=kind == "causal",
        local_tokenizer=True,
        chat=bool(getattr(tokenizer, "chat_template", None)),
        context_length=_context_length(config, tokenizer, max_length),
    )


class LocalLanguageModels:
    """The registry's ``causal`` and ``seq2seq`` kinds: local Hugging Face models (see :data:`KIND`)."""

    role: Literal["generative"] = "generative"

    def capabilities(self, spec: ModelSpec) -> Capabilities:
        """What :class:`LanguageModel` offers for ``spec``, from the model's configuration and tokenizer only."""
        kind = model_kind(spec)
        return _capabilities(resolve_path(spec.name), kind, spec.trust_remote_code, spec.max_length)

    def load(self, spec: ModelSpec) -> LanguageModel:
        return LanguageModel.from_spec(spec)


KIND = LocalLanguageModels()
