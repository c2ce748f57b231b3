"""`prompt-search` (prompt route): automatic prompt engineering under a hard budget.

Searches, on train and dev only, the prompts a person would otherwise write by hand:

* for a sentence encoder, the zero-shot template (hand-written ones and phrase-level edits of them), the label
  descriptions, and the few-shot demonstrations (how many per class, how chosen, which draw, how an input is
  classified) — candidates are `zero-shot` and `few-shot` prompts;
* for a generative model (local or served), the instruction (hand-written, edited, and proposed by a `proposer:`
  model when one is given), output format, answer prefix, verbalizers, and demonstrations (how many, how chosen,
  which draw, in what order) — candidates are `prompt` prompts;

with seeded optuna (TPE, or random search for comparison) over dev minibatches, a budget in evaluations, calls,
tokens or money, and the final choice made on a part of dev the search never used (:mod:`tailor.search`). The
winner is an ordinary prompt: it is saved, reloaded by `tailor predict` and read exactly like one written by hand,
and the trace of every candidate scored is kept with the trial.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, ValidationError

from ..config.saved import validated
from ..config.task import ModelSpec
from ..contract import Adapted, AdaptReport, Context, MethodOptions, SavedAs
from ..costs.usage import Usage, total
from ..errors import MethodError
from ..prompting import PROMPT_FILE, PromptAdapted, compile_template, read_prompt
from ..search.budget import Budget, Cost, cost_of
from ..search.proposer import check_proposer, propose
from ..search.searcher import Search, Settings
from ..search.space import Candidate, EncoderSpace, Space
from ..search.space_lm import GenerativeSpace
from ..stats.metrics import METRICS, point
from ..stats.outcomes import gold_and_pred
from ..types import Example, Prediction, Split
from .few_shot import FewShot
from .prompt import Prompt
from .zero_shot import ZeroShot

# The ordinary prompt methods a search's candidates are (its winner is exported as one of them).
PROMPTS: dict[str, Any] = {"zero-shot": ZeroShot(), "few-shot": FewShot(), "prompt": Prompt()}


class PromptSearchOptions(MethodOptions):
    budget: Budget = Field(default_factory=lambda: Budget(evaluations=300))
    """The hard limit: exactly one of `evaluations` (candidate scorings on one dev minibatch), `calls`, `tokens` or
    `money` (served models, at their `price:`); e.g. `{evaluations: 300}`."""
    templates: list[str] = Field(default_factory=lambda: ["{{ text }}"], min_length=1)
    """Encoders: hand-written zero-shot templates to start from (`{{ text }}` or any input field); edits are added."""
    label_descriptions: dict[str, str | list[str]] | None = None
    """Encoders: hand-written label descriptions to start from; patterns over the label names are added."""
    forms: list[Literal["zero-shot", "few-shot"]] = Field(
        default_factory=lambda: ["zero-shot", "few-shot"], min_length=1
    )
    """Encoders: which prompts to search: zero-shot (template and label descriptions), few-shot (demonstrations)."""
    instructions: list[str] = Field(default_factory=list)
    """Generative models: hand-written instructions to start from (with `prompt.instruction`); edits are added."""
    prompt: dict[str, Any] = Field(default_factory=dict)
    """Generative models: the `prompt` method's options to start from and keep (input template, mode, scoring, `k`,
    verbalizers…); the search varies instruction, output format, answer prefix, verbalizers and demonstrations."""
    proposer: ModelSpec | None = None
    """Generative models: a model (any backend, served ones included) that proposes instructions from the task, a
    few training examples and the instructions scored so far; its calls count against the budget."""
    proposals: int = Field(8, ge=0)
    """Instructions asked of the proposer before the search (each shown its own draw of training examples), and as
    many again in each of its `propose_rounds`, shown the instructions scored so far with their scores."""
    propose_rounds: int = Field(1, ge=0)
    """Times the proposer is asked again during the search, at equal shares of the budget (1: at half; 3: at a
    quarter, half and three quarters; 0: only before it), each time shown the instructions scored so far."""
    edits: int = Field(16, ge=0)
    """Phrase-level edits of the hand-written templates or instructions (delete, swap, add, paraphrase) added."""
    draws: int = Field(4, ge=1)
    """Random draws of demonstrations tried for each way of choosing them."""
    minibatch: int = Field(32, ge=4)
    """Dev examples per minibatch a candidate is scored on."""
    holdout: float = Field(0.3, gt=0, lt=1)
    """Share of dev kept out of the search, on which the finalists alone are scored for the final choice."""
    finalists: int = Field(3, ge=1)
    """Candidates scored on the held-out part of dev at the end; the best there wins. With a budget in evaluations
    they take at most half of it (fewer finalists when a small budget can't pay for them all)."""
    patience: int | None = Field(60, ge=1)
    """Stop after this many trials that scored a candidate without a better score on the whole search part (a
    leader's); trials that spend nothing don't count (null: only the budget stops the search)."""
    leader_every: int = Field(10, ge=1)
    """Every this many trials, the best candidate so far is scored on the whole search part of dev."""
    startup: int = Field(10, ge=0)
    """TPE's random trials before it models what works."""
    sampler: Literal["tpe", "random"] = "tpe"
    """optuna's seeded TPE, or seeded random search over the same choices (the baseline to beat)."""
    explore_every: int = Field(2, ge=0)
    """TPE: every this many trials one is drawn at random instead (interleaved random search, as SMAC does), so a
    model fitted on noisy minibatch scores can't lock the search into one region; 0: none."""


@dataclass
class SearchWinner:
    """The search's winning prompt (an ordinary zero-shot, few-shot or prompt adapted model, which predicts and
    saves), with what the search cost and found. ``saved_as`` tells the runner to save it as that ordinary prompt."""

    prompt: Adapted
    saved_as: SavedAs
    details: dict[str, Any]
    """The search's record (``search``: its winner, finalists, trace and spending)."""
    adapt_usage: Usage
    """Everything the search spent, building and scoring candidates included."""

    @property
    def trainable_params(self) -> int:
        return int(self.prompt.trainable_params)

    @property
    def truncated(self) -> int | None:
        return self.prompt.truncated

    def adapt_report(self) -> AdaptReport:
        """The winner's own report (its prompt as used, its demonstrations), with what the whole search cost."""
        winner = self.prompt.adapt_report()
        return AdaptReport(
            usage=self.adapt_usage,
            examples_used=winner.examples_used or 0,  # the winner's demonstrations; none for zero-shot
            details={**winner.details, **self.details},
            saved_as=self.saved_as,
        )

    def predict(self, examples: Sequence[Example]) -> list[Prediction]:
        return self.prompt.predict(examples)

    def save(self, path: Path) -> None:
        self.prompt.save(path)


class CandidateScorer:
    """Builds candidates (each once) and predicts with them; the usage includes building."""

    def __init__(self, train: Split, ctx: Context, space: Space) -> None:
        self.train, self.ctx, self.space = train, ctx, space
        self.built: dict[str, Adapted] = {}

    def build(self, c: Candidate) -> tuple[Adapted, Usage]:
        if c.key in self.built:
            return self.built[c.key], Usage()
        method = PROMPTS[c.method]
        train, building = self.train, Usage()
        if c.pool == "bootstrapped":
            train, building = self.bootstrapped(c)
        ctx = dataclasses.replace(self.ctx, seed=c.seed)
        adapted = method.adapt(method.Options(**c.options), train, None, ctx)
        if len(self.built) > 64:  # keep memory bounded: the oldest built candidate goes
            self.built.pop(next(iter(self.built)))
        self.built[c.key] = adapted
        # A budget counts what the searched model is asked: a prompt's demonstrations found by the sentence encoder
        # are not calls to it (the report's helper usage); an encoder's prompts are the encoder's own work.
        return adapted, building + adapted.adapt_report().usage

    def bootstrapped(self, c: Candidate) -> tuple[Split, Usage]:
        """The training examples the candidate's prompt without demonstrations (the space's ``bootstrap``) answers
        right, of a seeded sample or all of train, and what asking cost. Asked once per prompt: ``bootstrap.json`` in
        the trial's folder keeps the answer, so a resumed search doesn't ask again (its cost was counted with the
        candidate's first scoring)."""
        how = self.space.bootstrap(c)
        asked = how.options if how.method == "prompt" else {"method": how.method, **how.options}
        key = json.dumps(asked, sort_keys=True)
        saved = self.ctx.workdir / "bootstrap.json"
        record = json.loads(saved.read_text()) if saved.is_file() else {}
        usage = Usage()
        if key not in record:
            sample = list(self.train)
            if how.sample < len(sample):
                sample = random.Random(f"bootstrap:{c.seed}").sample(sample, how.sample)
            method = PROMPTS[how.method]
            adapted = method.adapt(method.Options(**how.options), self.train, None, self.ctx)
            preds = adapted.predict(sample)
            usage = adapted.adapt_report().usage + total(p.usage for p in preds)
            record[key] = [ex.id for ex, p in zip(sample, preds) if p.error is None and p.label == ex.label]
            saved.write_text(json.dumps(record, indent=1))
        right = set(record[key])
        chosen = tuple(ex for ex in self.train if ex.id in right)
        need = int(c.options.get("k", 0)) if c.options.get("k") != "all" else 1
        if len(chosen) < need:
            raise MethodError(
                f"bootstrapping found {len(chosen)} training examples the prompt answers right, fewer than k={need}",
                key="select",
            )
        return Split(self.train.name, chosen), usage

    def __call__(self, c: Candidate, examples: Sequence[Example]) -> tuple[list[Prediction], Usage]:
        adapted, building = self.build(c)
        before = _choosing(adapted)
        preds = adapted.predict(examples)
        choosing = _choosing(adapted) - before  # the sentence encoder's, not the model's
        return preds, building + total(p.usage for p in preds) - choosing


def _choosing(adapted: Adapted) -> Usage:
    """What choosing demonstrations per input has cost so far another model than the one searched: only a generative
    model's prompt has them chosen by the sentence encoder (a few-shot prompt on an encoder chooses with itself)."""
    return adapted.choosing_usage if isinstance(adapted, PromptAdapted) else Usage()


class PromptSearch:
    name: ClassVar[str] = "prompt-search"
    route: ClassVar[str] = "prompt"
    summary: ClassVar[str] = (
        "Automatic prompt search under a hard budget (templates, label descriptions, demonstrations); "
        "the winner is an ordinary prompt."
    )
    Options: ClassVar[type[PromptSearchOptions]] = PromptSearchOptions
    task_kinds: ClassVar[frozenset[str]] = frozenset({"classification", "qa", "summarization", "translation"})
    model_kinds: ClassVar[frozenset[str]] = frozenset({"encoder", "causal", "seq2seq", "scripted", "endpoint"})
    shares_model: ClassVar[bool] = True
    files: ClassVar[tuple[str, ...]] = (PROMPT_FILE,)  # its winner's, which says which prompt it is

    def uses_examples(self, options: PromptSearchOptions) -> bool:
        """Whether it may search demonstrations; a search without them runs at a learning curve's size 0 only."""
        return "few-shot" in options.forms

    def check(self, options: PromptSearchOptions, train: Split, ctx: Context) -> None:
        if ctx.models.kind(ctx.model) != "encoder":
            try:
                base = Prompt.Options(**options.prompt)
            except ValidationError as exc:
                raise MethodError(f"not valid options of the prompt method: {exc}", key="prompt") from None
            Prompt().check(base, train, ctx)
            if options.proposer is not None:
                check_proposer(ctx.models, options.proposer)
            return
        if ctx.task.kind != "classification":
            raise MethodError("on a sentence encoder, prompt-search handles classification only", key="name")
        ZeroShot().check(
            ZeroShot.Options(templates=options.templates, label_descriptions=options.label_descriptions), train, ctx
        )
        if options.budget.money is not None and ctx.model.price is None:
            raise MethodError("a budget in money needs the model's `price:` (served models)", key="budget.money")
        if options.forms == ["few-shot"] and not len(train):
            raise MethodError("a few-shot search needs training examples; train is empty", key="forms")

    def variants(self, options: PromptSearchOptions) -> dict[str, PromptSearchOptions]:
        return {"": options}

    def adapt(self, options: PromptSearchOptions, train: Split, dev: Split | None, ctx: Context) -> SearchWinner:
        if dev is None or not len(dev):
            raise MethodError("prompt-search scores its candidates on dev: the task needs a dev split", key="name")
        space, spent = self._space(options, train, dev, ctx)
        settings = Settings(
            budget=options.budget,
            minibatch=options.minibatch,
            holdout=options.holdout,
            finalists=options.finalists,
            patience=options.patience,
            leader_every=options.leader_every,
            startup=options.startup,
            sampler=options.sampler,
            explore_every=options.explore_every,
            seed=ctx.seed,
            price=ctx.model.price,
            rounds=options.propose_rounds,
        )
        task = ctx.task
        metric_name = task.primary_metric

        def metric(examples: Sequence[Example], preds: Sequence[Prediction]) -> float:
            scored = [(ex, p) for ex, p in zip(examples, preds) if p.error is None]  # a failed query is no answer
            gold, pred = gold_and_pred(task.kind, [ex for ex, _ in scored], [p for _, p in scored])
            return float(point(METRICS[metric_name].prepare(gold, pred, task.labels)))

        scorer = CandidateScorer(train, ctx, space)
        # an encoder's embeddings are cached apart from the run's: the search pays for its own, and only once
        private = ctx.backend().private_cache if isinstance(space, EncoderSpace) else contextlib.nullcontext
        with private():
            try:
                search = Search(
                    space,
                    scorer,
                    metric,
                    dev.examples,
                    settings,
                    ctx.workdir,
                    task.kind == "classification",
                    ctx.progress,
                    spent,
                    (MethodError,),
                    self._midway(options, train, ctx) if isinstance(space, GenerativeSpace) else None,
                )
            except ValueError as exc:
                raise MethodError(str(exc), key="budget" if "budget" in str(exc) else "holdout") from None
            try:
                outcome = search.run()
            finally:
                search.ledger.close()
            winner, _ = scorer.build(outcome.winner)
        method = PROMPTS[outcome.winner.method]
        return SearchWinner(
            winner,
            SavedAs(outcome.winner.method, method.Options(**outcome.winner.options), outcome.winner.seed),
            {"search": {**outcome.to_dict(), "space": space.describe(), "metric": metric_name}},
            outcome.spent.usage(),
        )

    def _space(self, options: PromptSearchOptions, train: Split, dev: Split, ctx: Context) -> tuple[Space, Cost]:
        """The space to search for this model, and what making it cost (the proposer's calls)."""
        fields, task = ctx.task.input_fields, ctx.task
        sample = train.examples[0] if len(train) else dev.examples[0]

        def renders(source: str) -> bool:
            try:
                compile_template(source, "template", fields).render_example(sample)
            except Exception:
                return False
            return True

        if ctx.models.kind(ctx.model) == "encoder":
            assert task.labels is not None
            labels = [ex.label for ex in train]
            space = EncoderSpace(
                options.templates,
                options.label_descriptions,
                task.labels,
                labels,
                options.forms,
                options.edits,
                options.draws,
                ctx.seed,
                renders,
            )
            return space, Cost()
        proposals, spent = self._proposals(options, train, ctx)
        space_lm = GenerativeSpace(
            options.prompt,
            options.instructions,
            proposals,
            task.labels,
            len(train),
            options.edits,
            options.draws,
            ctx.seed,
            renders,
            task.kind,
            options.prompt.get("chat", "auto") == "chat"
            or (options.prompt.get("chat", "auto") == "auto" and ctx.capabilities().chat),
        )
        return space_lm, spent

    def _midway(self, options: PromptSearchOptions, train: Split, ctx: Context) -> Any:
        """During the search, the proposer is shown the instructions scored so far with their scores and asked for
        more (OPRO's loop, ``propose_rounds`` times); None without a proposer."""
        if options.proposer is None or not options.proposals:
            return None
        task = ctx.task

        def ask(history: list[tuple[Candidate, float]], round_: int) -> tuple[list[str], Usage]:
            best: dict[str, float] = {}
            for c, score in history:
                text = c.options.get("instruction", "")
                if text:
                    best[text] = max(best.get(text, float("-inf")), score)
            scored = sorted(best.items(), key=lambda kv: -kv[1])
            proposer = ctx.models.get(options.proposer)
            seed = ctx.seed + 1 + round_  # each round its own draw of training examples
            return propose(proposer, task.name, task.kind, task.labels, list(train), options.proposals, seed, scored)

        return ask

    def _proposals(self, options: PromptSearchOptions, train: Split, ctx: Context) -> tuple[list[str], Cost]:
        """The proposer's instructions, asked once: a resumed search reads them back from the trial's folder."""
        if options.proposer is None or not options.proposals:
            return [], Cost()
        saved = ctx.workdir / "proposals.json"
        if saved.is_file():
            record = json.loads(saved.read_text())
            return record["proposals"], Cost.from_dict(record["cost"])
        proposer = ctx.models.get(options.proposer)
        texts, usage = propose(
            proposer, ctx.task.name, ctx.task.kind, ctx.task.labels, list(train), options.proposals, ctx.seed
        )
        cost = cost_of(usage, 0, options.proposer.price)
        saved.write_text(json.dumps({"proposals": texts, "cost": cost.to_dict()}, indent=2))
        return texts, cost

    def load(self, options: PromptSearchOptions, path: Path, ctx: Context) -> Adapted:
        """A winner saved by hand-rolled code rather than the runner (whose adapted.json names the ordinary prompt
        method, which `tailor predict` then loads it with): its prompt.json says which prompt it is."""
        saved = read_prompt(path)
        method = PROMPTS[saved.method]
        known = f"options of {saved.method}: " + ", ".join(method.Options.model_fields)
        winner = validated(saved.options, method.Options, str(path / PROMPT_FILE), at="options", known=known)
        return method.load(winner, path, dataclasses.replace(ctx, seed=saved.seed))
