"""The prompt search: seeded optuna over a space of ordinary prompts, scored on dev minibatches, under a hard budget;
resumable, reproducible, and chosen honestly.

* **Dev is cut in two** (:func:`partition`, by a seeded hash of each id, per label for classification): the
  ``search`` part, in minibatches, which every candidate is scored on, and the ``select`` part, which only the
  finalists are scored on, once each, to make the final choice — a part of dev the search never looked at.
* **Each optuna trial** asks the space for a candidate and scores it on one more minibatch it hasn't seen (the
  minibatches rotate with the trial's number); the value told to optuna is the candidate's mean over its scored
  minibatches. A candidate asked for again is scored on its next minibatch — more evidence, never the same batch
  twice. Every ``leader_every`` trials the candidate judged best (:mod:`.evidence`) is scored on all of it too.
* **The budget** (:mod:`.budget`) is checked before every scoring, with the finalists' scoring held in reserve;
  the search also stops after ``patience`` trials that scored a candidate without a better one (a trial asking for
  a candidate already scored everywhere, or for choices that can't go together, spends nothing and isn't counted).
  "Better" and the best so far are judged on the whole search part (a leader's score), never on one minibatch: the
  best of many noisy minibatch scores only rises by luck, and a patience counted on it stops a search that re-asks
  its good candidates (TPE) sooner than one that only draws new ones (random search). The counters are kept with
  each optuna trial, so a resumed search stops where an uninterrupted one would.
* **TPE, kept honest.** Minibatch scores are noisy, and TPE fitted on them can settle on a region that a lucky
  batch favoured (on SST-2, 128-256 demonstrations per class, never trying them all), doing worse than random search
  over the same choices. So every ``explore_every``-th trial is drawn at random (the interleaving SMAC uses to stay
  within a constant factor of random search), and ordered choices are asked as ranks (:func:`.space.ask_ordered`),
  so TPE learns that what works at 128 says something about 256.
* **Resuming.** The optuna study lives in ``optuna.sqlite`` and every scoring in the ledger (``search.sqlite``),
  both in the trial's folder. The sampler is made afresh for each trial, seeded by the search's seed and the number
  of trials already finished, so a resumed search asks what an uninterrupted one would have asked; a trial killed
  after its scoring was written replays that scoring from the ledger. Nothing is scored twice.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..costs.usage import Usage
from ..progress import NULL_PROGRESS, Progress
from ..types import Example, Prediction
from .budget import Budget, Cost, Spend, cost_of
from .evidence import estimates
from .ledger import Ledger, Scoring
from .partition import partition
from .space import Candidate, Space
from .trials import counters, sampler_for, tell

Score = Callable[[Candidate, Sequence[Example]], tuple[list[Prediction], Usage]]
"""Predict ``examples`` with a candidate: the predictions and what they (and building the candidate) cost."""
Metric = Callable[[Sequence[Example], Sequence[Prediction]], float]
Propose = Callable[[list[tuple[Candidate, float]], int], tuple[list[str], Usage]]
"""New instructions from the candidates scored so far and their scores (a proposer model's, asked for the n-th time
during the search), and what asking cost."""


@dataclass(frozen=True)
class Settings:
    """How the search runs (the method's options, resolved)."""

    budget: Budget
    minibatch: int = 32
    holdout: float = 0.3
    finalists: int = 3
    patience: int | None = 60
    leader_every: int = 10
    startup: int = 10
    sampler: str = "tpe"
    explore_every: int = 2  # TPE only: every this many trials one is drawn at random (0: none)
    seed: int = 0
    price: Any = None
    rounds: int = 1
    """Times a proposer is asked during the search, at equal shares of the budget (1: at half; 3: at each quarter)."""


@dataclass
class Outcome:
    """What the search found and how it got there."""

    winner: Candidate
    select_score: float
    search_score: float | None
    finalists: list[dict[str, Any]]
    trace: list[dict[str, Any]]
    spent: Cost
    trials: int
    stopped: str
    candidates: list[dict[str, Any]]
    parts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "winner": {k: getattr(self.winner, k) for k in ("method", "options", "seed", "pool")},
            "select_score": self.select_score,
            "search_score": self.search_score,
            "finalists": self.finalists,
            "spent": self.spent.to_dict(),
            "trials": self.trials,
            "stopped": self.stopped,
            "candidates": self.candidates,
            "parts": self.parts,
            "trace": self.trace,
        }


