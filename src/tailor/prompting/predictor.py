"""The prompt route's predictor: prompts in, predictions out, through a generative backend and nothing else.

:class:`PromptAdapted` builds each example's prompt — chat messages when the model takes chat (and the options
allow it), else one completion string — and asks the backend (:class:`~tailor.backends.protocol.GenerativeBackend`)
to ``render`` it (the text stored beside the prediction), to ``score`` each label's verbalizers as continuations
(classification, ``mode: score``) or to ``generate`` an answer. ``count_tokens`` and the context length are used
only to fit prompts into the context, when the backend has a local tokenizer. Every prediction carries the
:class:`~tailor.costs.usage.Usage` of its query.

The same predictor serves prompting (``prompt``) and every generative fine-tuning method, whose backend is a
:class:`~tailor.backends.local.lm.LanguageModel` holding the trained model: a fine-tuned model is asked at inference
exactly what it was trained on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..backends.protocol import GenerationSettings, PromptInput
from ..contract import AdaptReport
from ..costs.usage import NO_USAGE, Usage, total
from ..errors import MethodError
from ..types import Example, Prediction
from .demos import DemoPool, order_demos, similar_demos
from .parts import CompiledPrompt, PromptOptions, answer_text, resolved_mode
from .record import UsedPrompt, prompt_details, save_prompt

CONTENT_FREE = ("N/A", "", "[MASK]")
"""The content-free inputs calibration measures a prompt's own bias with (Zhao et al. 2021)."""


def parse_label(text: str, verbalizers: dict[str, list[str]]) -> str | None:
    """The label whose verbalizer the output starts with (case-insensitive), or None: an invalid output."""
    first = text.strip().splitlines()[0].strip().lower() if text.strip() else ""
    best, best_len = None, 0
    for label, words in verbalizers.items():
        for w in words:
            w = w.strip().lower()
            if (
                w
                and first.startswith(w)
                and (len(first) == len(w) or not first[len(w)].isalnum())
                and len(w) > best_len
            ):
                best, best_len = label, len(w)
    return best


def shorten_to_fit(
    ex: Example, render: Callable[[Example], str], count_tokens: Callable[[str], int], limit: int
) -> tuple[Example, str]:
    """``ex`` with its longest input field cut by a tenth at a time until its prompt is at most ``limit``
    tokens (40 cuts at most), and that prompt. The instruction and template are never cut."""
    prompt = render(ex)
    for _ in range(40):
        if count_tokens(prompt) <= limit:
            break
        longest = max(ex.inputs, key=lambda f: len(ex.inputs[f]))
        text = ex.inputs[longest]
        ex = Example(ex.id, {**ex.inputs, longest: text[: int(len(text) * 0.9)]}, ex.target, ex.source)
        prompt = render(ex)
    return ex, prompt


