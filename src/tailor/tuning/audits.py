"""Checks that fine-tuning did what it claims, run on every fine-tuning and written into the run record.

Each guards against a bug that trains without complaint and quietly yields a worse model:

- the answer mask: the loss is on answer tokens only, every answer ends with EOS, and no example lost its
  answer to truncation (which would train it on nothing — a silent zero loss);
- the template: the tokens trained on are the tokens the model is given at inference (same chat template,
  same rendering, same tokenization);
- packing: the loss of packed rows equals the loss of the same examples run one by one (else examples attend
  to each other across the row);
- the merge: a LoRA/IA3 adapter merged into the base weights (as it predicts after training) predicts what the
  adapter did.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import MethodError
from ..types import Example
from .packing import pack, packed_batch
from .sft import Encoded


class AuditError(MethodError):
    """An audit found fine-tuning about to train (or having trained) something other than intended."""


def audit_answer_mask(rows: Sequence[Encoded], eos_id: int) -> dict[str, Any]:
    """The fraction of tokens trained on; fails on an example with no answer tokens or without a final EOS."""
    empty = [r.id for r in rows if not r.answer_ids or r.answer_ids == (eos_id,)]
    if empty:
        raise AuditError(
            f"answer-mask audit: {len(empty)} examples have no answer tokens left to train on (truncated away?): "
            + ", ".join(empty[:10])
        )
    no_eos = [r.id for r in rows if r.answer_ids[-1] != eos_id]
    if no_eos:
        raise AuditError(f"answer-mask audit: {len(no_eos)} answers do not end with EOS: " + ", ".join(no_eos[:10]))
    total = sum(r.length for r in rows)
    trained = sum(len(r.answer_ids) for r in rows)
    return {
        "examples": len(rows),
        "tokens": total,
        "answer_tokens": trained,
        "fraction_trained": trained / total,
        "all_end_with_eos": True,
    }


def audit_template(predictor: Any, examples: Sequence[Example], rows: Sequence[Encoded]) -> dict[str, Any]:
    """Encode ``examples`` the way inference does — the scorer's (context, option) pairs, or the generator's
    prompt — and compare with the training ``rows`` (matched by id): prompt tokens, and answer tokens before EOS."""
    lm = predictor.lm
    by_id = {r.id: r for r in rows}
    examples = [ex for ex in examples if ex.id in by_id]
    prompts = predictor.render(examples)
    if predictor.generates:
        contexts, answers = lm.encode(prompts), [None] * len(examples)
    else:
        options, owner = predictor.continuations()
        contexts, conts = lm.encode_continuations(prompts, [options] * len(prompts))
        labels = list(predictor.verbalizers)
        first = {labels[o]: j for j, o in reversed(list(enumerate(owner)))}  # each label's first verbalizer
        answers = [conts[i][first[ex.label]] for i, ex in enumerate(examples)]
    eos = lm.tokenizer.eos_token_id
    differ = []
    for ex, ctx_ids, answer in zip(examples, contexts, answers):
        row = by_id[ex.id]
        if tuple(ctx_ids) != row.prompt_ids or (answer is not None and tuple(answer) + (eos,) != row.answer_ids):
            differ.append(ex.id)
    if differ:
        raise AuditError(
            f"template audit: the tokens trained on differ from the ones inference uses for {len(differ)} of "
            f"{len(examples)} examples: "
            + ", ".join(differ[:10])
            + f" (chat template at inference: {'yes' if predictor.use_chat else 'no'})"
        )
    return {
        "checked": len(examples),
        "chat_template": bool(predictor.use_chat),
        "identical": True,
        "eos_token": lm.tokenizer.convert_ids_to_tokens(eos),
    }


def _single_losses(model: Any, rows: Sequence[Encoded]) -> list[float]:
    """Summed answer loss of each example alone, through the model's plain forward (no packing, full logits)."""
    import torch
    import torch.nn.functional as F

    from .steps import unwrap

    base = unwrap(model)
    out = []
    for r in rows:
        ids = torch.tensor([r.ids], device=base.device)
        logits = base(input_ids=ids, use_cache=False).logits[0].float()
        start = len(r.prompt_ids) - 1
        pred = logits[start : start + len(r.answer_ids)]
        out.append(float(F.cross_entropy(pred, torch.tensor(r.answer_ids, device=pred.device), reduction="sum")))
    return out