class Search:
    """One search over ``space``; see the module docstring. ``run()`` does it all."""

    def __init__(
        self,
        space: Space,
        score: Score,
        metric: Metric,
        dev: Sequence[Example],
        settings: Settings,
        workdir: Path,
        stratify: bool,
        progress: Progress = NULL_PROGRESS,
        before: Cost | None = None,
        invalid: tuple[type[Exception], ...] = (),
        propose: Propose | None = None,
    ) -> None:
        self.space, self.score_fn, self.metric, self.dev, self.settings = space, score, metric, list(dev), settings
        self.workdir, self.progress = workdir, progress
        self.batches, self.select = partition(self.dev, settings.holdout, settings.minibatch, settings.seed, stratify)
        if not self.batches or not self.select:
            raise ValueError(
                f"dev has {len(self.dev)} examples: too few to keep {settings.holdout:.0%} for the final choice and "
                f"search on minibatches of {settings.minibatch}"
            )
        self.finalists = settings.finalists
        if settings.budget.unit == "evaluations":  # the finalists may take at most half the budget
            each = self._select_batches()
            fit = int(0.5 * settings.budget.limit // each)
            if fit < 1:
                raise ValueError(
                    f"a budget of {settings.budget.limit:g} evaluations can't pay for scoring even one finalist on "
                    f"the held-out part of dev ({len(self.select)} examples, {each} evaluations) with half of it; "
                    f"raise the budget to at least {2 * each}, or lower holdout"
                )
            self.finalists = min(settings.finalists, fit)
        self.ledger = Ledger(workdir / "search.sqlite")
        self.candidates: dict[str, Candidate] = {}
        for key, c in self.ledger.candidates().items():
            self.candidates[key] = Candidate(c["method"], c["options"], c["seed"], c["pool"])
        self.before = before or Cost()  # spent before the first scoring (a proposer's calls)
        self.invalid = invalid  # what building a candidate raises for choices that can't go together
        self.propose, self.grown = propose, 0  # proposer rounds done (asked, or read back from the ledger)
        self.spend = Spend(settings.budget, self.before + self.ledger.spent())
        self.trace: list[dict[str, Any]] = []
        self._bar: Any = None
        self.best = float("-inf")
        for row in self.ledger.scorings():
            self._traced(row)

    # -- scoring ---------------------------------------------------------------------------------------------
    def _expected(self, n_examples: int, batches: int) -> Cost:
        """What scoring ``n_examples`` is expected to cost: exact in evaluations, else the mean so far per example."""
        done = [r for r in self.ledger.scorings() if r.part != "propose"]
        seen = sum(r.n for r in done)
        spent = sum((r.cost for r in done), Cost())
        per = (lambda total: total * n_examples / seen) if seen else (lambda total: 0)
        return Cost(
            batches,
            int(per(spent.calls)),
            int(per(spent.input_tokens)),
            int(per(spent.output_tokens)),
            per(spent.money),
        )

    def _score(self, c: Candidate, part: str, batch: int, trial: int | None, lead: int | None = None) -> Scoring | None:
        """Score ``c`` on a batch (None: the budget doesn't allow it). Writes the ledger and the trace."""
        idx = self.batches[batch] if part == "search" else self.select
        n_batches = 1 if part == "search" else self._select_batches()
        if part == "search":  # keep back what scoring the finalists on the select part is expected to cost
            select = self._expected(len(self.select), self._select_batches())
            self.spend.reserve = float(getattr(select, self.settings.budget.unit)) * self.finalists
        # a new bootstrapped candidate first answers a sample of train without demonstrations: expected too
        building = 0
        if c.pool == "bootstrapped" and c.key not in self.candidates:
            building = self.space.bootstrap(c).sample
        if not self.spend.allows(self._expected(len(idx) + building, n_batches), reserved=part == "search"):
            return None
        examples = [self.dev[i] for i in idx]
        preds, usage = self.score_fn(c, examples)  # a candidate whose choices can't go together raises here
        if c.key not in self.candidates:
            self.candidates[c.key] = c
            self.ledger.add_candidate(c.key, c.method, c.options, c.seed, c.pool)
        cost = cost_of(usage, n_batches, self.settings.price)
        row = self.ledger.add(
            c.key,
            part,
            batch,
            trial,
            self.metric(examples, preds),
            [p.label for p in preds],
            [p.output for p in preds],
            cost,
            lead,
        )
        self.spend.add(cost)
        self._traced(row)
        if self._bar is not None and self.settings.budget.unit != "money":
            spent = getattr(cost, self.settings.budget.unit)
            self._bar.advance(int(self.spend.used()) - int(self.spend.used() - spent))
        return row

    def _select_batches(self) -> int:
        """The select part in evaluations: its size in minibatches."""
        return max(1, round(len(self.select) / self.settings.minibatch))

    def _traced(self, row: Scoring) -> None:
        if row.part == "search":  # best so far: on the whole search part, not one lucky minibatch
            whole = self.whole(row.key, upto=row.step)
            if whole is not None:
                self.best = max(self.best, whole)
        spent = (Cost.from_dict(self.trace[-1]["spent"]) if self.trace else self.before) + row.cost
        self.trace.append(
            {
                "step": row.step,
                "candidate": list(self.candidates).index(row.key) if row.key in self.candidates else None,
                "part": row.part,
                "batch": row.batch,
                "metric": row.metric,
                "best_so_far": self.best if self.best > float("-inf") else None,
                "cost": row.cost.to_dict(),
                "spent": spent.to_dict(),
            }
        )

    def mean(self, key: str) -> float:
        """A candidate's mean metric over the search minibatches it was scored on (weighted by their sizes)."""
        rows = self.ledger.scorings(key, "search")
        n = sum(r.n for r in rows)
        return sum(r.metric * r.n for r in rows) / n if n else float("-inf")

    def whole(self, key: str, part: str = "search", upto: int | None = None) -> float | None:
        """A candidate's metric on the whole search part (or select part), when it was scored on all of it (by the
        ledger's step ``upto``, when given: a resumed search's trace reads as it was written)."""
        rows = [r for r in self.ledger.scorings(key, part) if upto is None or r.step <= upto]
        idx = [
            i
            for r in sorted(rows, key=lambda r: r.batch)
            for i in (self.batches[r.batch] if part == "search" else self.select)
        ]
        want = sum(len(b) for b in self.batches) if part == "search" else len(self.select)
        if len(idx) != want:
            return None
        labels = [lb for r in sorted(rows, key=lambda r: r.batch) for lb in r.labels]
        outputs = [o for r in sorted(rows, key=lambda r: r.batch) for o in r.outputs]
        examples = [self.dev[i] for i in idx]
        preds = [Prediction(ex.id, out, lb) for ex, lb, out in zip(examples, labels, outputs)]
        return self.metric(examples, preds)

    def _next_batch(self, key: str, finished: int) -> int | None:
        """The minibatch a candidate sees next: the first unscored one from the trial's place in the rotation."""
        seen = {r.batch for r in self.ledger.scorings(key, "search")}
        n = len(self.batches)
        for j in range(n):
            b = (finished + j) % n
            if b not in seen:
                return b
        return None

    def leader(self, finished: int) -> str:
        """The candidate to score on the rest of the search part after ``finished`` trials (if not done already): the
        one under way when the search was killed, else the best by estimate (:mod:`.evidence`), earliest on ties."""
        if (leader := self.ledger.leader(finished)) is not None:
            return leader
        scores = {k: [r.metric for r in self.ledger.scorings(k, "search")] for k in self.candidates}
        est = estimates(scores, {k: c.method for k, c in self.candidates.items()})
        return max(self.candidates, key=est.__getitem__)  # in order first scored: ties go to the earliest

    def _lead(self, finished: int) -> None:
        """Score the leader (:meth:`leader`) on the rest of the search part."""
        leader = self.leader(finished)
        while (b := self._next_batch(leader, 0)) is not None:
            if self._score(self.candidates[leader], "search", b, None, lead=finished) is None:
                return

    def _due(self) -> bool:
        """Whether the proposer's next round is due: at each of ``rounds`` equal shares of the budget."""
        if self.propose is None or self.grown >= self.settings.rounds:
            return False
        return self.spend.used() >= self.settings.budget.limit * (self.grown + 1) / (self.settings.rounds + 1)

    def _grow(self) -> None:
        """The proposer's next round: new instructions, shown the candidates scored so far with their scores (OPRO's
        loop). Each round is asked once; a resumed search reads the rounds it had from the ledger, in order."""
        asked = self.ledger.scorings(part="propose")
        if len(asked) > self.grown:
            texts = asked[self.grown].outputs
        else:
            history = [(c, self.mean(k)) for k, c in self.candidates.items()]
            texts, usage = self.propose(history, self.grown)
            cost = cost_of(usage, 0, self.settings.price)
            row = self.ledger.add("", "propose", self.grown, None, 0.0, [], list(texts), cost)  # batch: the round
            self.spend.add(cost)
            self._traced(row)
        self.grown += 1
        self.space.grow(texts)

    # -- the search ------------------------------------------------------------------------------------------
    def run(self) -> Outcome:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(
            study_name="prompt-search",
            storage=f"sqlite:///{(self.workdir / 'optuna.sqlite').resolve()}",
            direction="maximize",
            load_if_exists=True,
        )
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            study.tell(t.number, state=optuna.trial.TrialState.FAIL)  # killed mid-trial: replayed below
        finished = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
        failed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
        refused = sum(1 for t in failed if t.user_attrs.get("refused"))  # candidates the budget had no room for
        if not study.trials:
            for params in self.space.initial():
                study.enqueue_trial(params)
        if finished and finished % self.settings.leader_every == 0 and self.ledger.of_trial(finished) is None:
            self._lead(finished)  # killed while scoring the leader (or just before): finish as it would have
        stopped, (stale, idle, best_seen, in_row) = "budget", counters(study, self.best)
        unit_total = int(self.settings.budget.limit) if self.settings.budget.unit != "money" else None
        with self.progress.bar(f"prompt search ({self.settings.budget.unit})", unit_total) as bar:
            bar.advance(int(self.spend.used()) if unit_total else 0)
            self._bar = bar
            while True:
                if self.settings.patience is not None and stale >= self.settings.patience:
                    stopped = "patience"
                    break
                if idle >= 200:  # the space is exhausted: every candidate asked for was scored on every batch
                    stopped = "exhausted"
                    break
                while self._due():
                    self._grow()
                s = self.settings
                study.sampler = sampler_for(s.sampler, s.seed, finished + refused, s.startup, s.explore_every)
                trial = study.ask()
                c = self.space.build(self.space.suggest(trial))
                row = self.ledger.of_trial(finished)
                if row is None or row.key != c.key:
                    batch = self._next_batch(c.key, finished)
                    if batch is None:  # scored on every minibatch already: nothing new to learn, nothing spent
                        finished, idle = finished + 1, idle + 1
                        tell(study, trial, self.mean(c.key), stale, idle, best_seen)
                        continue
                    try:
                        row = self._score(c, "search", batch, finished)
                    except self.invalid:  # choices that can't go together: the worst value, nothing spent
                        finished, idle = finished + 1, idle + 1
                        tell(study, trial, -1.0, stale, idle, best_seen)
                        continue
                    if row is None:  # no room for this one: another, cheaper candidate may still fit
                        trial.set_user_attr("refused", True)
                        study.tell(trial, state=optuna.trial.TrialState.FAIL)
                        refused, in_row = refused + 1, in_row + 1
                        if in_row >= 10:
                            break
                        continue
                    in_row = 0
                finished, idle = finished + 1, 0
                stale = 0 if self.best > best_seen else stale + 1  # patience counts the trials that scored
                best_seen = max(best_seen, self.best)
                tell(study, trial, self.mean(c.key), stale, idle, best_seen)
                if finished % self.settings.leader_every == 0:
                    self._lead(finished)
            self.spend.reserve = 0.0  # what was kept back is the finalists' to spend
            finalists = self._finalists()
            self._bar = None
        return self._outcome(finalists, finished, stopped)

    def _finalists(self) -> list[str]:
        """The finalists (the best on the whole search part, then by mean), each scored on the select part."""
        first = {k: c["first_step"] for k, c in self.ledger.candidates().items()}

        def rank(key: str) -> tuple:
            whole = self.whole(key)
            return (whole is None, -(whole if whole is not None else self.mean(key)), first[key])

        chosen = sorted(self.candidates, key=rank)[: self.finalists]
        scored = []
        for key in chosen:
            if self.whole(key, "select") is not None or self._score(self.candidates[key], "select", 0, None):
                scored.append(key)
        if not scored:
            raise RuntimeError("the budget left nothing to score a finalist on the select part; raise the budget")
        return scored

    def _outcome(self, finalists: list[str], trials: int, stopped: str) -> Outcome:
        first = {k: c["first_step"] for k, c in self.ledger.candidates().items()}
        order = sorted(finalists, key=lambda k: (-(self.whole(k, "select") or 0.0), -self.mean(k), first[k]))
        win = order[0]
        return Outcome(
            winner=self.candidates[win],
            select_score=float(self.whole(win, "select") or 0.0),
            search_score=self.whole(win),
            finalists=[
                {
                    "candidate": list(self.candidates).index(k),
                    "method": self.candidates[k].method,
                    "options": self.candidates[k].options,
                    "seed": self.candidates[k].seed,
                    "search_mean": self.mean(k),
                    "search_whole": self.whole(k),
                    "select": self.whole(k, "select"),
                }
                for k in order
            ],
            trace=self.trace,
            spent=self.spend.spent,
            trials=trials,
            stopped=stopped,
            candidates=[{"method": c.method, "options": c.options, "seed": c.seed} for c in self.candidates.values()],
            parts={
                "search": sum(len(b) for b in self.batches),
                "minibatches": len(self.batches),
                "select": len(self.select),
            },
        )
