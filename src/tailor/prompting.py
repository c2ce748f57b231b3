"""Prompts for generative models, built from named parts: instruction, context, output format,
demonstrations and input — as one completion string or as chat messages.

A :class:`PromptParts` is the whole wording of one prompt variant. Rendering is deterministic:
the same parts, demonstrations and example always give the same text, which is what is stored
beside each prediction and what an exported prompt reproduces.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .contract import MethodOptions
from .demos import Order, Selection
from .errors import MethodError
from .prompts import Template, compile_template
from .types import Example

Part = Literal["instruction", "context", "output_format", "demonstrations", "input"]
DEFAULT_ORDER: tuple[Part, ...] = ("instruction", "context", "output_format", "demonstrations", "input")
TEMPLATED = ("instruction", "context", "output_format", "input")


class PromptParts(BaseModel):
    """The wording of one prompt variant. Every text part is a Jinja2 template over the example's fields."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    instruction: str = ""
    """What the model is asked to do, e.g. "Classify the sentiment of the review."."""
    context: str = ""
    """Background the model may need (a policy, a glossary, the passage for QA: `{{ context }}`)."""
    output_format: str = ""
    """How the answer must look, e.g. "Answer with one word: positive or negative."."""
    input: str = "{{ text }}"
    """How one example's input is shown (also used for each demonstration)."""
    answer_prefix: str = "Answer:"
    """Completion prompts only: the cue after the input that the answer follows."""
    order: tuple[Part, ...] = DEFAULT_ORDER
    """The order of the parts; leave one out to drop it."""
    chat: Literal["auto", "chat", "completion"] = "auto"
    """Render as chat messages through the model's chat template (`auto`: when it has one) or as one string."""


PART_NAMES = set(PromptParts.model_fields)


@dataclass(frozen=True)
class CompiledPrompt:
    parts: PromptParts
    templates: dict[str, Template]

    @classmethod
    def compile(cls, parts: PromptParts, fields: Sequence[str], where: str) -> CompiledPrompt:
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

    def messages(self, ex: Example, demos: Sequence[tuple[Example, str]]) -> list[dict[str, str]]:
        """Chat messages: parts before the input go to the system turn, demonstrations become
        user/assistant turns, and the input (with any parts after it) is the last user turn."""
        system, after = [], []
        seen_input = False
        turns: list[dict[str, str]] = []
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

    def render(
        self,
        ex: Example,
        demos: Sequence[tuple[Example, str]],
        use_chat: bool,
        chat_renderer: Callable[[list[dict[str, str]]], str],
    ) -> str:
        return chat_renderer(self.messages(ex, demos)) if use_chat else self.completion(ex, demos)


def shared_prefix(prompts: Sequence[str]) -> str:
    """The longest common prefix of the prompts, cut after its last line break.

    Cutting at a line break keeps the prefix a clean tokenization boundary in practice; the model
    backend still checks that the prefix's tokens are a prefix of each prompt's tokens.
    """
    if len(prompts) < 2:
        return ""
    first, last = min(prompts), max(prompts)
    n = 0
    while n < min(len(first), len(last)) and first[n] == last[n]:
        n += 1
    cut = first.rfind("\n", 0, n)
    return first[: cut + 1] if cut >= 0 else ""


class PromptOptions(MethodOptions):
    instruction: str = ""
    """What the model is asked to do (Jinja2 over the example's fields)."""
    context: str = ""
    """Background the model may need, e.g. `{{ context }}` for QA."""
    output_format: str = ""
    """How the answer must look."""
    input: str = "{{ text }}"
    """How an example's input is shown (for demonstrations too)."""
    answer_prefix: str = "Answer:"
    """Completion prompts: the cue the answer follows."""
    order: tuple[str, ...] = ("instruction", "context", "output_format", "demonstrations", "input")
    """Order of the parts (instruction, context, output_format, demonstrations, input)."""
    chat: Literal["auto", "chat", "completion"] = "auto"
    """Use the model's chat template (`auto`: when it has one) or a plain completion string."""
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
    mode: Literal["score", "generate"] = "score"
    """Classification: score each label's verbalizer by log-likelihood, or let the model write the label."""
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


def parts_of(o: PromptOptions) -> PromptParts:
    """The prompt's wording out of a method's options (the fields the two share)."""
    return PromptParts(**o.model_dump(include=PART_NAMES))


def answer_text(ex: Example, kind: str, verbalizers: dict[str, list[str]] | None) -> str:
    """What a model should answer for ``ex``: the label's first verbalizer (the label itself without
    verbalizers), or the first reference text. Demonstrations show it; fine-tuning trains on it."""
    if kind == "classification":
        return verbalizers[ex.label][0] if verbalizers else ex.label
    return ex.target if isinstance(ex.target, str) else (ex.target or ("",))[0]