def audit_packing(
    model: Any,
    rows: Sequence[Encoded],
    capacity: int,
    pad_id: int,
    make_packed: Callable[..., Any] = packed_batch,
    tolerance: float = 1e-4,
) -> dict[str, Any]:
    """Each example's loss with ``rows`` packed into as few rows as fit vs alone; fails when any differs (relative).

    Compared example by example, not in total: the first example of a row can't see another, so a leak shows
    only in the later ones, and a total would dilute it.
    """
    import torch
    import torch.nn.functional as F

    from .steps import packed_logits

    rows = list(rows)
    capacity = max(capacity, sum(r.length for r in rows))
    was_training = model.training
    model.eval()  # no dropout: both sides must compute the same function
    try:
        with torch.no_grad():
            batch = make_packed(rows, capacity=capacity, pad_id=pad_id)
            logits = packed_logits(model, batch).float()
            per_target = F.cross_entropy(logits, batch.targets.to(logits.device), reduction="none").tolist()
            alone = _single_losses(model, rows)
    finally:
        model.train(was_training)
    packed = [0.0] * len(rows)
    at = 0
    for i in (i for row in pack([r.length for r in rows], capacity) for i in row):  # the packer's order
        n = len(rows[i].answer_ids)
        packed[i] = sum(per_target[at : at + n])
        at += n
    rel = [abs(p - a) / max(abs(a), 1e-12) for p, a in zip(packed, alone)]
    worst = max(range(len(rows)), key=lambda i: rel[i])
    if rel[worst] > tolerance:
        raise AuditError(
            f"packing audit: example {rows[worst].id} has loss {packed[worst]:.6f} packed with {len(rows) - 1} others "
            f"but {alone[worst]:.6f} alone (relative difference {rel[worst]:.2e}): packed examples see each other"
        )
    return {
        "examples": len(rows),
        "rows": int(batch.input_ids.shape[0]),
        "loss_packed": sum(packed),
        "loss_alone": sum(alone),
        "max_relative_difference": rel[worst],
    }


def is_merged(model: Any) -> bool:
    """Whether any of a PEFT model's adapter layers is merged into the base weights it wraps."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    return any(isinstance(m, BaseTunerLayer) and m.merged for m in model.modules())


def merge_in_place(model: Any) -> None:
    """Fold a PEFT model's LoRA/IA3 adapter into the base weights it wraps, for prediction.

    An unmerged adapter costs extra matmuls in every adapted layer on every query; merged, a query costs what the
    base model's does. The adapter's own weights stay as they were, so it still saves as the adapter it is.
    """
    model.merge_adapter()


def merged_copy(model: Any) -> Any:
    """A copy of a PEFT model with its adapter merged into the base weights (a plain transformers model)."""
    twin = copy.deepcopy(model)
    # merged in place for prediction already: the base weights hold the adapter, only its layers are to go
    return twin.unload() if is_merged(model) else twin.merge_and_unload()


def audit_merge(
    predictor: Any, examples: Sequence[Example], adapter_preds: Sequence[Any], tolerance: float = 1e-3
) -> dict[str, Any]:
    """The predictor's predictions on ``examples`` now that its adapter is merged (:func:`merge_in_place`) vs
    ``adapter_preds``, made on them before the merge: same labels or texts, close scores."""
    ours, theirs = list(adapter_preds), predictor.predict(examples)
    differ = [a.id for a, b in zip(ours, theirs) if a.output != b.output or a.label != b.label]
    gap = 0.0
    for a, b in zip(ours, theirs):
        if a.scores and b.scores:
            gap = max(gap, max(abs(a.scores[k] - b.scores[k]) for k in a.scores))
    if differ or gap > tolerance:
        raise AuditError(
            f"merge audit: the merged model predicts differently from the adapter on {len(differ)} of "
            f"{len(examples)} examples (largest score gap {gap:.2e})"
            + (": " + ", ".join(differ[:10]) if differ else "")
        )
    return {"examples": len(examples), "identical_outputs": True, "max_score_gap": gap}
