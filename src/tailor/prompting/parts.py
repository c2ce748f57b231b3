"""Prompts for generative models, built from named parts: instruction, context, output format,
demonstrations and input — as one completion string or as chat messages.

A :class:`PromptParts` is the whole wording of one prompt variant; :class:`PromptOptions` (the `prompt` method's
options, and the ``prompt:`` of every generative fine-tuning method) *is* a :class:`PromptParts` plus how to
choose demonstrations and how to answer, so each part is declared once. Rendering is deterministic: the same
parts, demonstrations and example always give the same prompt, which is what is stored beside each prediction
and what an exported prompt reproduces.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..backends.protocol import Message, PromptInput
from ..contract import MethodOptions, TaskInfo
from ..errors import MethodError
from ..types import Example, Split
from .demos import Order, Selection
from .jinja import Template, compile_template

Part = Literal["instruction", "context", "output_format", "demonstrations", "input"]
DEFAULT_ORDER: tuple[Part, ...] = ("instruction", "context", "output_format", "demonstrations", "input")
TEMPLATED = ("instruction", "context", "output_format", "input")


class PromptParts(BaseModel):
    """The wording of one prompt variant. Every text part is a Jinja2 template over the example's fields."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    instruction: str = ""
    """What the model is asked to do, e.g. "Classify the sentiment of the review." (Jinja2 over the example's
    fields)."""
    context: str = ""
    """Background the model may need (a policy, a glossary, the passage for QA: `{{ context }}`)."""
    output_format: str = ""
    """How the answer must look, e.g. "Answer with one word: positive or negative."."""
    input: str = "{{ text }}"
    """How one example's input is shown (also used for each demonstration)."""
    answer_prefix: str = "Answer:"
    """Completion prompts only: the cue after the input that the answer follows."""
    order: tuple[Part, ...] = DEFAULT_ORDER
    """The order of the parts (instruction, context, output_format, demonstrations, input); leave one out to drop
    it."""
    chat: Literal["auto", "chat", "completion"] = "auto"
    """Send chat messages (the model's chat template; `auto`: when the model takes chat) or one completion
    string."""


PART_NAMES = frozenset(PromptParts.model_fields)


class PromptOptions(PromptParts, MethodOptions):
    """The prompt parts, how demonstrations are chosen, and how the model answers."""

    variants: dict[str, dict[str, Any]] | None = None
    """Named alternatives overriding any of the parts above (wording, format, order); each is scored on dev and test."""
    k: int = Field(0, ge=0)
    """Demonstrations in the prompt (0 = zero-shot)."""
    select: Selection = "balanced"
    """How demonstrations are chosen from train: random, label-balanced, nearest neighbours of the input, or
    diverse nearest neighbours (MMR), by all-MiniLM-L6-v2 embeddings."""
    demo_order: Order = "fixed"
    """Demonstration order: as chosen, shuffled (seeded), or the most similar to the input last."""
    mmr_lambda: float = Field(0.5, ge=0, le=1)
    """MMR trade-off between similarity to the input (1) and diversity (0)."""
    mode: Literal["auto", "score", "first-token", "choice", "generate"] = "auto"
    """Classification: `score` each label's verbalizers by log-likelihood (full option scoring), `first-token`
    (compare the log-probs of each verbalizer's first token among the answer's top-k: served chat models),
    `choice` (the server constrains the answer to the labels' words), or `generate` (the model writes the label,
    parsed; the valid-output rate measures control). `auto`: the first of these the model's backend can do."""
    scoring: Literal["sum", "mean", "calibrated"] = "sum"
    """Option scores: summed log-probability, per-token mean, or calibrated against content-free inputs."""
    verbalizers: dict[str, str | list[str]] | None = None
    """Words for each label (several allowed); default: the label itself."""
    max_new_tokens: int = Field(32, ge=1, le=4096)
    """Generation: the most tokens to write."""
    stop: list[str] | None = None
    """Generation: cut the output at the first of these; default: a line break (classification, QA), none otherwise."""
    do_sample: bool = False
    """Generation: sample instead of greedy decoding."""
    temperature: float = Field(1.0, gt=0)
    """Sampling temperature."""
    top_p: float = Field(1.0, gt=0, le=1)
    """Nucleus sampling mass."""
    truncate: bool = False
    """When a prompt is longer than the model's context, shorten the example's input instead of failing."""


def parts_of(options: PromptParts) -> PromptParts:
    """The prompt's wording alone, out of a method's options."""
    return PromptParts(**options.model_dump(include=set(PART_NAMES)))


def label_words(
    labels: Sequence[str], given: dict[str, str | list[str]] | None, default: Callable[[str], str] = str
) -> dict[str, list[str]]:
    """The words standing for each label: the given ones (one or several), else ``default(label)``.

    Args:
        labels: The task's labels, in order.
        given: Words by label from the task file (verbalizers, label descriptions); labels left out get the default.
        default: The word of a label nobody gave words for; default: the label itself.
    """
    given = given or {}
    return {
        label: ([words] if isinstance(words, str) else list(words)) if (words := given.get(label)) else [default(label)]
        for label in labels
    }


def answer_text(ex: Example, kind: str, verbalizers: dict[str, list[str]] | None) -> str:
    """What a model should answer for ``ex``: the label's first verbalizer (the label itself without
    verbalizers), or the first reference text. Demonstrations show it; fine-tuning trains on it."""
    if kind == "classification":
        return verbalizers[ex.label][0] if verbalizers else ex.label
    return ex.target if isinstance(ex.target, str) else (ex.target or ("",))[0]


