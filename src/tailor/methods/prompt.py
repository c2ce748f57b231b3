"""`prompt` (prompt route) for generative models: zero-shot (`k: 0`) or few-shot (`k > 0`) prompting
of a causal or encoder-decoder language model, for classification, QA, summarization and translation.

Classification either scores each label's verbalizer as a continuation of the prompt by
log-likelihood (`mode: score` — no output can be invalid; `scoring`: sum, length-normalized
mean, or calibrated against content-free inputs as in Zhao et al. 2021, "Calibrate before use"),
or lets the model write the label and parses it (`mode: generate`), where the valid-output rate
is the measure of control. Generation tasks generate. Several wordings in `variants` are each
scored on dev and test. Nothing is trained.

This module only checks options and wires the prompt route (:mod:`tailor.prompting`) to the run's backend; an
option the backend cannot serve (scoring on a model that only generates, say) is refused before any model call.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..backends.protocol import Capabilities, require
from ..config.task import ModelSpec
from ..contract import Context
from ..costs.usage import NO_USAGE, Usage, total
from ..errors import FolderError, MethodError
from ..prompting import (
    DEMONSTRATIONS_FILE,
    PROMPT_FILE,
    CompiledPrompt,
    PromptAdapted,
    PromptOptions,
    check_prompt_options,
    check_saved_prompt,
    content_free_bias,
    first_token_clashes,
    fixed_demos,
    label_words,
    order_demos,
    parts_of,
    prompt_variants,
    read_demonstrations,
    read_prompt,
    resolved_mode,
)
from ..types import Example, Split


def _require_capabilities(options: PromptOptions, caps: Capabilities, ctx: Context, where: str) -> None:
    """Refuse, naming the option's key, each option of ``options`` that ``caps`` cannot serve."""
    at = f"{where}." if where else ""
    model = ctx.model.name
    mode = resolved_mode(options.mode, caps)
    if ctx.task.kind == "classification":
        if options.scoring == "calibrated" and mode not in ("score", "first-token"):  # calibrates label scores
            require(caps, "score_continuations", model=model, key=f"{at}scoring", why="scoring: calibrated")
        needs = {"score": "score_continuations", "first-token": "top_logprobs", "choice": "constrained_choice"}
        if mode in needs:
            require(caps, needs[mode], model=model, key=f"{at}mode", why=f"mode: {mode} (classification)")
    if options.truncate:
        require(caps, "local_tokenizer", model=model, key=f"{at}truncate", why="truncate: true")
    if options.chat == "chat":
        fix = "; use `chat: completion` (one prompt string) or `chat: auto`, or a model that has a chat template"
        require(caps, "chat", model=model, key=f"{at}chat", why="chat: chat", fix=fix)


def _check_verbalizers(lm: Any, verbalizers: dict[str, list[str]], options: PromptOptions) -> None:
    """Refuse verbalizers the model can't tell apart: one that tokenizes to nothing, or (first-token scoring) two
    labels whose verbalizers begin with the same token."""
    if lm.capabilities.local_tokenizer:
        for label, words in verbalizers.items():
            if any(lm.count_tokens(" " + w) == lm.count_tokens("") for w in words):
                raise MethodError(f"a verbalizer of {label!r} tokenizes to nothing", key=f"verbalizers.{label}")
    if resolved_mode(options.mode, lm.capabilities) == "first-token":
        tokenizer = lm.tokenizer  # without one here, the first words are compared instead
        tokenize = (lambda t: tokenizer(t, add_special_tokens=False)["input_ids"]) if tokenizer is not None else None
        clash = first_token_clashes(verbalizers, tokenize)
        if clash:
            raise MethodError(
                f"mode: first-token can't tell apart labels whose verbalizers begin alike: {', '.join(clash)}; "
                "give them verbalizers with different first words",
                key="verbalizers",
            )


