"""Scoring continuations with a local language model, lm-eval's way, fast: the shared prompt prefix computed once.

Scoring follows lm-evaluation-harness token for token (``_encode_pair``: trailing spaces of the
context move to the continuation; the continuation's tokens are the tail of ``tok(context +
continuation)`` after ``len(tok(context))``), so accuracies can be checked against lm-eval.

What makes it fast is the shared prefix. A few-shot prompt repeats the same instruction and
demonstrations in front of every example; we run them through the model once, keep their keys and
values, and per example run only the example's own tokens plus every option, packed in one row:

    [prefix: cached once] [rest of example i] [option 0] [option 1] ...

A 4D attention mask lets each option see the prefix, the rest and its own earlier tokens but not the
other options, and position ids restart after the rest for each option, so each option is scored
exactly as if it followed the example alone. Compared with one full sequence per (example, option)
this skips the prefix and shares the example's tokens across options.

The functions here work on a :class:`ScoringModel`, what they need of :class:`~tailor.backends.local.lm.LanguageModel`
(declared here so that this module does not import the backend that imports it); callers use the backend's
``score`` (the backend protocol's, which finds the shared prefix itself) or ``score_options`` (a prefix given
explicitly).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import numpy as np

from ...progress import NULL_PROGRESS, Progress


class ScoringModel(Protocol):
    """What scoring reads and counts on a local language model (:class:`~tailor.backends.local.lm.LanguageModel`)."""

    model: Any
    """The model called (a PEFT wrapper around it, when fine-tuned)."""
    tokenizer: Any
    kind: str
    """``causal`` or ``seq2seq``."""
    batch_size: int | None
    """Sequences per forward pass; None: as many as fit :data:`TOKEN_BUDGET` tokens."""
    boundary_slack: int
    """Tokens re-encoded across the prefix boundary, where merges may differ."""
    keeps_logits: bool
    """Whether the model's forward takes ``logits_to_keep``."""
    cache_argument: str
    """The name of the forward's key-value cache argument."""
    prefix_cached: int
    """Examples scored on a cached prefix (counted here)."""
    prefix_fallbacks: int
    """Examples whose prefix could not be reused and were scored whole (counted here)."""

    @property
    def device(self) -> Any: ...

    @property
    def inner_model(self) -> Any: ...

    @property
    def context_length(self) -> int: ...

    def encode(self, texts: Sequence[str], special: bool = True) -> list[list[int]]: ...

    def encode_continuations(
        self, contexts: Sequence[str], options: Sequence[Sequence[str]]
    ) -> tuple[list[list[int]], list[list[list[int]]]]: ...


# Tokens per forward pass when no batch size is given: big enough to keep 2 CPU cores busy, small
# enough that the expanded prefix cache and the kept logits stay within a few hundred MB.
TOKEN_BUDGET = 4096


def shared_prefix(prompts: Sequence[str]) -> str:
    """The longest common prefix of the prompts, cut after its last line break.

    Cutting at a line break keeps the prefix a clean tokenization boundary in practice; the scorer still
    checks that the prefix's tokens are a prefix of each prompt's tokens.
    """
    if len(prompts) < 2:
        return ""
    first, last = min(prompts), max(prompts)
    n = 0
    while n < min(len(first), len(last)) and first[n] == last[n]:
        n += 1
    cut = first.rfind("\n", 0, n)
    return first[: cut + 1] if cut >= 0 else ""


def score_options(
    lm: ScoringModel,
    prefix: str,
    prompts: Sequence[str],
    options: Sequence[str],
    *,
    use_prefix_cache: bool = True,
    batch_size: int | None = None,
    progress: Progress = NULL_PROGRESS,
) -> tuple[np.ndarray, np.ndarray]:
    """Log-likelihood of each option after ``prefix + prompts[i]``, summed over the option's tokens.

    Args:
        lm: The model.
        prefix: Text shared by every example (instruction, demonstrations); run once when cached.
        prompts: Each example's own text, appended to ``prefix``.
        options: The continuations to score (labels, usually with a leading space).
        use_prefix_cache: Reuse the prefix's keys and values (causal models); off computes every full sequence.
        batch_size: Sequences per forward pass; default: this model's, within a token budget.
        progress: Advanced once per scored option.

    Returns:
        ``(logprobs, token_counts)``, each of shape ``(len(prompts), len(options))``.
    """
    if not prompts or not options:
        return np.zeros((len(prompts), len(options))), np.zeros((len(prompts), len(options)), dtype=np.int64)
    ctx_ids, conts = lm.encode_continuations([prefix + p for p in prompts], [options] * len(prompts))
    return score_encoded(lm, prefix, ctx_ids, conts, use_prefix_cache, batch_size, progress)


