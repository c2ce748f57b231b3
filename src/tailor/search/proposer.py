"""Instructions proposed by a model: a proposer (any generative backend, served ones included) is shown the task —
its name, kind and labels, a few training examples with their answers, and, when there is one, the instructions
scored so far with their scores — and asked for a new instruction (in the spirit of OPRO, Yang et al. 2023, and
MIPROv2's grounded proposals).

Proposals are plain text used as instructions, which are Jinja2 templates: text with braces is dropped rather than
let a model's output be read as template code. Each proposal costs what its call cost; the search counts it against
its budget.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Any

from ..backends.models import error_key
from ..backends.protocol import GenerationSettings, PromptInput
from ..config.model import ModelSpec
from ..costs.usage import Usage, total
from ..errors import MethodError, TailorError
from ..types import Example

ASK = """You write instructions for a language model.
Task: {task} ({kind}).{labels}
Inputs and their correct answers:
{examples}{history}
Write one new instruction, a single sentence, that tells the model what to do with such an input to give the correct
answer. Reply with the instruction only."""


def _answer(ex: Example) -> str:
    return ex.label if isinstance(ex.target, str) else (ex.target or ("",))[0]


def meta_prompt(
    task: str,
    kind: str,
    labels: Sequence[str] | None,
    examples: Sequence[Example],
    history: Sequence[tuple[str, float]],
) -> str:
    """What the proposer is asked."""
    shown = "\n".join(f"Input: {ex.text[:300]}\nAnswer: {_answer(ex)}" for ex in examples)
    scored = ""
    if history:
        best = sorted(history, key=lambda h: -h[1])[:8]
        scored = (
            "\nInstructions tried so far, with their accuracy on held-out examples (higher is better):\n"
            + "\n".join(f"{score:.2f}: {text}" for text, score in best)
        )
    labels_line = f" Answers are one of: {', '.join(labels)}." if labels else ""
    return ASK.format(task=task, kind=kind, labels=labels_line, examples=shown, history=scored)


def clean(text: str) -> str | None:
    """A proposal as an instruction: its first non-empty line, without quotes or a leading "Instruction:"; None when
    nothing usable is left (empty, too long, or holding template braces)."""
    line = next((ln.strip() for ln in text.strip().splitlines() if ln.strip()), "")
    line = re.sub(r"^(new\s+)?instruction\s*:\s*", "", line, flags=re.IGNORECASE).strip().strip("\"'`").strip()
    if not line or len(line) > 400 or "{" in line or "}" in line or "%" in line:
        return None
    return line


def check_proposer(models: Any, spec: ModelSpec) -> None:
    """The proposer's model exists and is generative, read from its configuration (nothing loads).

    Raises:
        MethodError: at the proposer's own key (``proposer.name``, ``proposer.trust_remote_code``), not the task's
            ``model``: the proposer is a model of its own.
    """
    try:
        kind = models.kind(spec)
    except TailorError as exc:
        key, message = error_key(exc)
        raise MethodError(message, key=f"proposer.{key}") from None
    if kind == "encoder":
        raise MethodError(f"the proposer must be a generative model; {spec.name} is an encoder", key="proposer.name")


def propose(
    backend: Any,
    task: str,
    kind: str,
    labels: Sequence[str] | None,
    train: Sequence[Example],
    n: int,
    seed: int,
    history: Sequence[tuple[str, float]] = (),
    shots: int = 4,
) -> tuple[list[str], Usage]:
    """``n`` proposals (fewer when some are unusable or alike), each shown its own seeded draw of ``shots`` training
    examples; and what asking cost."""
    rng = random.Random(f"propose:{seed}")
    prompts: list[PromptInput] = []
    for _ in range(n):
        shown = rng.sample(list(train), min(shots, len(train)))
        text = meta_prompt(task, kind, labels, shown, history)
        prompts.append([{"role": "user", "content": text}] if backend.capabilities.chat else text)
    settings = GenerationSettings(max_new_tokens=80, stop=("\n\n",), do_sample=True, temperature=0.9, seed=seed)
    answers = backend.generate(prompts, settings)
    texts = [t for a in answers if a.error is None and (t := clean(a.text)) is not None]
    return list(dict.fromkeys(texts)), total(a.usage for a in answers)
