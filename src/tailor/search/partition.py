"""Dev cut for a prompt search: the search part's minibatches and the held-out part the final choice is made on."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from ..types import Example


def seeded_rank(seed: int, text: str) -> str:
    """A seeded, stable sort key for ``text``."""
    return hashlib.sha256(f"{seed}:{text}".encode()).hexdigest()


def partition(
    examples: Sequence[Example], holdout: float, minibatch: int, seed: int, stratify: bool
) -> tuple[list[list[int]], list[int]]:
    """Dev cut into the search part's minibatches and the select part (indices into ``examples``): a seeded hash of
    each id orders the examples (within each label when ``stratify``), and the first ``holdout`` share of each
    group goes to select."""
    groups: dict[Any, list[int]] = {}
    for i, ex in enumerate(examples):
        groups.setdefault(ex.label if stratify else None, []).append(i)
    search, select = [], []
    for g in sorted(groups, key=str):
        members = sorted(groups[g], key=lambda i: seeded_rank(seed, examples[i].id))
        n_select = round(holdout * len(members)) if len(members) > 1 else 0
        select += members[:n_select]
        search += members[n_select:]
    search.sort(key=lambda i: seeded_rank(seed + 1, examples[i].id))  # minibatches mix the labels
    select.sort()
    batches = [search[s : s + minibatch] for s in range(0, len(search), minibatch)]
    if len(batches) > 1 and len(batches[-1]) < minibatch // 2:  # a short tail joins the batch before it
        tail = batches.pop()
        batches[-1] += tail
    return batches, select