def score_encoded(
    lm: ScoringModel,
    prefix: str,
    ctx_ids: list[list[int]],
    conts: list[list[list[int]]],
    use_prefix_cache: bool = True,
    batch_size: int | None = None,
    progress: Progress = NULL_PROGRESS,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`score_options` on prompts already tokenized by ``lm.encode_continuations`` (whose text starts with
    ``prefix``): callers that need the token counts too tokenize once."""
    import torch

    n, m = len(ctx_ids), len(conts[0]) if conts else 0
    logp, counts = np.zeros((n, m), dtype=np.float64), np.zeros((n, m), dtype=np.int64)
    if n == 0 or m == 0:
        return logp, counts
    for i in range(n):
        counts[i] = [len(c) for c in conts[i]]
    batch_size = batch_size or lm.batch_size
    with torch.inference_mode(), progress.bar("scoring options", n * m) as bar:
        cached: list[int] = []
        if lm.kind == "causal" and use_prefix_cache and prefix:
            shared, cached = _shareable(lm, lm.encode([prefix])[0], ctx_ids, conts)
            lm.prefix_cached += len(cached)
            lm.prefix_fallbacks += n - len(cached)
        if cached:
            groups = [(ctx_ids[i], conts[i]) for i in cached]
            logp[cached] = _score_packed(lm, ctx_ids[cached[0]][:shared], groups, batch_size, bar)
        rows = [(i, j) for i in sorted(set(range(n)) - set(cached)) for j in range(m)]
        pairs = [(ctx_ids[i], conts[i][j]) for i, j in rows]
        score = _score_seq2seq if lm.kind == "seq2seq" else _score_full
        for (i, j), value in zip(rows, score(lm, pairs, batch_size, bar)):
            logp[i, j] = value
    return logp, counts


def _shareable(
    lm: ScoringModel, prefix_ids: list[int], ctx_ids: list[list[int]], conts: list[Any]
) -> tuple[int, list[int]]:
    """How many leading tokens every cached example shares, and which examples can use them.

    An example shares the prefix's tokens up to where tokenizing ``prefix + prompt`` merged across the
    boundary; one that diverges more than ``boundary_slack`` tokens early is scored without the cache, and
    so is one too long for the model (the full path truncates it on the left, as lm-eval does).
    """
    if not prefix_ids or not _packable(lm):
        return 0, []
    need = max(1, len(prefix_ids) - lm.boundary_slack)
    common: dict[int, int] = {}
    for i, ctx in enumerate(ctx_ids):
        k, limit = 0, min(len(ctx), len(prefix_ids))
        while k < limit and ctx[k] == prefix_ids[k]:
            k += 1
        if k >= need and len(ctx) + max(len(c) for c in conts[i]) - 1 <= lm.context_length:
            common[i] = k
    return min(common.values(), default=0), sorted(common)


def _packable(lm: ScoringModel) -> bool:
    """Whether the model takes our own 4D mask and a plain growing cache (sdpa/eager, no sliding windows)."""
    config = lm.inner_model.config
    if getattr(config, "_attn_implementation", None) not in ("sdpa", "eager"):
        return False
    layer_types = getattr(config.get_text_config(decoder=True), "layer_types", None) or ["full_attention"]
    return all(t == "full_attention" for t in layer_types)


def _forward(lm: ScoringModel, keep: int, model: Any = None, **inputs: Any) -> tuple[Any, Any]:
    """The output of ``model`` (default ``lm.model``) and the logits of its last ``keep`` positions (float32); the
    others are skipped when the model can."""
    model = model if model is not None else lm.model
    if lm.keeps_logits:
        out = model(**inputs, logits_to_keep=keep)
        return out, out.logits.float()
    out = model(**inputs)
    return out, out.logits[:, -keep:].float()


def _score_full(lm: ScoringModel, pairs: list[tuple[list[int], list[int]]], batch_size: int, bar: Any) -> list[float]:
    """Each (context, continuation) as one right-padded full sequence, truncated on the left as lm-eval does."""
    import torch

    out = [0.0] * len(pairs)
    limit = lm.context_length
    inputs = [(ctx + cont)[-(limit + 1) :][:-1] for ctx, cont in pairs]
    for batch in batches([len(x) for x in inputs], batch_size):
        ids, mask = pad_rows([inputs[b] for b in batch], lm.tokenizer.pad_token_id, left=False)
        width = ids.shape[1]
        # Continuation token t of row r is predicted at position len(input) - len(cont) + t.
        first = [len(inputs[b]) - len(pairs[b][1]) for b in batch]
        keep = width - max(0, min(first))
        _, logits = _forward(lm, keep, input_ids=ids.to(lm.device), attention_mask=mask.to(lm.device))
        for r, b in enumerate(batch):
            cont = pairs[b][1]
            if cont:
                start = first[r] - (width - keep)
                rows = logits[r, start : start + len(cont)].log_softmax(-1)
                out[b] = rows.gather(-1, torch.tensor(cont, device=rows.device)[:, None]).sum().item()
        bar.advance(len(batch))
    return out


def _score_packed(
    lm: ScoringModel, shared: list[int], groups: list[tuple[list[int], list[list[int]]]], batch_size: int, bar: Any
) -> np.ndarray:
    """Every option's log-likelihood per example (one row each), packed on top of the cached ``shared`` tokens."""
    import torch

    dev, n_shared = lm.device, len(shared)
    # Through the model's own forward: a soft prompt's wrapper puts its virtual tokens (or their keys and values) in
    # front, the same for every example, so they are cached with the prefix and the rows below come after them.
    prefix, last = _forward(lm, 1, input_ids=torch.tensor([shared], device=dev), use_cache=True)
    # transformers 5.24 renamed the cache (`past_key_values` → `cache`, in the output too) and warns on the old name
    cached = getattr(prefix, "cache", None) or prefix.past_key_values
    keys = [(layer.keys, layer.values) for layer in cached.layers]
    start = keys[0][0].shape[-2]  # the position after the cached ones: n_shared, plus any virtual tokens
    after_prefix = last[0, -1].log_softmax(-1)

    # An option's last token is only ever a target, so it is left out of the row: single-token options
    # cost nothing beyond the example's own tokens.
    rows = [ctx[n_shared:] + [t for c in conts for t in c[:-1]] for ctx, conts in groups]
    results = np.zeros((len(groups), len(groups[0][1])))
    for batch in batches([n_shared + len(r) for r in rows], batch_size):
        width = max(len(rows[b]) for b in batch)
        ids = torch.full((len(batch), width), lm.tokenizer.pad_token_id, dtype=torch.long)
        pos = torch.zeros((len(batch), width), dtype=torch.long)
        seg = torch.full((len(batch), width), -1, dtype=torch.long)  # -1 pad, 0 rest, j+1 option j
        # Option token t is predicted by the rest's last token (t = 0) or by its own previous token;
        # position -1 is the last shared token, whose log-probs we already have.
        where, pred, target = [], [], []
        for r, b in enumerate(batch):
            ctx, conts = groups[b]
            rest = len(ctx) - n_shared
            ids[r, : len(rows[b])] = torch.tensor(rows[b], dtype=torch.long)
            pos[r, :rest] = torch.arange(start, start + rest)
            seg[r, :rest] = 0
            at = rest
            for j, cont in enumerate(conts):
                body = max(len(cont) - 1, 0)
                pos[r, at : at + body] = torch.arange(start + rest, start + rest + body)
                seg[r, at : at + body] = j + 1
                if cont:
                    where += [(b, j)] * len(cont)
                    pred += [(r, rest - 1)] + [(r, at + t) for t in range(body)]
                    target += cont
                at += body
        if not pred:
            continue
        logp = after_prefix.expand(len(pred), -1)
        if width:
            logits, offset = _packed_forward(lm, keys, ids, pos, seg, min(p for _, p in pred))
            rows_idx = torch.tensor([r for r, _ in pred], device=dev)
            pos_idx = torch.tensor([max(p - offset, 0) for _, p in pred], device=dev)
            from_prefix = torch.tensor([p < 0 for _, p in pred], device=dev)
            logp = torch.where(from_prefix[:, None], logp, logits[rows_idx, pos_idx].log_softmax(-1))
        picked = logp.gather(-1, torch.tensor(target, device=dev)[:, None])[:, 0].double().cpu().numpy()
        for (b, j), value in zip(where, picked):
            results[b, j] += value
        bar.advance(sum(len(groups[b][1]) for b in batch))
    return results


def _packed_forward(lm: ScoringModel, keys: list[Any], ids: Any, pos: Any, seg: Any, first: int) -> tuple[Any, int]:
    """Logits of packed rows on top of the cached ``keys``, from row position ``first`` on (and that offset)."""
    import torch
    from transformers import DynamicCache

    n_rows, width = ids.shape
    n_shared = keys[0][0].shape[-2]
    # Query q sees key k (both in the row) when k <= q and k is the example's rest or q's own option;
    # every query sees the whole shared prefix.
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    visible = causal & ((seg[:, None, :] == 0) | (seg[:, None, :] == seg[:, :, None])) & (seg[:, None, :] >= 0)
    visible = torch.cat([torch.ones(n_rows, width, n_shared, dtype=torch.bool), visible], dim=-1)
    inner = lm.inner_model  # the rows go on top of the cache, past any soft prompt's wrapper (already in the cache)
    dtype = inner.dtype
    mask = torch.zeros(visible.shape, dtype=dtype).masked_fill(~visible, torch.finfo(dtype).min)

    cache = DynamicCache(config=inner.config)
    for layer, (k, v) in zip(cache.layers, keys):
        # A view, not a copy: the forward's concatenation makes the per-row tensors, and the
        # prefix's own tensors stay untouched for the next batch.
        layer.lazy_initialization(k, v)
        layer.keys, layer.values = k.expand(n_rows, -1, -1, -1), v.expand(n_rows, -1, -1, -1)

    offset = max(0, first)  # logits before the first needed position are never computed
    _, logits = _forward(
        lm,
        width - offset,
        inner,
        input_ids=ids.to(lm.device),
        position_ids=pos.to(lm.device),
        attention_mask=mask[:, None].to(lm.device),
        use_cache=True,
        **{lm.cache_argument: cache},
    )
    return logits, offset


def _score_seq2seq(
    lm: ScoringModel, pairs: list[tuple[list[int], list[int]]], batch_size: int, bar: Any
) -> list[float]:
    """Decoder log-likelihood of each continuation given its context as the encoder input."""
    import torch

    out = [0.0] * len(pairs)
    limit, pad = lm.context_length, lm.tokenizer.pad_token_id
    for batch in batches([len(c) + len(o) for c, o in pairs], batch_size):
        ctxs = [pairs[b][0][-limit:] for b in batch]
        conts = [pairs[b][1] for b in batch]
        ids, mask = pad_rows(ctxs, pad, left=False)
        labels, _ = pad_rows([c or [pad] for c in conts], -100, left=False)
        logits = lm.model(
            input_ids=ids.to(lm.device), attention_mask=mask.to(lm.device), labels=labels.to(lm.device)
        ).logits
        logp = logits.float().log_softmax(-1)
        for r, b in enumerate(batch):
            if conts[r]:
                tok = torch.tensor(conts[r], device=logp.device)
                out[b] = logp[r, : len(conts[r])].gather(-1, tok[:, None]).sum().item()
        bar.advance(len(batch))
    return out


# -- generation ---------------------------------------------------------------------------------


def pad_rows(rows: list[list[int]], value: int, left: bool) -> tuple[Any, Any]:
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), value, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        span = slice(width - len(r), width) if left else slice(0, len(r))
        ids[i, span] = torch.tensor(r, dtype=torch.long)
        mask[i, span] = 1
    return ids, mask


def batches(lengths: Sequence[int], batch_size: int, budget: int | None = TOKEN_BUDGET) -> Iterator[list[int]]:
    """Indices grouped longest first (little padding), at most ``batch_size`` and about ``budget`` tokens each."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batch: list[int] = []
    for i in order:
        width = lengths[batch[0]] if batch else lengths[i]
        if batch and (len(batch) >= batch_size or (budget and (len(batch) + 1) * width > budget)):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch
