"""Prompts for generative models, built from named parts: instruction, context, output format,
demonstrations and input — as one completion string or as chat messages.

A :class:`PromptParts` is the whole wording of one prompt variant. Rendering is deterministic:
the same parts, demonstrations and example always give the same text, which is what is stored
beside each prediction and what an exported prompt reproduces.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict

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
        if len(set(parts.order)) != len(parts.order) or "input" not in parts.order:
            raise MethodError(
                f"{where}.order must name each part at most once and include `input`", key=f"{where}.order"
            )
        templates = {
            name: compile_template(getattr(parts, name), f"{where}.{name}", fields)
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
