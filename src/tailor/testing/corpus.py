"""Generated English-ish text: the word lists the synthetic tasks share, and the corpus tokenizers are trained on.

The sentiment words, nouns, people and times of :func:`default_corpus` are the ones :mod:`.tasks` builds its
examples from, so a tiny model's tokenizer knows every word of the synthetic tasks.
"""

from __future__ import annotations

import random

# The words a sentiment decides on, and the distractors around them.
POSITIVE = "great good wonderful excellent lovely delightful brilliant amazing superb charming fun moving".split()
NEGATIVE = "terrible bad awful boring dull poor dreadful weak messy painful bland tedious".split()
NOUNS = (
    "movie film story book meal dinner song album game show team city park house garden weather trip hotel "
    "teacher doctor river market school train coffee pizza garden letter question answer plan idea"
).split()
PEOPLE = "Anna Ben Carla David Emma Farid Grace Hugo Ines Jonas Kemal Lena Maya Noah Omar Priya".split()
VERBS = "liked saw watched read cooked visited found wrote played bought opened painted cleaned sold".split()
TIMES = ("today", "yesterday", "last week", "this morning", "at night", "on Sunday", "after lunch", "in spring")
_QUESTIONS = ("What", "Where", "Why", "When", "How", "Who")
_REPLIES = (
    "Yes, I think so.",
    "No, not really.",
    "I am not sure.",
    "Sure, let me check.",
    "Thank you!",
    "Maybe later.",
)


def default_corpus(seed: int = 0, n: int = 3000) -> list[str]:
    """``n`` short generated lines: reviews with sentiment words, statements, questions and dialogue."""
    rng = random.Random(seed)
    syllables = "ka lo mi ren to sha vel dor ni qua bex tur il po zan ge fu ry om sel".split()
    # Invented words (one per line) give the BPE trainer enough distinct pairs to reach larger vocabularies.
    rare = ["".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))) for _ in range(n)]

    def adj() -> tuple[str, str]:
        label = rng.choice(("positive", "negative"))
        return rng.choice(POSITIVE if label == "positive" else NEGATIVE), label

    lines = []
    for word in rare:
        noun, person = rng.choice(NOUNS), rng.choice(PEOPLE)
        kind = rng.randrange(6)
        if kind == 0:
            a, label = adj()
            lines.append(f"Review: The {noun} from {word.title()} was {a}. Sentiment: {label}")
        elif kind == 1:
            a, _ = adj()
            lines.append(f"{person} {rng.choice(VERBS)} the {a} {noun} {rng.choice(TIMES)} with {word}.")
        elif kind == 2:
            lines.append(f"{rng.choice(_QUESTIONS)} did {person} see the {noun} in {word.title()}?")
        elif kind == 3:
            a, _ = adj()
            lines.append(f"User: Is the {word} {noun} {a}?\nAssistant: {rng.choice(_REPLIES)}")
        elif kind == 4:
            lines.append(f"The {word} of {person} is {rng.randint(2, 99)} {noun}s, not {rng.randint(100, 999)}.")
        else:
            a, label = adj()
            lines.append(f'"It was {a}," said {person} {word}. "A {a} {noun}!"\n\nThat sounds {label}.')
    return lines
