"""`prompt` (prompt route) for generative models: zero-shot (`k: 0`) or few-shot (`k > 0`) prompting
of a causal or encoder-decoder language model, for classification, QA, summarization and translation.

Classification either scores each label's verbalizer as a continuation of the prompt by
log-likelihood (`mode: score` — no output can be invalid; `scoring`: sum, length-normalized
mean, or calibrated against content-free inputs as in Zhao et al. 2021, "Calibrate before use"),
or lets the model write the label and parses it (`mode: generate`), where the valid-output rate
is the measure of control. Generation tasks generate. Several wordings in `variants` are each
scored on dev and test. Nothing is trained.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..config import ModelSpec
from ..contract import Context
from ..demos import DemoPool, fixed_demos, order_demos, similar_demos
from ..errors import MethodError
from ..prompting import PART_NAMES, CompiledPrompt, PromptOptions, answer_text, parts_of, shared_prefix
from ..types import Example, Prediction, Split

CONTENT_FREE = ("N/A", "", "[MASK]")


def _verbalizers(labels: Sequence[str], given: dict[str, str | list[str]] | None) -> dict[str, list[str]]:
    given = given or {}
    return {lb: ([v] if isinstance(v, str) else list(v)) if (v := given.get(lb)) else [lb] for lb in labels}


def parse_label(text: str, verbalizers: dict[str, list[str]]) -> str | None:
    """The label whose verbalizer the output starts with (case-insensitive), or None: an invalid output."""
    first = text.strip().splitlines()[0].strip().lower() if text.strip() else ""
    best, best_len = None, 0
    for label, words in verbalizers.items():
        for w in words:
            w = w.strip().lower()
            if (
                w
                and first.startswith(w)
                and (len(first) == len(w) or not first[len(w)].isalnum())
                and len(w) > best_len
            ):
                best, best_len = label, len(w)
    return best


def shorten_to_fit(
    ex: Example, render: Callable[[Example], str], count_tokens: Callable[[str], int], limit: int
) -> tuple[Example, str]:
    """``ex`` with its longest input field cut by a tenth at a time until its prompt is at most ``limit``
    tokens (40 cuts at most), and that prompt. The instruction and template are never cut."""
    prompt = render(ex)
    for _ in range(40):
        if count_tokens(prompt) <= limit:
            break
        longest = max(ex.inputs, key=lambda f: len(ex.inputs[f]))
        text = ex.inputs[longest]
        ex = Example(ex.id, {**ex.inputs, longest: text[: int(len(text) * 0.9)]}, ex.target, ex.source)
        prompt = render(ex)
    return ex, prompt


@dataclass
class PromptAdapted:
    lm: Any  # tailor.backends.lm.LanguageModel
    prompt: CompiledPrompt
    options: PromptOptions
    kind: str
    verbalizers: dict[str, list[str]] | None
    demos: list[Example] = field(default_factory=list)  # fixed demonstrations, or the pool for per-input choice
    pool_embeddings: np.ndarray | None = None
    encoder: Any = None  # tailor.backends.encoder.Encoder, for per-input demonstrations
    bias: np.ndarray | None = None  # calibration: content-free log-probabilities per label
    trainable_params: int = 0

    @property
    def examples_used(self) -> int:
        return len(self.demos)

    @property
    def use_chat(self) -> bool:
        chat = self.prompt.parts.chat
        return chat == "chat" or (chat == "auto" and self.lm.has_chat_template)

    # -------------------------------------------------------------------------------------- prompts

    def _demos_for(self, examples: Sequence[Example]) -> list[list[Example]]:
        o = self.options
        if o.k == 0:
            return [[] for _ in examples]
        if self.pool_embeddings is None:
            return [[d for d in self.demos if d.text != ex.text] for ex in examples]
        pool = DemoPool(self.demos, self.pool_embeddings)
        queries = self.encoder.embed([ex.text for ex in examples])
        out = []
        for q, ex in zip(queries, examples):
            idx = similar_demos(q, ex.text, pool, o.k, o.select, o.mmr_lambda)
            chosen = [self.demos[i] for i in idx]
            sims = [float(self.pool_embeddings[i] @ q) for i in idx]
            out.append(order_demos(chosen, o.demo_order, 0, sims))
        return out

    def render(self, examples: Sequence[Example]) -> list[str]:
        demos = self._demos_for(examples)
        prompts = []
        for ex, ds in zip(examples, demos):
            pairs = [(d, answer_text(d, self.kind, self.verbalizers)) for d in ds]
            prompts.append(self.prompt.render(ex, pairs, self.use_chat, lambda m: self.lm.render(m, chat=True)))
        return prompts

    def _fit_context(self, examples: Sequence[Example], prompts: list[str]) -> tuple[list[Example], list[str]]:
        budget = (
            self.options.max_new_tokens
            if self._generates
            else max(self.lm.count_tokens(v) for vs in (self.verbalizers or {}).values() for v in vs)
        )
        limit = self.lm.context_length - budget
        too_long = [i for i, p in enumerate(prompts) if self.lm.count_tokens(p) > limit]
        if not too_long:
            return list(examples), prompts
        if not self.options.truncate:
            ids = ", ".join(examples[i].id for i in too_long[:10]) + (" …" if len(too_long) > 10 else "")
            raise MethodError(
                f"{len(too_long)} prompts are longer than the model's context ({self.lm.context_length} "
                f"tokens with {budget} for the answer): {ids}; shorten the prompt or set truncate: true",
                key="truncate",
            )
        examples = list(examples)
        for i in too_long:
            examples[i], prompts[i] = shorten_to_fit(
                examples[i], lambda e: self.render([e])[0], self.lm.count_tokens, limit
            )
        return examples, prompts

    # -------------------------------------------------------------------------------------- predicting

    @property
    def _generates(self) -> bool:
        return self.kind != "classification" or self.options.mode == "generate"

    def _continuations(self) -> tuple[list[str], list[int]]:
        """Every verbalizer as the text that continues the prompt, and the label index of each."""
        assert self.verbalizers is not None
        space = "" if self.use_chat else " "
        texts, owner = [], []
        for i, words in enumerate(self.verbalizers.values()):
            for w in words:
                texts.append(space + w)
                owner.append(i)
        return texts, owner

    def label_scores(self, prompts: list[str], scoring: str | None = None) -> np.ndarray:
        """(n, labels) scores: the log-likelihood of each label's verbalizers, aggregated per label."""
        scoring = scoring or self.options.scoring
        options, owner = self._continuations()
        prefix = shared_prefix(prompts)  # encoded once, its KV cache reused for every prompt
        logp, ntok = self.lm.score_options(prefix, [p[len(prefix) :] for p in prompts], options)
        if scoring == "mean":
            logp = logp / np.maximum(ntok, 1)
        n_labels = len(self.verbalizers or {})
        owner_arr = np.array(owner)
        out = np.full((len(prompts), n_labels), -np.inf)
        for j in range(n_labels):
            cols = logp[:, owner_arr == j]
            # several verbalizers of one label: the probability of saying any of them
            out[:, j] = cols.max(axis=1) + np.log(np.exp(cols - cols.max(axis=1, keepdims=True)).sum(axis=1))
        if scoring == "calibrated":
            assert self.bias is not None
            out = _log_softmax(out) - self.bias
        return out

    def predict(self, examples: Sequence[Example]) -> list[Prediction]:
        examples, prompts = self._fit_context(examples, self.render(examples))
        labels = list(self.verbalizers or {})
        if not self._generates:
            scores = self.label_scores(prompts)
            out = []
            for ex, prompt, row in zip(examples, prompts, scores):
                best = labels[int(np.argmax(row))]
                out.append(Prediction(ex.id, best, best, {lb: float(s) for lb, s in zip(labels, row)}, prompt))
            return out
        o = self.options
        stop = o.stop if o.stop is not None else (["\n"] if self.kind in ("classification", "qa") else [])
        texts = self.lm.generate(
            prompts,
            max_new_tokens=o.max_new_tokens,
            stop=stop,
            do_sample=o.do_sample,
            temperature=o.temperature,
            top_p=o.top_p,
            seed=0,
        )
        if self.kind == "classification":
            return [
                Prediction(ex.id, t, parse_label(t, self.verbalizers or {}), None, p)
                for ex, t, p in zip(examples, texts, prompts)
            ]
        return [Prediction(ex.id, t.strip(), None, None, p) for ex, t, p in zip(examples, texts, prompts)]

    # -------------------------------------------------------------------------------------- saving

    def save(self, path: Path) -> None:
        spec = {
            "options": self.options.model_dump(mode="json"),
            "verbalizers": self.verbalizers,
            "bias": self.bias.tolist() if self.bias is not None else None,
            "per_input_demos": self.pool_embeddings is not None,
        }
        (path / "prompt.json").write_text(json.dumps(spec, indent=2, ensure_ascii=False))
        with (path / "demonstrations.jsonl").open("w", encoding="utf-8") as fh:
            for d in self.demos:
                fh.write(
                    json.dumps({"id": d.id, "inputs": dict(d.inputs), "target": d.target}, ensure_ascii=False) + "\n"
                )


