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

import json
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..backends.protocol import Capabilities, require
from ..config.task import ModelSpec
from ..contract import Context
from ..costs.usage import NO_USAGE, total
from ..errors import MethodError
from ..prompting import (
    CompiledPrompt,
    PromptAdapted,
    PromptOptions,
    check_prompt_options,
    content_free_bias,
    first_token_clashes,
    fixed_demos,
    label_words,
    order_demos,
    parts_of,
    prompt_variants,
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

    def uses_examples(self, options: PromptOptions) -> bool:
        """Only with demonstrations (`k > 0`); zero-shot prompting runs at a learning curve's size 0 alone."""
        return options.k > 0

    def check(self, options: PromptOptions, train: Split, ctx: Context) -> None:
        check_prompt_options(options, len(train), ctx.task)
        # Last, as it may read the model's configuration (never its weights): what the backend can serve.
        caps = ctx.capabilities()
        _require_capabilities(options, caps, ctx, "")
        for name, over in (options.variants or {}).items():
            if "chat" in over:
                _require_capabilities(options.model_copy(update={"chat": over["chat"]}), caps, ctx, f"variants.{name}")

    def variants(self, options: PromptOptions) -> dict[str, PromptOptions]:
        return prompt_variants(options)

    def adapt(self, options: PromptOptions, train: Split, dev: Split | None, ctx: Context) -> PromptAdapted:
        lm = ctx.backend()
        prompt = CompiledPrompt.compile(parts_of(options), ctx.task.input_fields, "prompt")
        kind = ctx.task.kind
        verbalizers = label_words(ctx.task.labels or (), options.verbalizers) if kind == "classification" else None
        if verbalizers and lm.capabilities.local_tokenizer:
            for label, words in verbalizers.items():
                if any(lm.count_tokens(" " + w) == lm.count_tokens("") for w in words):
                    raise MethodError(f"a verbalizer of {label!r} tokenizes to nothing", key=f"verbalizers.{label}")
        adapted = PromptAdapted(lm, prompt, options, kind, verbalizers, seed=ctx.seed)
        if verbalizers and adapted.mode == "first-token":
            tokenizer = getattr(lm, "tokenizer", None)
            tokenize = (lambda t: tokenizer(t, add_special_tokens=False)["input_ids"]) if tokenizer else None
            clash = first_token_clashes(verbalizers, tokenize)
            if clash:
                raise MethodError(
                    f"mode: first-token can't tell apart labels whose verbalizers begin alike: {', '.join(clash)}; "
                    "give them verbalizers with different first words",
                    key="verbalizers",
                )
        served = getattr(lm, "probe", None)
        if served is not None:  # what the server was found to do, and the path taken: stored with the trial
            adapted.details = {
                "endpoint": {"probe": served.to_dict(), "mode": adapted.mode if verbalizers else "generate"}
            }
        usage = NO_USAGE
        if options.k:
            if options.select in ("nearest", "mmr"):
                # Similar demonstrations are found by the default sentence encoder, whatever model is prompted.
                adapted.encoder = ctx.models.get(ModelSpec())
                adapted.demos = list(train)
                texts = train.texts()
                adapted.pool_embeddings = adapted.encoder.embed(texts, ctx.progress, "embedding demonstration pool")
                usage += total(adapted.encoder.usage_of(texts))
            else:
                chosen = fixed_demos(list(train), options.k, options.select, ctx.seed)
                adapted.demos = order_demos(chosen, "random" if options.demo_order == "random" else "fixed", ctx.seed)
        adapted.model_usage = NO_USAGE  # what adapting asked of the prompted model itself (not of the encoder)
        if verbalizers and adapted.mode in ("score", "first-token") and options.scoring == "calibrated":
            adapted.bias, calibrating = content_free_bias(adapted, ctx.task.input_fields)
            usage += calibrating
            adapted.model_usage = calibrating
        adapted.adapt_usage = usage
        return adapted

    def load(self, path: Path, ctx: Context) -> PromptAdapted:
        spec = json.loads((path / "prompt.json").read_text())
        options = PromptOptions(**spec["options"])
        demos = [
            Example(r["id"], r["inputs"], tuple(r["target"]) if isinstance(r["target"], list) else r["target"])
            for r in map(json.loads, (path / "demonstrations.jsonl").read_text().splitlines())
        ]
        adapted = PromptAdapted(
            ctx.backend(),
            CompiledPrompt.compile(parts_of(options), ctx.task.input_fields, "prompt"),
            options,
            ctx.task.kind,
            spec["verbalizers"],
            demos,
            seed=ctx.seed,
        )
        if spec["per_input_demos"]:
            adapted.encoder = ctx.models.get(ModelSpec())
            adapted.pool_embeddings = adapted.encoder.embed([d.text for d in demos])
        if spec["bias"] is not None:
            adapted.bias = np.array(spec["bias"])
        return adapted