def _log_softmax(x: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax."""
    m = x.max(axis=1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


@dataclass
class PromptAdapted:
    """A prompt (parts, demonstrations, verbalizers, calibration) over a generative backend.

    Attributes:
        lm: The generative backend (a :class:`~tailor.backends.protocol.GenerativeBackend`).
        demos: The fixed demonstrations, or the pool each input's own are chosen from (``pool_embeddings`` set).
        encoder: The sentence encoder (an :class:`~tailor.backends.protocol.EncoderBackend`) choosing per-input
            demonstrations.
        bias: Calibration: the content-free log-probabilities of each label.
        calibration_usage: What adapting asked of the prompted model: the calibration queries.
        pool_usage: What adapting asked of the sentence encoder: embedding the demonstration pool.
        truncated: Inputs shortened to fit the context (``truncate: true``) while predicting, so far; the runner
            reports its change over each split.
    """

    lm: Any
    prompt: CompiledPrompt
    options: PromptOptions
    kind: str
    verbalizers: dict[str, list[str]] | None
    demos: list[Example] = field(default_factory=list)
    pool_embeddings: np.ndarray | None = None
    encoder: Any = None
    bias: np.ndarray | None = None
    trainable_params: int = 0
    calibration_usage: Usage = NO_USAGE
    pool_usage: Usage = NO_USAGE
    choosing_usage: Usage = NO_USAGE
    """A running total of what choosing demonstrations per input cost the sentence encoder while predicting (part of
    each prediction's usage, but not a call to the prompted model: a prompt search's budget leaves it out)."""
    truncated: int = 0
    seed: int = 0
    """The trial's seed: sampled answers (``do_sample``) depend on it, and a served model's cache key with them."""

    @property
    def use_chat(self) -> bool:
        """Whether prompts are sent as chat messages."""
        chat = self.prompt.parts.chat
        return chat == "chat" or (chat == "auto" and self.lm.capabilities.chat)

    @property
    def mode(self) -> str:
        """How a classification is answered: score, first-token, choice or generate (``auto`` resolved)."""
        return resolved_mode(self.options.mode, self.lm.capabilities)

    @property
    def generates(self) -> bool:
        """Whether the model writes its answer freely (generation tasks, ``mode: generate``)."""
        return self.kind != "classification" or self.mode == "generate"

    # -------------------------------------------------------------------------------------- prompts

    def _demos_for(self, examples: Sequence[Example]) -> tuple[list[list[Example]], list[Usage]]:
        """Each example's demonstrations, and what choosing them cost (embedding the input, when per input)."""
        o = self.options
        if o.k == 0:
            return [[] for _ in examples], [NO_USAGE] * len(examples)
        if self.pool_embeddings is None:
            return [[d for d in self.demos if d.text != ex.text] for ex in examples], [NO_USAGE] * len(examples)
        pool = DemoPool(self.demos, self.pool_embeddings)
        texts = [ex.text for ex in examples]
        queries = self.encoder.embed(texts)
        out = []
        for q, ex in zip(queries, examples):
            idx = similar_demos(q, ex.text, pool, o.k, o.select, o.mmr_lambda)
            chosen = [self.demos[i] for i in idx]
            sims = [float(self.pool_embeddings[i] @ q) for i in idx]
            out.append(order_demos(chosen, o.demo_order, 0, sims))
        return out, list(self.encoder.usage_of(texts))

    def _build(self, examples: Sequence[Example]) -> tuple[list[PromptInput], list[Usage]]:
        demos, usage = self._demos_for(examples)
        chat = self.use_chat
        prompts = []
        for ex, ds in zip(examples, demos):
            pairs = [(d, answer_text(d, self.kind, self.verbalizers)) for d in ds]
            prompts.append(self.prompt.build(ex, pairs, chat))
        return prompts, usage

    def prompts(self, examples: Sequence[Example]) -> list[PromptInput]:
        """Each example's prompt as sent to the backend: chat messages or a completion string."""
        return self._build(examples)[0]

    def render(self, examples: Sequence[Example]) -> list[str]:
        """Each example's prompt as the text the model reads (the chat template applied)."""
        return [self.lm.render(p) for p in self.prompts(examples)]

    def _fit_context(
        self, examples: list[Example], prompts: list[PromptInput], texts: list[str]
    ) -> tuple[list[Example], list[PromptInput], list[str]]:
        """Prompts longer than the context refused (naming the examples), or their inputs shortened (``truncate``).

        Only a backend with a local tokenizer can tell before sending; any other refuses over-long prompts itself.
        """
        caps = self.lm.capabilities
        if not caps.local_tokenizer or caps.context_length is None:
            return examples, prompts, texts
        budget = (
            self.options.max_new_tokens
            if self.generates
            else max(self.lm.count_tokens(v) for vs in (self.verbalizers or {}).values() for v in vs)
        )
        limit = caps.context_length - budget
        too_long = [i for i, t in enumerate(texts) if self.lm.count_tokens(t) > limit]
        if not too_long:
            return examples, prompts, texts
        if not self.options.truncate:
            ids = ", ".join(examples[i].id for i in too_long[:10]) + (" …" if len(too_long) > 10 else "")
            raise MethodError(
                f"{len(too_long)} prompts are longer than the model's context ({caps.context_length} "
                f"tokens with {budget} for the answer): {ids}; shorten the prompt or set truncate: true",
                key="truncate",
            )
        self.truncated += len(too_long)
        for i in too_long:
            examples[i], texts[i] = shorten_to_fit(
                examples[i], lambda e: self.render([e])[0], self.lm.count_tokens, limit
            )
            prompts[i] = self.prompts([examples[i]])[0]
        return examples, prompts, texts

    # -------------------------------------------------------------------------------------- predicting

    def continuations(self) -> tuple[list[str], list[int]]:
        """Every verbalizer as the text that continues the prompt, and the label index of each."""
        assert self.verbalizers is not None
        space = "" if self.use_chat else " "
        texts, owner = [], []
        for i, words in enumerate(self.verbalizers.values()):
            for w in words:
                texts.append(space + w)
                owner.append(i)
        return texts, owner

    def label_scores(
        self, prompts: Sequence[PromptInput], scoring: str | None = None
    ) -> tuple[np.ndarray, list[Usage]]:
        """(n, labels) scores — the log-likelihood of each label's verbalizers, aggregated per label — and the
        usage of each prompt's query."""
        scores, usage, _ = self.label_scores_or_errors(prompts, scoring)
        return scores, usage

    def label_scores_or_errors(
        self, prompts: Sequence[PromptInput], scoring: str | None = None
    ) -> tuple[np.ndarray, list[Usage], list[str | None]]:
        """:meth:`label_scores`, and per prompt why it could not be scored (a served model's failed query)."""
        if self.mode == "first-token":
            return first_token_scores(self, prompts)
        scoring = scoring or self.options.scoring
        options, owner = self.continuations()
        scored = self.lm.score(prompts, options)
        logp = scored.logprobs
        if scoring == "mean":
            logp = logp / np.maximum(scored.token_counts, 1)
        n_labels = len(self.verbalizers or {})
        owner_arr = np.array(owner)
        out = np.full((len(prompts), n_labels), -np.inf)
        for j in range(n_labels):
            cols = logp[:, owner_arr == j]
            # several verbalizers of one label: the probability of saying any of them
            out[:, j] = cols.max(axis=1) + np.log(np.exp(cols - cols.max(axis=1, keepdims=True)).sum(axis=1))
        if scoring == "calibrated":
            assert self.bias is not None
            out = _log_softmax(out) - self.bias
        errors = list(scored.errors) or [None] * len(prompts)
        return out, list(scored.usage) or [NO_USAGE] * len(prompts), errors

    def settings(self) -> GenerationSettings:
        """How answers are generated: the options', with a line break as the default stop for short answers."""
        o = self.options
        stop = o.stop if o.stop is not None else (["\n"] if self.kind in ("classification", "qa") else [])
        return GenerationSettings(
            max_new_tokens=o.max_new_tokens,
            stop=tuple(stop),
            do_sample=o.do_sample,
            temperature=o.temperature,
            top_p=o.top_p,
            seed=self.seed,
        )

    def predict(self, examples: Sequence[Example]) -> list[Prediction]:
        """One prediction per example, each with its prompt's text and its query's usage (demonstration choice
        included)."""
        prompts, choosing = self._build(examples)
        self.choosing_usage += total(choosing)
        texts = [self.lm.render(p) for p in prompts]
        examples, prompts, texts = self._fit_context(list(examples), prompts, texts)
        if self.kind == "classification" and self.mode in ("score", "first-token"):
            labels = list(self.verbalizers or {})
            scores, usage, errors = self.label_scores_or_errors(prompts)
            out = []
            for ex, text, row, u, c, err in zip(examples, texts, scores, usage, choosing, errors):
                if err is not None:
                    out.append(Prediction(ex.id, "", None, None, text, u + c, err))
                    continue
                best = labels[int(np.argmax(row))]
                scored = {lb: float(s) for lb, s in zip(labels, row)}
                out.append(Prediction(ex.id, best, best, scored, text, u + c))
            return out
        if self.kind == "classification" and self.mode == "choice":
            words = [w for ws in (self.verbalizers or {}).values() for w in ws]
            answers = self.lm.choose(prompts, words)
        else:
            answers = self.lm.generate(prompts, self.settings())
        preds = []
        for ex, text, answer, c in zip(examples, texts, answers, choosing):
            usage = answer.usage + c
            if answer.error is not None:
                preds.append(Prediction(ex.id, "", None, None, text, usage, answer.error))
            elif self.kind == "classification":
                label = parse_label(answer.text, self.verbalizers or {})
                preds.append(Prediction(ex.id, answer.text, label, None, text, usage))
            else:
                preds.append(Prediction(ex.id, answer.text.strip(), None, None, text, usage))
        return preds

    # -------------------------------------------------------------------------------------- what was used

    def used_prompt(self) -> UsedPrompt:
        """The prompt as used (the demonstrations apart): what is stored with the trial and saved."""
        return UsedPrompt(
            method="prompt",
            options=self.options.model_dump(mode="json"),
            seed=self.seed,
            template=self.prompt.parts.input,
            instruction=self.prompt.parts.instruction,
            labels=list(self.verbalizers) if self.verbalizers is not None else None,
            label_words=self.verbalizers,
            calibration=self.bias[0].tolist() if self.bias is not None else None,
        )

    def adapt_report(self) -> AdaptReport:
        details = prompt_details(self.used_prompt(), self.demos)
        if self.lm.probe is not None:  # what the server was found to do, and the path taken
            mode = self.mode if self.verbalizers else "generate"
            details["endpoint"] = {"probe": self.lm.probe.to_dict(), "mode": mode}
        return AdaptReport(
            usage=self.calibration_usage,
            helper_usage=self.pool_usage,
            examples_used=len(self.demos),
            details=details,
        )

    def save(self, path: Path) -> None:
        save_prompt(path, self.used_prompt(), self.demos)


def content_free_bias(adapted: PromptAdapted, fields: Sequence[str]) -> tuple[np.ndarray, Usage]:
    """Mean label log-probabilities for content-free inputs ("N/A", "", "[MASK]"): the prompt's own bias, and
    what measuring it cost."""
    probes = [Example(f"content-free-{i}", {f: v for f in fields}) for i, v in enumerate(CONTENT_FREE)]
    prompts, choosing = adapted._build(probes)
    scores, usage = adapted.label_scores(prompts, scoring="sum")
    return _log_softmax(scores).mean(axis=0, keepdims=True), total([*usage, *choosing])


def first_token_scores(
    adapted: PromptAdapted, prompts: Sequence[PromptInput]
) -> tuple[np.ndarray, list[Usage], list[str | None]]:
    """(n, labels) scores from the top-k log-probs of the answer's first token: each label's score is the
    probability of the tokens that begin one of its verbalizers (and no other label's); a label none of whose
    first tokens is among the top k gets the smallest log-prob shown (its probability is at most that)."""
    verbalizers = adapted.verbalizers or {}
    answers = adapted.lm.first_token_logprobs(prompts, adapted.lm.capabilities.top_logprobs)
    words = {label: [w.strip().lower() for w in ws] for label, ws in verbalizers.items()}
    out = np.zeros((len(prompts), len(verbalizers)))
    for i, answer in enumerate(answers):
        top = answer.top_logprobs or {}
        floor = min(top.values()) if top else 0.0
        for j, label in enumerate(verbalizers):
            hits = []
            for token, lp in top.items():
                t = token.strip().lower()
                owners = {lb for lb, ws in words.items() if t and any(w.startswith(t) for w in ws)}
                if owners == {label}:
                    hits.append(lp)
            out[i, j] = float(np.logaddexp.reduce(hits)) if hits else floor
    return out, [a.usage for a in answers], [a.error for a in answers]


def first_token_clashes(verbalizers: dict[str, list[str]], tokenize: Callable[[str], list[int]] | None) -> list[str]:
    """Labels whose verbalizers begin with the same first token (by ``tokenize``; without a tokenizer, the same
    first word), which first-token scoring cannot tell apart."""
    firsts: dict[Any, set[str]] = {}
    for label, ws in verbalizers.items():
        for w in ws:
            if tokenize is not None:
                ids = tokenize(" " + w.strip())
                key = ids[0] if ids else None
            else:
                key = w.strip().lower().split()[0] if w.strip() else None
            firsts.setdefault(key, set()).add(label)
    return sorted({lb for labels in firsts.values() if len(labels) > 1 for lb in labels})