def _pool(options: PromptOptions, demos: list[Example], ctx: Context) -> tuple[Any, np.ndarray | None, Usage]:
    """For demonstrations chosen per input (``nearest``, ``mmr``): the sentence encoder that finds them (the default
    one, whatever model is prompted), the pool's embeddings, and what embedding it cost; else nothing."""
    if not options.k or options.select not in ("nearest", "mmr"):
        return None, None, NO_USAGE
    encoder = ctx.models.get(ModelSpec())
    texts = [d.text for d in demos]
    return encoder, encoder.embed(texts, ctx.progress, "embedding demonstration pool"), total(encoder.usage_of(texts))


class Prompt:
    name: ClassVar[str] = "prompt"
    route: ClassVar[str] = "prompt"
    summary: ClassVar[str] = (
        "Zero-/few-shot prompting of a generative model: templates, demonstrations, "
        "option scoring or generation. No training."
    )
    Options: ClassVar[type[PromptOptions]] = PromptOptions
    task_kinds: ClassVar[frozenset[str]] = frozenset({"classification", "qa", "summarization", "translation"})
    model_kinds: ClassVar[frozenset[str]] = frozenset({"causal", "seq2seq", "scripted", "endpoint"})
    shares_model: ClassVar[bool] = True
    files: ClassVar[tuple[str, ...]] = (PROMPT_FILE, DEMONSTRATIONS_FILE)

    def uses_examples(self, options: PromptOptions) -> bool:
        """Only with demonstrations (`k > 0`); zero-shot prompting runs at a learning curve's size 0 alone."""
        return options.k > 0

    def check(self, options: PromptOptions, train: Split, ctx: Context) -> None:
        check_prompt_options(options, train, ctx.task)
        # Last, as it may read the model's configuration (never its weights): what the backend can serve.
        caps = ctx.capabilities()
        _require_capabilities(options, caps, ctx, "")
        for name, over in (options.variants or {}).items():
            if "chat" in over:
                _require_capabilities(options.model_copy(update={"chat": over["chat"]}), caps, ctx, f"variants.{name}")

    def variants(self, options: PromptOptions) -> dict[str, PromptOptions]:
        return prompt_variants(options)

    def adapt(self, options: PromptOptions, train: Split, dev: Split | None, ctx: Context) -> PromptAdapted:
        if not options.k:
            demos: list[Example] = []
        elif options.select in ("nearest", "mmr"):
            demos = list(train)  # the pool each input's own are chosen from
        else:
            chosen = fixed_demos(list(train), options.k, options.select, ctx.seed)
            demos = order_demos(chosen, "random" if options.demo_order == "random" else "fixed", ctx.seed)
        adapted = self._build(options, demos, None, ctx)
        if adapted.verbalizers and adapted.mode in ("score", "first-token") and options.scoring == "calibrated":
            bias, calibrating = content_free_bias(adapted, ctx.task.input_fields)
            adapted = dataclasses.replace(adapted, bias=bias, calibration_usage=calibrating)
        return adapted

    def load(self, options: PromptOptions, path: Path, ctx: Context) -> PromptAdapted:
        saved = read_prompt(path)
        demos = read_demonstrations(path, ctx.task.labels if ctx.task.kind == "classification" else None)
        bias = np.array([saved.calibration]) if saved.calibration is not None else None
        if bias is not None and bias.shape[1] != len(saved.labels or ()):
            raise FolderError(
                str(path / PROMPT_FILE), "calibration", f"expected one number per label of {saved.labels}"
            )
        adapted = self._build(options, demos, bias, ctx)
        check_saved_prompt(path, saved, adapted.used_prompt())
        return adapted

    def _build(self, options: PromptOptions, demos: list[Example], bias: Any, ctx: Context) -> PromptAdapted:
        """The prompt over the run's model with these demonstrations (and calibration): what adapting makes, and
        what loading the folder makes again."""
        lm = ctx.backend()
        prompt = CompiledPrompt.compile(parts_of(options), ctx.task.input_fields, "prompt")
        kind = ctx.task.kind
        verbalizers = label_words(ctx.task.labels or (), options.verbalizers) if kind == "classification" else None
        if verbalizers:
            _check_verbalizers(lm, verbalizers, options)
        encoder, pool, pool_usage = _pool(options, demos, ctx)
        return PromptAdapted(
            lm, prompt, options, kind, verbalizers, demos, pool, encoder, bias, pool_usage=pool_usage, seed=ctx.seed
        )
