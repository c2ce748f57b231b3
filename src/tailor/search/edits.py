"""Instruction edits that need no other model: phrase-level delete, swap, add and paraphrase.

In the spirit of GrIPS (Prasad et al. 2022, "Gradient-free, edit-based instruction search"): an instruction is cut
into phrases, and an edit deletes one, swaps two, adds one (from a bank, or one deleted earlier) or paraphrases one
by substituting words from a small bank. GrIPS cuts phrases with a constituency parser; we cut at punctuation and
at the conjunctions between clauses, which needs nothing but the text and is enough for prompts of one or two
sentences. A phrase holding a template placeholder (``{{ text }}``) is never deleted or paraphrased: the input
must stay in the prompt.

Everything is seeded: the same seeds, bank and seed number always give the same pool, in the same order.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence

# Word-level paraphrases for instruction words (both directions are used).
SYNONYMS: dict[str, tuple[str, ...]] = {
    "classify": ("categorize", "label", "sort"),
    "decide": ("determine", "judge", "tell"),
    "text": ("passage", "snippet", "input"),
    "review": ("opinion", "critique", "comment"),
    "question": ("query", "request"),
    "answer": ("reply", "response"),
    "topic": ("subject", "theme", "category"),
    "about": ("on", "regarding", "concerning"),
    "sentiment": ("feeling", "tone", "attitude"),
    "overall": ("in short", "all in all", "in summary"),
    "news": ("report", "article", "story"),
    "following": ("given", "next"),
    "is": ("seems", "was"),
    "write": ("give", "output"),
}

# Phrases an edit may add, by task kind ("any" is added to every kind's bank).
PHRASE_BANK: dict[str, tuple[str, ...]] = {
    "any": (
        "Read carefully.",
        "In short,",
        "Overall,",
        "This text is about",
        "The answer is",
        "Think about the main point.",
    ),
    "classification": (
        "Classify the text.",
        "The category is",
        "Which category fits best?",
        "The label is",
        "Topic:",
        "Sentiment:",
    ),
    "qa": ("Answer the question from the passage.", "Answer briefly."),
    "summarization": ("Summarize the text.", "In one sentence:"),
    "translation": ("Translate the text.", "Keep the meaning exact."),
}

PLACEHOLDER = re.compile(r"\{\{.*?\}\}|\{%.*?%\}")
# A cut after punctuation followed by a space, around a (hidden) placeholder, or before a conjunction joining clauses.
_CUT = re.compile(r"(?<=[.,;:!?])\s+|(?<=\x00)\s+|(?<=\x00\")\s+|\s+(?=\"?\x00\d)|\s+(?=\b(?:and|or|but|then)\b)")


def phrases(text: str) -> list[str]:
    """``text`` cut into phrases; joining them with single spaces gives ``text`` back up to whitespace. A template
    placeholder is never cut."""
    protected: list[str] = []

    def hide(m: re.Match[str]) -> str:
        protected.append(m.group(0))
        return f"\x00{len(protected) - 1}\x00"

    hidden = PLACEHOLDER.sub(hide, text.strip())
    parts = [p for p in _CUT.split(hidden) if p and p.strip()]
    return [re.sub(r"\x00(\d+)\x00", lambda m: protected[int(m.group(1))], p.strip()) for p in parts]


def _join(parts: Sequence[str]) -> str:
    return " ".join(p for p in parts if p).strip()


def _locked(phrase: str) -> bool:
    return bool(PLACEHOLDER.search(phrase))


def _paraphrase(phrase: str, rng: random.Random) -> str | None:
    """``phrase`` with one bank word swapped for a synonym (case kept), or None when no word is in the bank."""
    words = list(re.finditer(r"[A-Za-z]+", phrase))
    options = []
    for m in words:
        low = m.group(0).lower()
        alternatives = list(SYNONYMS.get(low, ())) + [k for k, vs in SYNONYMS.items() if low in vs]
        if alternatives:
            options.append((m, alternatives))
    if not options:
        return None
    m, alternatives = rng.choice(options)
    new = rng.choice(alternatives)
    if m.group(0)[0].isupper():
        new = new[0].upper() + new[1:]
    return phrase[: m.start()] + new + phrase[m.end() :]


def edit(text: str, rng: random.Random, bank: Sequence[str], deleted: list[str] | None = None) -> tuple[str, str]:
    """One random edit of ``text``: (the edited text, what was done, e.g. ``"del 'Overall,'"``). Returns ``text``
    itself with ``"none"`` when no edit applies. A deleted phrase is appended to ``deleted`` (GrIPS adds such
    phrases back later)."""
    parts = phrases(text)
    free = [i for i, p in enumerate(parts) if not _locked(p)]
    ops = ["add"]
    if free and len(parts) > 1:
        ops.append("del")
    if len(parts) > 1:
        ops.append("swap")
    if free:
        ops.append("par")
    for _ in range(len(ops) * 2):
        op = rng.choice(ops)
        if op == "del":
            i = rng.choice(free)
            if deleted is not None:
                deleted.append(parts[i])
            return _join(parts[:i] + parts[i + 1 :]), f"del {parts[i]!r}"
        if op == "swap":
            i, j = rng.sample(range(len(parts)), 2)
            parts[i], parts[j] = parts[j], parts[i]
            return _join(parts), f"swap {parts[j]!r} and {parts[i]!r}"
        if op == "par":
            i = rng.choice(free)
            new = _paraphrase(parts[i], rng)
            if new is not None:
                return _join(parts[:i] + [new] + parts[i + 1 :]), f"par {parts[i]!r} -> {new!r}"
        if op == "add":
            pool = list(bank) + list(deleted or [])
            if pool:
                phrase = rng.choice(pool)
                at = rng.randint(0, len(parts))
                return _join(parts[:at] + [phrase] + parts[at:]), f"add {phrase!r}"
    return text, "none"


def edited_pool(
    seeds: Sequence[str],
    size: int,
    seed: int,
    bank: Sequence[str],
    keep: Callable[[str], bool] = lambda _: True,
    depth: int = 3,
) -> list[tuple[str, str]]:
    """``seeds`` then up to ``size`` distinct edited texts, each as (text, its edit history): a seeded random walk in
    which each new text is one edit of a text already in the pool at most ``depth`` edits from a seed. ``keep``
    rejects texts that can't be used (a template that no longer renders, say)."""
    rng = random.Random(f"edits:{seed}")
    pool: list[tuple[str, str]] = []
    level: dict[str, int] = {}
    for s in seeds:
        if s not in level:
            pool.append((s, "given"))
            level[s] = 0
    deleted: list[str] = []
    made = 0
    for _ in range(50 * (size + 1)):  # edits that give nothing new are retried, within reason
        if made >= size:
            break
        parents = [(t, how) for t, how in pool if level[t] < depth]
        if not parents:
            break
        parent, history = rng.choice(parents)
        text, how = edit(parent, rng, bank, deleted)
        if how == "none" or text in level or not text.strip() or not keep(text):
            continue
        level[text] = level[parent] + 1
        made += 1
        pool.append((text, how if history == "given" else f"{history}; {how}"))
    return pool
