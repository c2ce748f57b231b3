"""Tokenizing prompts and continuations exactly as lm-evaluation-harness does, for every backend with a tokenizer:
a local model scores these ids, a served model is sent them (so both score the same tokens)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def encode(tokenizer: Any, texts: Sequence[str], special: bool = True) -> list[list[int]]:
    """Token ids as lm-eval's ``tok_encode``: special tokens unless the text already starts with BOS."""
    bos = tokenizer.bos_token
    plain = [special and not (bos and t.startswith(bos)) for t in texts]
    out: list[list[int]] = [[] for _ in texts]
    for flag in (True, False):
        idx = [i for i, p in enumerate(plain) if p == flag]
        if idx:
            # verbose=False: over-long texts are expected here (they are measured, then reported or cut).
            ids = tokenizer([texts[i] for i in idx], add_special_tokens=flag, verbose=False)["input_ids"]
            for i, row in zip(idx, ids):
                out[i] = list(row)
    return out


def encode_continuations(
    tokenizer: Any, kind: str, contexts: Sequence[str], options: Sequence[Sequence[str]]
) -> tuple[list[list[int]], list[list[list[int]]]]:
    """Each context's ids and the ids of each of its own continuations, tokenized as lm-eval does.

    lm-eval moves the context's trailing whitespace to the front of each continuation, and takes a
    continuation's tokens as the tail of ``tok(context + continuation)`` after ``len(tok(context))``.
    Fine-tuning trains on exactly these tokens, so a fine-tuned model is scored on what it learned.
    """
    heads, tails = [], []
    for ctx, opts in zip(contexts, options):
        n = len(ctx) - len(ctx.rstrip())
        heads.append(ctx[: len(ctx) - n])
        tails.append([ctx[len(ctx) - n :] + opt for opt in opts])
    if kind == "seq2seq":
        flat = encode(tokenizer, [t for row in tails for t in row], special=False)
        out, at = [], 0
        for row in tails:
            out.append(flat[at : at + len(row)])
            at += len(row)
        return encode(tokenizer, heads), out
    # An empty context is conditioned on BOS (or EOS) alone, as lm-eval does.
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    ctx_ids = encode(tokenizer, heads)
    whole = encode(tokenizer, [h + t for h, row in zip(heads, tails) for t in row])
    conts, at = [], 0
    for i, (head, ctx) in enumerate(zip(heads, ctx_ids)):
        row = whole[at : at + len(tails[i])]
        at += len(tails[i])
        if head == "":
            row = encode(tokenizer, tails[i], special=False)
            ctx_ids[i] = [start]
            row = [r[1:] if r and r[0] == start else r for r in row]
        else:
            row = [w[len(ctx) :] for w in row]
        conts.append(row)
    return ctx_ids, conts
