"""Supervised fine-tuning data: each example as prompt tokens and answer tokens, the loss on the answer only.

The prompt is rendered by the prompt route's own code (:class:`tailor.prompting.PromptAdapted`), chat
template included, so a fine-tuned model is asked at inference exactly what it was trained on. The answer is
tokenized the way the model will later meet it:

- classification scored by log-likelihood: as lm-eval splits a (context, continuation) pair, the tokens the
  scorer sums over;
- generation: the prompt on its own (what ``generate`` is given) followed by the answer on its own.

EOS ends every answer, so a fine-tuned generator learns to stop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import MethodError
from ..prompting import answer_text, shorten_to_fit
from ..types import Example

TooLong = Literal["truncate", "skip", "error"]


@dataclass(frozen=True)
class Encoded:
    """One training example as token ids.

    Attributes:
        id: The example's id.
        prompt_ids: What the model reads (causal: the sequence's start; seq2seq: the encoder's input).
        answer_ids: What the model is trained to write, ending with EOS (causal: the sequence's end; seq2seq:
            the decoder's labels).
    """

    id: str
    prompt_ids: tuple[int, ...]
    answer_ids: tuple[int, ...]

    @property
    def length(self) -> int:
        return len(self.prompt_ids) + len(self.answer_ids)

    @property
    def ids(self) -> list[int]:
        """The causal model's whole sequence."""
        return [*self.prompt_ids, *self.answer_ids]


@dataclass
class EncodedSet:
    """A training split as token ids, with every example accounted for.

    Attributes:
        rows: The examples that will be trained on.
        shortened: Ids of examples whose input was shortened to fit ``max_length`` (the answer never is).
        skipped: Ids of examples left out because they were too long (``too_long: skip``).
    """

    rows: list[Encoded]
    shortened: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "examples": len(self.rows),
            "shortened": len(self.shortened),
            "shortened_ids": self.shortened[:20],
            "skipped_too_long": len(self.skipped),
            "skipped_ids": self.skipped[:20],
        }


def _ids_list(ids: Sequence[str], limit: int = 10) -> str:
    return ", ".join(ids[:limit]) + (f" … ({len(ids)} in all)" if len(ids) > limit else "")


def encode_examples(
    predictor: Any,
    examples: Sequence[Example],
    *,
    max_length: int,
    too_long: TooLong = "truncate",
    separate: bool | None = None,
) -> EncodedSet:
    """Token ids of ``examples`` for training through ``predictor`` (a :class:`PromptAdapted`).

    Args:
        predictor: Renders prompts and knows the model, the task kind and the verbalizers.
        examples: Labelled training (or dev) examples.
        max_length: Most tokens per example (prompt and answer).
        too_long: An example over ``max_length``: shorten its longest input field until it fits (``truncate``),
            leave it out (``skip``, counted), or fail (``error``). The answer is never cut.
        separate: Tokenize prompt and answer apart (what generation sees) rather than as lm-eval's pair;
            default: apart unless the predictor scores labels.

    Raises:
        MethodError: An answer empty after tokenization, or one that alone does not fit ``max_length``.
    """
    lm = predictor.lm
    if separate is None:
        separate = predictor.generates
    if separate:  # what generate() writes after the prompt: an encoder-decoder's answer starts the decoder afresh
        space = "" if predictor.use_chat or lm.kind == "seq2seq" else " "
    else:  # exactly the continuation the scorer scores (PromptAdapted.continuations), on any kind of model
        space = "" if predictor.use_chat else " "
    answers = [space + answer_text(ex, predictor.kind, predictor.verbalizers) for ex in examples]
    prompts = predictor.render(examples)
    eos = lm.tokenizer.eos_token_id
    if eos is None:
        raise MethodError(f"the tokenizer of {lm.model.name_or_path} has no EOS token to end answers with")

    def encode(prompts: list[str], answers: list[str]) -> list[tuple[list[int], list[int]]]:
        if separate:
            p_ids, a_ids = lm.encode(prompts), lm.encode(answers, special=False)
        else:
            p_ids, conts = lm.encode_continuations(prompts, [[a] for a in answers])
            a_ids = [c[0] for c in conts]
        return [(p, a if a[-1:] == [eos] else [*a, eos]) for p, a in zip(p_ids, a_ids)]

    pairs = encode(prompts, answers)
    # The tokens in ``pairs`` may hold nothing but the space put in front of the answer, or the whitespace
    # lm-eval moves there from the end of the prompt (a chat template's line break): an answer is empty when
    # its own text, stripped, tokenizes to nothing.
    bare = lm.encode([a.strip() for a in answers], special=False)
    empty = [ex.id for ex, (_, a), b in zip(examples, pairs, bare) if len(a) <= 1 or not b]
    if empty:
        raise MethodError(
            f"{len(empty)} training answers are empty after tokenization: {_ids_list(empty)}",
            key="verbalizers" if predictor.kind == "classification" else "fields.target",
        )
    no_room = [ex.id for ex, (_, a) in zip(examples, pairs) if len(a) >= max_length]
    if no_room:
        raise MethodError(
            f"{len(no_room)} answers alone are {max_length} tokens or longer, so no prompt would fit and the answer "
            f"would have to be cut: {_ids_list(no_room)}; raise max_length",
            key="max_length",
        )
    over = [i for i, (p, a) in enumerate(pairs) if len(p) + len(a) > max_length]
    out = EncodedSet([])
    if over and too_long == "error":
        ids = [examples[i].id for i in over]
        raise MethodError(
            f"{len(over)} examples are longer than max_length={max_length} tokens: {_ids_list(ids)}; raise "
            "max_length, or set too_long: truncate (shortens the input) or skip",
            key="max_length",
        )
    if over and too_long == "truncate":
        for i in over:
            limit = max_length - len(pairs[i][1])
            ex, prompt = shorten_to_fit(examples[i], lambda e: predictor.render([e])[0], lm.count_tokens, limit)
            pairs[i] = encode([prompt], [answers[i]])[0]
            if len(pairs[i][0]) + len(pairs[i][1]) > max_length:
                raise MethodError(
                    f"example {ex.id}: even with its input cut away the prompt does not leave room for the answer "
                    f"within max_length={max_length}; raise max_length or shorten the instruction",
                    key="max_length",
                )
        out.shortened = [examples[i].id for i in over]
    skip = set(over) if too_long == "skip" else set()
    out.skipped = [examples[i].id for i in sorted(skip)]
    out.rows = [
        Encoded(ex.id, tuple(p), tuple(a)) for i, (ex, (p, a)) in enumerate(zip(examples, pairs)) if i not in skip
    ]
    return out
