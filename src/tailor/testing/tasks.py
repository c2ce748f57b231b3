"""Synthetic tasks a tiny random model can learn from scratch: sentiment classification and a routine QA task.

Both are deterministic in ``seed``, balanced over their labels (answers) and disjoint across splits in their texts.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from .corpus import NEGATIVE, NOUNS, PEOPLE, POSITIVE, TIMES


def _split(name: str, examples: list[Any]) -> Any:
    from ..types import Split

    return Split(name, tuple(examples))  # type: ignore[arg-type]


def _deal(rng: random.Random, make: Any, sizes: Sequence[int], balance: Sequence[Any]) -> list[list[Any]]:
    """Examples from ``make(target)`` dealt into splits of ``sizes``, each split cycling through ``balance`` (so
    every split is as balanced as its size allows), with no input text in two splits (or twice in one)."""
    seen: set[str] = set()
    out: list[list[Any]] = []
    for size in sizes:
        rows = []
        while len(rows) < size:
            target = balance[len(rows) % len(balance)]
            for _ in range(1000):
                inputs, answer = make(target)
                if inputs not in seen:
                    break
            else:  # pragma: no cover - the generators below have far more combinations than any test asks for
                raise ValueError("ran out of distinct synthetic examples; ask for fewer")
            seen.add(inputs)
            rows.append((inputs, answer))
        rng.shuffle(rows)
        out.append(rows)
    return out


def sentiment_task(seed: int = 0, train: int = 400, dev: int = 60, test: int = 100) -> tuple[Any, Any, Any]:
    """A two-class task (``positive``/``negative``) that a tiny random model can learn from scratch.

    Each input is a short sentence built from one of a few templates, with people, nouns and times as
    distractors and exactly one sentiment word (the same word lists as :func:`default_corpus`, so the
    tokenizer knows them), always the last word, deciding the label. Splits are label-balanced, disjoint in
    their texts and deterministic in ``seed``; an always-the-same-label guess scores 0.5.

    Returns:
        ``(train, dev, test)`` :class:`~tailor.types.Split` objects with ``text`` inputs.
    """
    from ..types import Example

    rng = random.Random(seed)
    templates = (
        "the {noun} was {adj}",
        "I thought the {noun} and the {other} were {adj}",
        "{person} said the {noun} {time} was {adj}",
        "{person} found the {noun} {adj}",
        "honestly the {noun} from {time} looked {adj}",
    )

    def make(label: str) -> tuple[str, str]:
        words = POSITIVE if label == "positive" else NEGATIVE
        text = rng.choice(templates).format(
            noun=rng.choice(NOUNS),
            other=rng.choice(NOUNS),
            adj=rng.choice(words),
            person=rng.choice(PEOPLE),
            time=rng.choice(TIMES),
        )
        return text, label

    splits = _deal(rng, make, (train, dev, test), ("positive", "negative"))
    names = ("train", "dev", "test")
    return tuple(  # type: ignore[return-value]
        _split(n, [Example(f"{n}-{i}", {"text": t}, label) for i, (t, label) in enumerate(rows)])
        for n, rows in zip(names, splits)
    )


# What to do with each thing: answers of one to four words, so a generator must learn where each one stops.
ROUTINE_ANSWERS: dict[str, str] = {
    "movie": "watch it",
    "book": "read it slowly",
    "pizza": "eat",
    "song": "play it again tonight",
    "garden": "water the plants",
    "letter": "answer",
    "coffee": "drink it hot",
    "train": "run to the station",
}


def routine_task(seed: int = 0, train: int = 160, dev: int = 24, test: int = 48) -> tuple[Any, Any, Any]:
    """A generation task (``qa``) with a fixed answer per input: ``"Anna has a book on Sunday. What now?"`` →
    ``"read it slowly"`` (see :data:`ROUTINE_ANSWERS`; the person and the time are distractors).

    Answers differ in length, so reaching exact match by greedy generation means the model learned to end
    each answer (EOS) rather than run on. Splits are balanced over the things, disjoint in their texts and
    deterministic in ``seed``.

    Returns:
        ``(train, dev, test)`` :class:`~tailor.types.Split` objects with ``question`` inputs and one reference each.
    """
    from ..types import Example

    rng = random.Random(seed)

    def make(thing: str) -> tuple[str, str]:
        person, time = rng.choice(PEOPLE), rng.choice(TIMES)
        return f"{person} has a {thing} {time}. What now?", ROUTINE_ANSWERS[thing]

    splits = _deal(rng, make, (train, dev, test), tuple(ROUTINE_ANSWERS))
    names = ("train", "dev", "test")
    return tuple(  # type: ignore[return-value]
        _split(n, [Example(f"{n}-{i}", {"question": q}, (a,)) for i, (q, a) in enumerate(rows)])
        for n, rows in zip(names, splits)
    )