def _log_softmax(x: np.ndarray) -> np.ndarray:
    m = x.max(axis=1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


class Prompt:
    name: ClassVar[str] = "prompt"
    route: ClassVar[str] = "prompt"
    summary: ClassVar[str] = (
        "Zero-/few-shot prompting of a generative model: templates, demonstrations, "
        "option scoring or generation. No training."
    )
    Options: ClassVar[type[PromptOptions]] = PromptOptions
    task_kinds: ClassVar[frozenset[str]] = frozenset({"classification", "qa", "summarization", "translation"})
    model_kinds: ClassVar[frozenset[str]] = frozenset({"causal", "seq2seq"})

    def check(self, options: PromptOptions, train: Split, ctx: Context) -> None:
        for name, over in (options.variants or {}).items():
            unknown = sorted(set(over) - PART_NAMES)
            if unknown:
                raise MethodError(
                    f"variant {name!r} sets {', '.join(unknown)}, not a prompt part "
                    f"(parts: {', '.join(sorted(PART_NAMES))})",
                    key=f"variants.{name}",
                )
        for name, opts in self.variants(options).items():
            where = f"variants.{name}" if name else ""
            CompiledPrompt.compile(parts_of(opts), ctx.task.input_fields, where)
        if ctx.task.kind == "classification":
            labels = ctx.task.labels or ()
            extra = sorted(set(options.verbalizers or {}) - set(labels))
            if extra:
                raise MethodError(
                    f"verbalizers for unknown labels: {', '.join(extra)} (labels: {', '.join(labels)})",
                    key="verbalizers",
                )
            seen: dict[str, str] = {}
            for label, words in _verbalizers(labels, options.verbalizers).items():
                for w in words:
                    if not w.strip():
                        raise MethodError(f"label {label!r} has an empty verbalizer", key=f"verbalizers.{label}")
                    if w.strip().lower() in seen and seen[w.strip().lower()] != label:
                        raise MethodError(
                            f"labels {seen[w.strip().lower()]!r} and {label!r} share the verbalizer {w!r}",
                            key=f"verbalizers.{label}",
                        )
                    seen[w.strip().lower()] = label
        if options.k > len(train):
            raise MethodError(f"k={options.k} demonstrations, but train has {len(train)} examples", key="k")

    def variants(self, options: PromptOptions) -> dict[str, PromptOptions]:
        if not options.variants:
            return {"": options}
        return {name: options.model_copy(update={**over, "variants": None}) for name, over in options.variants.items()}

    def adapt(self, options: PromptOptions, train: Split, dev: Split | None, ctx: Context) -> PromptAdapted:
        from ..backends.lm import shared_lm

        lm = shared_lm(ctx.model, ctx.resources)
        prompt = CompiledPrompt.compile(parts_of(options), ctx.task.input_fields, "prompt")
        verbalizers = _verbalizers(ctx.task.labels, options.verbalizers) if ctx.task.kind == "classification" else None
        if verbalizers:
            for label, words in verbalizers.items():
                if any(lm.count_tokens(" " + w) == lm.count_tokens("") for w in words):
                    raise MethodError(f"a verbalizer of {label!r} tokenizes to nothing", key=f"verbalizers.{label}")
        adapted = PromptAdapted(lm, prompt, options, ctx.task.kind, verbalizers)
        if options.k:
            per_input = options.select in ("nearest", "mmr")
            if per_input:
                from ..backends.encoder import shared_encoder

                adapted.encoder = shared_encoder(ModelSpec(), ctx.resources)
                adapted.demos = list(train)
                adapted.pool_embeddings = adapted.encoder.embed(
                    train.texts(), ctx.progress, "embedding demonstration pool"
                )
            else:
                chosen = fixed_demos(list(train), options.k, options.select, ctx.seed)
                adapted.demos = order_demos(chosen, "random" if options.demo_order == "random" else "fixed", ctx.seed)
        if verbalizers and options.mode == "score" and options.scoring == "calibrated":
            adapted.bias = _content_free_bias(adapted, ctx)
        return adapted

    def load(self, path: Path, ctx: Context) -> PromptAdapted:
        from ..backends.lm import shared_lm

        spec = json.loads((path / "prompt.json").read_text())
        options = PromptOptions(**spec["options"])
        demos = [
            Example(r["id"], r["inputs"], tuple(r["target"]) if isinstance(r["target"], list) else r["target"])
            for r in map(json.loads, (path / "demonstrations.jsonl").read_text().splitlines())
        ]
        adapted = PromptAdapted(
            shared_lm(ctx.model, ctx.resources),
            CompiledPrompt.compile(parts_of(options), ctx.task.input_fields, "prompt"),
            options,
            ctx.task.kind,
            spec["verbalizers"],
            demos,
        )
        if spec["per_input_demos"]:
            from ..backends.encoder import shared_encoder

            adapted.encoder = shared_encoder(ModelSpec(), ctx.resources)
            adapted.pool_embeddings = adapted.encoder.embed([d.text for d in demos])
        if spec["bias"] is not None:
            adapted.bias = np.array(spec["bias"])
        return adapted


def _content_free_bias(adapted: PromptAdapted, ctx: Context) -> np.ndarray:
    """Mean label log-probabilities for content-free inputs ("N/A", "", "[MASK]"): the prompt's own bias."""
    fields = ctx.task.input_fields
    probes = [Example(f"content-free-{i}", {f: v for f in fields}) for i, v in enumerate(CONTENT_FREE)]
    scores = adapted.label_scores(adapted.render(probes), scoring="sum")
    return _log_softmax(scores).mean(axis=0, keepdims=True)
