"""Local generative models (causal and seq2seq): scoring answer options and generating text.

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
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ..config import ModelSpec
from ..errors import TailorError
from ..progress import NULL_PROGRESS, Progress
from .models import best_device, model_kind, resolve_path

# Tokens per forward pass when no batch size is given: big enough to keep 2 CPU cores busy, small
# enough that the expanded prefix cache and the kept logits stay within a few hundred MB.
_TOKEN_BUDGET = 4096
# A prefix's last few tokens may merge with the example's first characters (a BPE boundary). Up to
# this many are dropped from the cache and re-run per example before that example falls back.
_BOUNDARY_SLACK = 4


class LanguageModel:
    """A local causal or seq2seq language model with its tokenizer.

    Attributes:
        kind: ``"causal"`` or ``"seq2seq"``.
        batch_size: Most sequences per forward pass (a token budget may make batches smaller).
        boundary_slack: Prefix tokens that may be re-encoded per example before it is scored without the cache.
        prefix_cached: Examples scored so far on top of a cached prefix.
        prefix_fallbacks: Examples scored so far without the cache because the prefix's tokens were not a
            prefix of theirs (or the model can't take the packed layout); for the run record.
    """

    def __init__(self, model: Any, tokenizer: Any, kind: str, *, batch_size: int = 64, max_length: int | None = None):
        if kind not in ("causal", "seq2seq"):
            raise TailorError(f"model.kind: a language model is causal or seq2seq, not {kind!r}")
        self.model, self.tokenizer, self.kind = model, tokenizer, kind
        self.batch_size = batch_size
        self.boundary_slack = _BOUNDARY_SLACK
        self.prefix_cached = 0
        self.prefix_fallbacks = 0
        self._max_length = max_length
        params = inspect.signature(model.forward).parameters
        self._keeps_logits = "logits_to_keep" in params

    @classmethod
    def from_spec(cls, spec: ModelSpec, kind: str | None = None, *, dtype: str | None = None) -> LanguageModel:
        """Load ``spec``'s model and tokenizer; ``dtype`` (e.g. "float32") overrides the device's default."""
        import torch
        from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

        from .hf import library_bars_off

        kind = kind or model_kind(spec)
        path, device = resolve_path(spec.name), best_device(spec.device)
        dtype = dtype or (spec.dtype if spec.dtype != "auto" else None)
        if dtype is None:
            dtype = "float32"
            if device.startswith("cuda"):
                dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        auto = AutoModelForSeq2SeqLM if kind == "seq2seq" else AutoModelForCausalLM
        with library_bars_off():
            tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=spec.trust_remote_code)
            model = auto.from_pretrained(path, dtype=getattr(torch, dtype), trust_remote_code=spec.trust_remote_code)
        model.to(device).eval()
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        return cls(model, tokenizer, kind, batch_size=spec.batch_size, max_length=spec.max_length)

    # -- text ---------------------------------------------------------------------------------------

    @property
    def device(self) -> Any:
        return self.model.device

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    @property
    def context_length(self) -> int:
        """Longest sequence the model takes: ``model.max_length``, else the model's positions, else the tokenizer's."""
        if self._max_length:
            return self._max_length
        config = self.model.config.get_text_config(decoder=True)
        for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
            if isinstance(getattr(config, name, None), int):
                return int(getattr(config, name))
        limit = getattr(self.tokenizer, "model_max_length", None)
        return int(limit) if isinstance(limit, int) and 0 < limit < 1_000_000 else 2048

    def cap_context(self, n: int) -> None:
        """Take at most ``n`` tokens from now on (a fine-tuned model keeps its training's ``max_length``)."""
        self._max_length = min(n, self.context_length)

    def render(self, messages: list[dict[str, str]], chat: bool) -> str:
        """The prompt text: the chat template with a generation prompt, or the contents joined by blank lines."""
        if chat and self.has_chat_template:
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return "\n\n".join(m["content"] for m in messages)

    def count_tokens(self, text: str) -> int:
        return len(self.encode([text])[0])

    def encode(self, texts: Sequence[str], special: bool = True) -> list[list[int]]:
        """Token ids as lm-eval's ``tok_encode``: special tokens unless the text already starts with BOS."""
        bos = self.tokenizer.bos_token
        plain = [special and not (bos and t.startswith(bos)) for t in texts]
        out: list[list[int]] = [[] for _ in texts]
        for flag in (True, False):
            idx = [i for i, p in enumerate(plain) if p == flag]
            if idx:
                # verbose=False: over-long texts are expected here (they are measured, then reported or cut).
                ids = self.tokenizer([texts[i] for i in idx], add_special_tokens=flag, verbose=False)["input_ids"]
                for i, row in zip(idx, ids):
                    out[i] = list(row)
        return out

    def _split_context(
        self, contexts: Sequence[str], options: Sequence[Sequence[str]]
    ) -> tuple[list[str], list[list[str]]]:
        """lm-eval's move of the context's trailing whitespace to the front of each of its options."""
        heads, tails = [], []
        for ctx, opts in zip(contexts, options):
            n = len(ctx) - len(ctx.rstrip())
            heads.append(ctx[: len(ctx) - n])
            tails.append([ctx[len(ctx) - n :] + opt for opt in opts])
        return heads, tails

    def _encode_pairs(self, contexts: Sequence[str], options: Sequence[str]) -> tuple[list[list[int]], list[Any]]:
        """(context ids per example, continuation ids per example and option) as lm-eval encodes them."""
        return self.encode_continuations(contexts, [options] * len(contexts))

    def encode_continuations(
        self, contexts: Sequence[str], options: Sequence[Sequence[str]]
    ) -> tuple[list[list[int]], list[list[list[int]]]]:
        """Each context's ids and the ids of each of its own continuations, tokenized as lm-eval does.

        Fine-tuning trains on exactly these tokens, so a fine-tuned model is scored on what it learned.
        """
        heads, tails = self._split_context(contexts, options)
        if self.kind == "seq2seq":
            flat = self.encode([t for row in tails for t in row], special=False)
            out, at = [], 0
            for row in tails:
                out.append(flat[at : at + len(row)])
                at += len(row)
            return self.encode(heads), out
        # An empty context is conditioned on BOS (or EOS) alone, as lm-eval does.
        start = self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else self.tokenizer.eos_token_id
        ctx_ids = self.encode(heads)
        whole = self.encode([h + t for h, row in zip(heads, tails) for t in row])
        conts, at = [], 0
        for i, (head, ctx) in enumerate(zip(heads, ctx_ids)):
            row = whole[at : at + len(tails[i])]
            at += len(tails[i])
            if head == "":
                row = self.encode(tails[i], special=False)
                ctx_ids[i] = [start]
                row = [r[1:] if r and r[0] == start else r for r in row]
            else:
                row = [w[len(ctx) :] for w in row]
            conts.append(row)
        return ctx_ids, conts

    # -- scoring ------------------------------------------------------------------------------------

    def score_options(
        self,
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
            prefix: Text shared by every example (instruction, demonstrations); run once when cached.
            prompts: Each example's own text, appended to ``prefix``.
            options: The continuations to score (labels, usually with a leading space).
            use_prefix_cache: Reuse the prefix's keys and values (causal models); off computes every full sequence.
            batch_size: Sequences per forward pass; default: this model's, within a token budget.
            progress: Advanced once per scored option.

        Returns:
            ``(logprobs, token_counts)``, each of shape ``(len(prompts), len(options))``.
        """
        import torch

        n, m = len(prompts), len(options)
        logp, counts = np.zeros((n, m), dtype=np.float64), np.zeros((n, m), dtype=np.int64)
        if n == 0 or m == 0:
            return logp, counts
        ctx_ids, conts = self._encode_pairs([prefix + p for p in prompts], options)
        for i in range(n):
            counts[i] = [len(c) for c in conts[i]]
        batch_size = batch_size or self.batch_size
        with torch.inference_mode(), progress.bar("scoring options", n * m) as bar:
            cached: list[int] = []
            if self.kind == "causal" and use_prefix_cache and prefix:
                shared, cached = self._shareable(self.encode([prefix])[0], ctx_ids, conts)
                self.prefix_cached += len(cached)
                self.prefix_fallbacks += n - len(cached)
            if cached:
                groups = [(ctx_ids[i], conts[i]) for i in cached]
                logp[cached] = self._score_packed(ctx_ids[cached[0]][:shared], groups, batch_size, bar)
            rows = [(i, j) for i in sorted(set(range(n)) - set(cached)) for j in range(m)]
            pairs = [(ctx_ids[i], conts[i][j]) for i, j in rows]
            score = self._score_seq2seq if self.kind == "seq2seq" else self._score_full
            for (i, j), value in zip(rows, score(pairs, batch_size, bar)):
                logp[i, j] = value
        return logp, counts

    def _shareable(self, prefix_ids: list[int], ctx_ids: list[list[int]], conts: list[Any]) -> tuple[int, list[int]]:
        """How many leading tokens every cached example shares, and which examples can use them.

        An example shares the prefix's tokens up to where tokenizing ``prefix + prompt`` merged across the
        boundary; one that diverges more than ``boundary_slack`` tokens early is scored without the cache, and
        so is one too long for the model (the full path truncates it on the left, as lm-eval does).
        """
        if not prefix_ids or not self._packable():
            return 0, []
        need = max(1, len(prefix_ids) - self.boundary_slack)
        common: dict[int, int] = {}
        for i, ctx in enumerate(ctx_ids):
            k, limit = 0, min(len(ctx), len(prefix_ids))
            while k < limit and ctx[k] == prefix_ids[k]:
                k += 1
            if k >= need and len(ctx) + max(len(c) for c in conts[i]) - 1 <= self.context_length:
                common[i] = k
        return min(common.values(), default=0), sorted(common)

    def _packable(self) -> bool:
        """Whether the model takes our own 4D mask and a plain growing cache (sdpa/eager, no sliding windows)."""
        if hasattr(self.model, "peft_config"):  # a PEFT soft prompt adds its own virtual tokens and cache
            return False
        config = self.model.config
        if getattr(config, "_attn_implementation", None) not in ("sdpa", "eager"):
            return False
        layer_types = getattr(config.get_text_config(decoder=True), "layer_types", None) or ["full_attention"]
        return all(t == "full_attention" for t in layer_types)

    def _forward(self, keep: int, **inputs: Any) -> tuple[Any, Any]:
        """The model's output and the logits of its last ``keep`` positions (float32); the others are skipped
        when the model can."""
        if self._keeps_logits:
            out = self.model(**inputs, logits_to_keep=keep)
            return out, out.logits.float()
        out = self.model(**inputs)
        return out, out.logits[:, -keep:].float()

    def _score_full(self, pairs: list[tuple[list[int], list[int]]], batch_size: int, bar: Any) -> list[float]:
        """Each (context, continuation) as one right-padded full sequence, truncated on the left as lm-eval does."""
        import torch

        out = [0.0] * len(pairs)
        limit = self.context_length
        inputs = [(ctx + cont)[-(limit + 1) :][:-1] for ctx, cont in pairs]
        for batch in _batches([len(x) for x in inputs], batch_size):
            ids, mask = _pad([inputs[b] for b in batch], self.tokenizer.pad_token_id, left=False)
            width = ids.shape[1]
            # Continuation token t of row r is predicted at position len(input) - len(cont) + t.
            first = [len(inputs[b]) - len(pairs[b][1]) for b in batch]
            keep = width - max(0, min(first))
            _, logits = self._forward(keep, input_ids=ids.to(self.device), attention_mask=mask.to(self.device))
            for r, b in enumerate(batch):
                cont = pairs[b][1]
                if cont:
                    start = first[r] - (width - keep)
                    rows = logits[r, start : start + len(cont)].log_softmax(-1)
                    out[b] = rows.gather(-1, torch.tensor(cont, device=rows.device)[:, None]).sum().item()
            bar.advance(len(batch))
        return out

    def _score_packed(
        self, shared: list[int], groups: list[tuple[list[int], list[list[int]]]], batch_size: int, bar: Any
    ) -> np.ndarray:
        """Every option's log-likelihood per example (one row each), packed on top of the cached ``shared`` tokens."""
        import torch

        dev, n_shared = self.device, len(shared)
        prefix, last = self._forward(1, input_ids=torch.tensor([shared], device=dev), use_cache=True)
        keys = [(layer.keys, layer.values) for layer in prefix.past_key_values.layers]
        after_prefix = last[0, -1].log_softmax(-1)

        # An option's last token is only ever a target, so it is left out of the row: single-token options
        # cost nothing beyond the example's own tokens.
        rows = [ctx[n_shared:] + [t for c in conts for t in c[:-1]] for ctx, conts in groups]
        results = np.zeros((len(groups), len(groups[0][1])))
        for batch in _batches([n_shared + len(r) for r in rows], batch_size):
            width = max(len(rows[b]) for b in batch)
            ids = torch.full((len(batch), width), self.tokenizer.pad_token_id, dtype=torch.long)
            pos = torch.zeros((len(batch), width), dtype=torch.long)
            seg = torch.full((len(batch), width), -1, dtype=torch.long)  # -1 pad, 0 rest, j+1 option j
            # Option token t is predicted by the rest's last token (t = 0) or by its own previous token;
            # position -1 is the last shared token, whose log-probs we already have.
            where, pred, target = [], [], []
            for r, b in enumerate(batch):
                ctx, conts = groups[b]
                rest = len(ctx) - n_shared
                ids[r, : len(rows[b])] = torch.tensor(rows[b], dtype=torch.long)
                pos[r, :rest] = torch.arange(n_shared, n_shared + rest)
                seg[r, :rest] = 0
                at = rest
                for j, cont in enumerate(conts):
                    body = max(len(cont) - 1, 0)
                    pos[r, at : at + body] = torch.arange(n_shared + rest, n_shared + rest + body)
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
                logits, offset = self._packed_forward(keys, ids, pos, seg, min(p for _, p in pred))
                rows_idx = torch.tensor([r for r, _ in pred], device=dev)
                pos_idx = torch.tensor([max(p - offset, 0) for _, p in pred], device=dev)
                from_prefix = torch.tensor([p < 0 for _, p in pred], device=dev)
                logp = torch.where(from_prefix[:, None], logp, logits[rows_idx, pos_idx].log_softmax(-1))
            picked = logp.gather(-1, torch.tensor(target, device=dev)[:, None])[:, 0].double().cpu().numpy()
            for (b, j), value in zip(where, picked):
                results[b, j] += value
            bar.advance(sum(len(groups[b][1]) for b in batch))
        return results

    def _packed_forward(self, keys: list[Any], ids: Any, pos: Any, seg: Any, first: int) -> tuple[Any, int]:
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
        dtype = self.model.dtype
        mask = torch.zeros(visible.shape, dtype=dtype).masked_fill(~visible, torch.finfo(dtype).min)

        cache = DynamicCache(config=self.model.config)
        for layer, (k, v) in zip(cache.layers, keys):
            # A view, not a copy: the forward's concatenation makes the per-row tensors, and the
            # prefix's own tensors stay untouched for the next batch.
            layer.lazy_initialization(k, v)
            layer.keys, layer.values = k.expand(n_rows, -1, -1, -1), v.expand(n_rows, -1, -1, -1)

        offset = max(0, first)  # logits before the first needed position are never computed
        _, logits = self._forward(
            width - offset,
            input_ids=ids.to(self.device),
            position_ids=pos.to(self.device),
            attention_mask=mask[:, None].to(self.device),
            past_key_values=cache,
            use_cache=True,
        )
        return logits, offset

    def _score_seq2seq(self, pairs: list[tuple[list[int], list[int]]], batch_size: int, bar: Any) -> list[float]:
        """Decoder log-likelihood of each continuation given its context as the encoder input."""
        import torch

        out = [0.0] * len(pairs)
        limit, pad = self.context_length, self.tokenizer.pad_token_id
        for batch in _batches([len(c) + len(o) for c, o in pairs], batch_size):
            ctxs = [pairs[b][0][-limit:] for b in batch]
            conts = [pairs[b][1] for b in batch]
            ids, mask = _pad(ctxs, pad, left=False)
            labels, _ = _pad([c or [pad] for c in conts], -100, left=False)
            logits = self.model(
                input_ids=ids.to(self.device), attention_mask=mask.to(self.device), labels=labels.to(self.device)
            ).logits
            logp = logits.float().log_softmax(-1)
            for r, b in enumerate(batch):
                if conts[r]:
                    tok = torch.tensor(conts[r], device=logp.device)
                    out[b] = logp[r, : len(conts[r])].gather(-1, tok[:, None]).sum().item()
            bar.advance(len(batch))
        return out

    # -- generation ---------------------------------------------------------------------------------

    def generate(
        self,
        prompts: Sequence[str],
        *,
        max_new_tokens: int = 64,
        stop: Sequence[str] = (),
        do_sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int = 0,
        batch_size: int | None = None,
        progress: Progress = NULL_PROGRESS,
    ) -> list[str]:
        """The text each prompt continues with: greedy unless ``do_sample``, cut before the first ``stop`` string.

        Prompts are batched with left padding. Sampling seeds torch's RNG with ``seed`` inside a forked RNG
        state, so the same call gives the same texts and the caller's random stream is left as it was.
        """
        import torch

        texts = list(prompts)
        outputs = [""] * len(texts)
        if not texts:
            return outputs
        encoded = self.encode(texts)
        room = self.context_length - (max_new_tokens if self.kind == "causal" else 0)
        encoded = [ids[-max(1, room) :] for ids in encoded]
        options: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": do_sample}
        options["pad_token_id"] = self.tokenizer.pad_token_id
        if do_sample:
            options.update(temperature=temperature, top_p=top_p, top_k=0)
        if stop:
            options.update(stop_strings=list(stop), tokenizer=self.tokenizer)
        devices = [self.device] if self.device.type == "cuda" else []
        with (
            torch.inference_mode(),
            torch.random.fork_rng(devices=devices),
            progress.bar("generating", len(texts)) as bar,
        ):
            torch.manual_seed(seed)
            for batch in _batches([len(e) for e in encoded], batch_size or self.batch_size, budget=None):
                ids, mask = _pad([encoded[b] for b in batch], self.tokenizer.pad_token_id, left=self.kind == "causal")
                new = self.model.generate(input_ids=ids.to(self.device), attention_mask=mask.to(self.device), **options)
                if self.kind == "causal":
                    new = new[:, ids.shape[1] :]
                for r, b in enumerate(batch):
                    outputs[b] = _cut(self.tokenizer.decode(new[r], skip_special_tokens=True), stop)
                bar.advance(len(batch))
        return outputs


def _cut(text: str, stop: Sequence[str]) -> str:
    ends = [text.find(s) for s in stop if s and s in text]
    return text[: min(ends)] if ends else text


def _pad(rows: list[list[int]], value: int, left: bool) -> tuple[Any, Any]:
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), value, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        span = slice(width - len(r), width) if left else slice(0, len(r))
        ids[i, span] = torch.tensor(r, dtype=torch.long)
        mask[i, span] = 1
    return ids, mask


def _batches(lengths: Sequence[int], batch_size: int, budget: int | None = _TOKEN_BUDGET) -> Iterator[list[int]]:
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


def shared_lm(spec: ModelSpec, resources: dict[str, Any]) -> LanguageModel:
    """The run's one frozen language model for ``spec``, loaded on first use."""
    key = f"lm:{spec.name}"
    if key not in resources:
        resources[key] = LanguageModel.from_spec(spec)
    return resources[key]
