"""Choosing input-output demonstrations for a prompt: how many, which ones, in what order.

Demonstrations always come from the training split, and an example is never shown as its own
demonstration (same input text). Similarity-based choices (nearest neighbours, MMR) use the
offline sentence encoder, all-MiniLM-L6-v2, whatever model is being prompted.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..types import Example

Selection = Literal["random", "balanced", "nearest", "mmr"]
Order = Literal["fixed", "random", "similar_last"]


@dataclass
class DemoPool:
    """The training examples demonstrations are drawn from, with their embeddings when needed."""

    examples: list[Example]
    embeddings: np.ndarray | None = None  # (n, dim), L2-normalized; needed by nearest / mmr / similar_last

    @property
    def shared(self) -> bool:
        return self.embeddings is None


def fixed_demos(pool: Sequence[Example], k: int, select: Selection, seed: int) -> list[Example]:
    """The same k demonstrations for every input (random, or label-balanced round-robin over classes)."""
    rng = random.Random(seed)
    if select == "random":
        return rng.sample(list(pool), k)
    by_label: dict[str, list[Example]] = defaultdict(list)
    for ex in pool:
        by_label[str(ex.target)].append(ex)
    queues = {label: rng.sample(members, len(members)) for label, members in sorted(by_label.items())}
    out: list[Example] = []
    while len(out) < k:
        for label in sorted(queues):
            if queues[label] and len(out) < k:
                out.append(queues[label].pop())
    rng.shuffle(out)  # round-robin order would put the labels in a fixed, telling pattern
    return out


def similar_demos(
    query: np.ndarray, query_text: str, pool: DemoPool, k: int, select: Selection, mmr_lambda: float
) -> list[int]:
    """Indices of k pool examples for one input: its nearest neighbours, or diverse ones by MMR.

    MMR (maximal marginal relevance) picks, one at a time, the example maximizing
    ``λ·sim(input, x) − (1−λ)·max sim(x, already chosen)``.
    """
    assert pool.embeddings is not None
    sims = pool.embeddings @ query
    for i, ex in enumerate(pool.examples):
        if ex.text == query_text:
            sims[i] = -np.inf  # never demonstrate an input with itself
    if select == "nearest":
        return [int(i) for i in np.argsort(-sims, kind="stable")[:k]]
    chosen: list[int] = []
    candidates = [i for i in np.argsort(-sims, kind="stable")[: max(50, 5 * k)] if np.isfinite(sims[i])]
    while candidates and len(chosen) < k:
        if chosen:
            redundancy = (pool.embeddings[candidates] @ pool.embeddings[chosen].T).max(axis=1)
        else:
            redundancy = np.zeros(len(candidates))
        score = mmr_lambda * sims[candidates] - (1 - mmr_lambda) * redundancy
        best = candidates[int(np.argmax(score))]
        chosen.append(best)
        candidates.remove(best)
    return chosen


def order_demos(
    demos: list[Example], order: Order, seed: int, similarity: Sequence[float] | None = None
) -> list[Example]:
    """Put demonstrations in order: as chosen, shuffled (seeded), or the most similar to the input last."""
    if order == "fixed":
        return demos
    if order == "random":
        out = list(demos)
        random.Random(seed).shuffle(out)
        return out
    assert similarity is not None, "similar_last needs similarities"
    return [demos[i] for i in np.argsort(np.asarray(similarity), kind="stable")]