@dataclass(frozen=True)
class CompiledPrompt:
    """Prompt parts with their templates compiled and checked against the data's fields."""

    parts: PromptParts
    templates: dict[str, Template]

    @classmethod
    def compile(cls, parts: PromptParts, fields: Sequence[str], where: str) -> CompiledPrompt:
        """Check ``parts`` against the data's ``fields``; errors name the part as ``where.part``."""
        at = f"{where}." if where else ""
        if len(set(parts.order)) != len(parts.order) or "input" not in parts.order:
            raise MethodError(f"{at}order must name each part at most once and include `input`", key=f"{at}order")
        templates = {
            name: compile_template(getattr(parts, name), f"{at}{name}", fields)
            for name in TEMPLATED
            if getattr(parts, name)
        }
        return cls(parts, templates)

    def _text(self, name: str, ex: Example) -> str:
        t = self.templates.get(name)
        return t.render_example(ex).strip() if t else ""

    def messages(self, ex: Example, demos: Sequence[tuple[Example, str]]) -> list[Message]:
        """Chat messages: parts before the input go to the system turn, demonstrations become
        user/assistant turns, and the input (with any parts after it) is the last user turn."""
        system, after = [], []
        seen_input = False
        turns: list[Message] = []
        for part in self.parts.order:
            if part == "input":
                seen_input = True
            elif part == "demonstrations":
                for demo, answer in demos:
                    turns += [
                        {"role": "user", "content": self._text("input", demo)},
                        {"role": "assistant", "content": answer},
                    ]
            elif text := self._text(part, ex):
                (after if seen_input else system).append(text)
        user = "\n\n".join([self._text("input", ex), *after])
        head = [{"role": "system", "content": "\n\n".join(system)}] if system else []
        return [*head, *turns, {"role": "user", "content": user}]

    def completion(self, ex: Example, demos: Sequence[tuple[Example, str]]) -> str:
        """One string: the parts in order, blank lines between them, ending with the answer cue."""
        cue = self.parts.answer_prefix
        blocks = []
        for part in self.parts.order:
            if part == "demonstrations":
                blocks += [f"{self._text('input', d)}\n{cue} {a}".strip() for d, a in demos]
            elif part == "input":
                blocks.append(f"{self._text('input', ex)}\n{cue}".rstrip())
            elif text := self._text(part, ex):
                blocks.append(text)
        return "\n\n".join(blocks)

    def build(self, ex: Example, demos: Sequence[tuple[Example, str]], chat: bool) -> PromptInput:
        """The prompt for ``ex``: chat messages when ``chat``, else the completion string."""
        return self.messages(ex, demos) if chat else self.completion(ex, demos)


def prompt_variants(options: PromptOptions) -> dict[str, PromptOptions]:
    """The options of each named variant (its parts over the shared ones), or ``{"": options}`` without variants."""
    if not options.variants:
        return {"": options}
    return {name: options.model_copy(update={**over, "variants": None}) for name, over in options.variants.items()}


def check_prompt_options(options: PromptOptions, train: Split, task: TaskInfo) -> None:
    """Refuse, naming the key, prompt options that can't work with the task, whatever the model: variants
    setting what is not a part, templates naming fields the data lacks or that fail to render (the sandbox's limits,
    an error in the template: tried on the first training example, so before any model loads), bad verbalizers,
    more demonstrations than training examples."""
    for name, over in (options.variants or {}).items():
        unknown = sorted(set(over) - PART_NAMES)
        if unknown:
            raise MethodError(
                f"variant {name!r} sets {', '.join(unknown)}, not a prompt part "
                f"(parts: {', '.join(sorted(PART_NAMES))})",
                key=f"variants.{name}",
            )
    for name, opts in prompt_variants(options).items():
        compiled = CompiledPrompt.compile(parts_of(opts), task.input_fields, f"variants.{name}" if name else "")
        if len(train):
            for template in compiled.templates.values():
                template.render_example(train.examples[0])
    if task.kind == "classification":
        labels = task.labels or ()
        extra = sorted(set(options.verbalizers or {}) - set(labels))
        if extra:
            raise MethodError(
                f"verbalizers for unknown labels: {', '.join(extra)} (labels: {', '.join(labels)})",
                key="verbalizers",
            )
        seen: dict[str, str] = {}
        for label, words in label_words(labels, options.verbalizers).items():
            for w in words:
                word = w.strip().lower()
                if not word:
                    raise MethodError(f"label {label!r} has an empty verbalizer", key=f"verbalizers.{label}")
                if seen.get(word, label) != label:
                    raise MethodError(
                        f"labels {seen[word]!r} and {label!r} share the verbalizer {w!r}", key=f"verbalizers.{label}"
                    )
                seen[word] = label
    if options.k > len(train):
        raise MethodError(f"k={options.k} demonstrations, but train has {len(train)} examples", key="k")


def resolved_mode(mode: str, caps: Any) -> str:
    """The classification path ``mode`` means on a backend with capabilities ``caps``: itself, or for ``auto`` the
    best one the backend offers (full option scoring, first-token scoring, constrained choice, generation)."""
    if mode != "auto":
        return mode
    if caps.score_continuations:
        return "score"
    if caps.top_logprobs:
        return "first-token"
    if caps.constrained_choice:
        return "choice"
    return "generate"
