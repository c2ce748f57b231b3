"""Micro-batches: packed rows for causal models, padded rows where packing can't apply.

Packing lays several short examples end to end in one row, so no compute is spent on padding. They must not
see each other: every example's position ids restart at 0, and the model is called without an attention mask
and without a cache, which is what makes transformers build a block-diagonal causal mask from the position
ids. Leave the position ids out and the row is one long sequence whose later examples attend to the earlier
ones — the packing leak :func:`tailor.tuning.audits.audit_packing` is there to catch.

Only the positions that predict answer tokens are kept (``predict_at``), so the output layer — for a small
model with a large vocabulary, the biggest matmul of all — runs on a handful of tokens per example instead of
every token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .sft import Encoded


@dataclass
class Batch:
    """One micro-batch.

    Attributes:
        input_ids: ``(rows, width)`` token ids.
        position_ids: Per-example positions (packed rows), or None for padded rows.
        attention_mask: 1 for real tokens in padded rows; None for packed rows.
        predict_at: Flat indices into ``rows * width`` of the positions whose output predicts a target (causal).
        targets: The target token ids (causal), or the ``(rows, answer_width)`` labels with -100 (seq2seq), or the
            class ids (sequence classification).
        tokens: Real (non-padding) tokens in the batch.
        examples: Examples in the batch.
    """

    input_ids: Any
    position_ids: Any
    attention_mask: Any
    predict_at: Any
    targets: Any
    tokens: int
    examples: int

    @property
    def n_targets(self) -> int:
        return int((self.targets != -100).sum()) if self.targets.dim() > 1 else int(self.targets.numel())


def pack(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Indices grouped into rows of at most ``capacity`` tokens: first fit, longest first."""
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        for r, free in enumerate(room):
            if lengths[i] <= free:
                rows[r].append(i)
                room[r] -= lengths[i]
                break
        else:
            rows.append([i])
            room.append(capacity - lengths[i])
    return rows


def packed_batch(examples: Sequence[Encoded], capacity: int, pad_id: int, *, position_ids: bool = True) -> Batch:
    """Causal examples packed into rows of at most ``capacity`` tokens, each with its own positions.

    ``position_ids=False`` leaves positions out — only for the audit's test, which plants the leak on purpose.
    """
    import torch

    rows = pack([ex.length for ex in examples], capacity)
    width = max(sum(examples[i].length for i in row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    pos = torch.zeros((len(rows), width), dtype=torch.long)
    predict_at: list[int] = []
    targets: list[int] = []
    for r, row in enumerate(rows):
        at = 0
        for i in row:
            ex = examples[i]
            ids[r, at : at + ex.length] = torch.tensor(ex.ids, dtype=torch.long)
            pos[r, at : at + ex.length] = torch.arange(ex.length)
            # answer token t sits at at + len(prompt) + t and is predicted one position earlier
            start = r * width + at + len(ex.prompt_ids) - 1
            predict_at += range(start, start + len(ex.answer_ids))
            targets += ex.answer_ids
            at += ex.length
        # padding after the last example is a sequence of its own (positions restart), so nothing attends to it
        pos[r, at:] = torch.arange(width - at)
    return Batch(
        input_ids=ids,
        position_ids=pos if position_ids else None,
        attention_mask=None,
        predict_at=torch.tensor(predict_at, dtype=torch.long),
        targets=torch.tensor(targets, dtype=torch.long),
        tokens=sum(ex.length for ex in examples),
        examples=len(examples),
    )


def padded_batch(examples: Sequence[Encoded], pad_id: int, *, seq2seq: bool = False) -> Batch:
    """Examples right-padded to the longest, one per row: for soft prompts (their virtual tokens belong to one
    sequence each) and encoder-decoder models.

    Causal rows hold prompt and answer, with targets as labels aligned to ``input_ids`` (-100 off the answer);
    seq2seq rows hold the prompt, with the answer as the decoder's labels.
    """
    import torch

    seqs = [list(ex.prompt_ids) if seq2seq else ex.ids for ex in examples]
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for r, s in enumerate(seqs):
        ids[r, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[r, : len(s)] = 1
    if seq2seq:
        answer_width = max(len(ex.answer_ids) for ex in examples)
        labels = torch.full((len(seqs), answer_width), -100, dtype=torch.long)
        for r, ex in enumerate(examples):
            labels[r, : len(ex.answer_ids)] = torch.tensor(ex.answer_ids, dtype=torch.long)
    else:
        labels = torch.full((len(seqs), width), -100, dtype=torch.long)
        for r, ex in enumerate(examples):
            labels[r, len(ex.prompt_ids) : ex.length] = torch.tensor(ex.answer_ids, dtype=torch.long)
    tokens = sum(len(s) for s in seqs) + (sum(len(ex.answer_ids) for ex in examples) if seq2seq else 0)
    return Batch(ids, None, mask, None, labels, tokens, len(examples))


def class_batch(examples: Sequence[Encoded], classes: Sequence[int], pad_id: int) -> Batch:
    """Prompts right-padded for a sequence-classification head, with each example's class id as its target."""
    import torch

    batch = padded_batch([Encoded(ex.id, ex.prompt_ids, ()) for ex in examples], pad_id)
    batch.targets = torch.tensor(list(classes), dtype=torch.long)
    return batch
