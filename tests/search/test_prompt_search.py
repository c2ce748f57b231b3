"""prompt-search: phrase edits, the dev partition, the budget, a seeded and resumable search, and the winner exported
as an ordinary prompt that `tailor predict` reloads with identical predictions."""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml
from conftest import dataset_rows, task_doc, write_jsonl
from pydantic import ValidationError
from typer.testing import CliRunner

from tailor.cli.main import app
from tailor.costs.usage import Usage
from tailor.errors import MethodError
from tailor.runner.store import RunStore
from tailor.search.budget import Budget, Cost, Spend
from tailor.search.edits import PLACEHOLDER, edit, edited_pool, phrases
from tailor.search.partition import partition
from tailor.search.searcher import Search, Settings
from tailor.search.space import Candidate, EncoderSpace
from tailor.search.space_lm import GenerativeSpace
from tailor.search.trials import sampler_for
from tailor.types import Example, Prediction

# ------------------------------------------------------------------------------------------------------ edits


def test_phrases_never_cut_a_placeholder() -> None:
    parts = phrases('A critic wrote: "{{ text }}" Overall, the review is')
    assert parts == ["A critic wrote:", '"{{ text }}"', "Overall,", "the review is"]
    assert phrases("Classify the news and decide. {{ text }}") == ["Classify the news", "and decide.", "{{ text }}"]


def test_edits_keep_the_input_and_are_seeded() -> None:
    seeds = ["{{ text }}", "Movie review: {{ text }}", 'A critic wrote: "{{ text }}" Overall the review is']
    pool = edited_pool(seeds, 20, seed=3, bank=["Overall,", "Sentiment:"])
    assert [t for t, how in pool[:3]] == seeds and all(how == "given" for _, how in pool[:3])
    texts = [t for t, _ in pool]
    assert len(texts) == len(set(texts)) == 23, "twenty new, distinct texts"
    assert all(PLACEHOLDER.search(t) for t in texts), "an edit never removes the input"
    assert edited_pool(seeds, 20, seed=3, bank=["Overall,", "Sentiment:"]) == pool
    assert edited_pool(seeds, 20, seed=4, bank=["Overall,", "Sentiment:"]) != pool
    # what `keep` refuses never enters the pool
    assert all(
        "Sentiment" not in t for t, _ in edited_pool(seeds, 10, 3, ["Sentiment:"], keep=lambda t: "Sent" not in t)
    )


def test_each_kind_of_edit() -> None:
    rng = random.Random(0)
    seen = set()
    for _ in range(200):
        text, how = edit("Classify the review. {{ text }} Overall, it is", rng, ["Topic:"])
        seen.add(how.split()[0])
        assert "{{ text }}" in text
    assert seen == {"del", "swap", "add", "par"}


# ------------------------------------------------------------------------------------------ partition & budget


def _examples(n: int, labels: Sequence[str] = ("a", "b")) -> list[Example]:
    return [Example(f"e{i}", {"text": f"text {i}"}, labels[i % len(labels)]) for i in range(n)]


def test_partition_is_disjoint_stratified_and_seeded() -> None:
    dev = _examples(200)
    batches, select = partition(dev, 0.3, 16, seed=0, stratify=True)
    search = [i for b in batches for i in b]
    assert sorted(search + select) == list(range(200)) and not set(search) & set(select)
    assert len(select) == 60 and sum(dev[i].label == "a" for i in select) == 30
    assert all(len(b) == 16 for b in batches[:-1]) and 8 <= len(batches[-1]) < 24
    assert partition(dev, 0.3, 16, seed=0, stratify=True) == (batches, select)
    assert partition(dev, 0.3, 16, seed=1, stratify=True)[1] != select
    # a short last minibatch joins the one before it: 13 search examples in batches of 4 are 4, 4 and 5
    batches, select = partition(_examples(19), 0.3, 4, seed=0, stratify=True)
    assert [len(b) for b in batches] == [4, 4, 5] and len(select) == 6


def test_budget_takes_exactly_one_unit() -> None:
    with pytest.raises(ValidationError, match="exactly one budget unit"):
        Budget()
    with pytest.raises(ValidationError, match="got evaluations, calls"):
        Budget(evaluations=3, calls=10)
    spend = Spend(Budget(calls=100), Cost(calls=90), reserve=5)
    assert spend.allows(Cost(calls=5), reserved=True) and not spend.allows(Cost(calls=6), reserved=True)
    assert spend.allows(Cost(calls=10), reserved=False) and not spend.allows(Cost(calls=11), reserved=False)


# --------------------------------------------------------------------------------------- the search (no model)


class ToySpace:
    """Candidates x in 0..11 and a nuisance choice y: candidate x is right on about (x + 1) / 13 of the examples."""

    def initial(self) -> list[dict]:
        return [{"x": 0, "y": "a"}]

    def suggest(self, trial) -> dict:
        trial.suggest_categorical("x", list(range(12)))
        trial.suggest_categorical("y", ["a", "b"])
        return dict(trial.params)

    def build(self, params: dict) -> Candidate:
        return Candidate("zero-shot", {"x": params["x"], "y": params["y"]}, 0)

    def describe(self) -> dict:
        return {}


class ToyScore:
    """Counts every (candidate, example) it is asked to score; raises after ``fail_after`` calls (a kill)."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.calls: list[tuple[str, tuple[str, ...]]] = []
        self.fail_after = fail_after

    def __call__(self, c: Candidate, examples: Sequence[Example]) -> tuple[list[Prediction], Usage]:
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise KeyboardInterrupt
        self.calls.append((c.key, tuple(ex.id for ex in examples)))
        preds = []
        for ex in examples:
            label = ex.label if self.right(c, ex) else ("b" if ex.label == "a" else "a")
            preds.append(Prediction(ex.id, label, label, usage=Usage(calls=1, input_tokens=10)))
        return preds, Usage(calls=len(examples), input_tokens=10 * len(examples))

    def right(self, c: Candidate, ex: Example) -> bool:
        """The better the candidate (larger ``x``), the more examples it gets right."""
        return int(hashlib.sha256(f"{c.key}{ex.id}".encode()).hexdigest()[:6], 16) % 13 <= c.options["x"]


def _metric(examples, preds) -> float:
    return sum(p.label == ex.label for ex, p in zip(examples, preds)) / len(examples)


def _search(workdir: Path, score: ToyScore, budget: Budget, sampler: str = "tpe", seed: int = 0, progress=None):
    workdir.mkdir(exist_ok=True)
    settings = Settings(budget=budget, minibatch=16, finalists=3, patience=None, startup=5, sampler=sampler, seed=seed)
    kw = {"progress": progress} if progress is not None else {}
    return Search(ToySpace(), score, _metric, _examples(240), settings, workdir, True, **kw)


def _scored(workdir: Path) -> list[tuple]:
    db = sqlite3.connect(workdir / "search.sqlite")
    return db.execute("SELECT key, part, batch, metric FROM scoring ORDER BY step").fetchall()


@pytest.mark.slow
def test_search_spends_its_budget_and_no_more(tmp_path: Path) -> None:
    score = ToyScore()
    search = _search(tmp_path / "w", score, Budget(evaluations=60))
    outcome = search.run()
    assert outcome.spent.evaluations <= 60 and outcome.spent.evaluations >= 55
    rows = _scored(tmp_path / "w")
    assert len({(k, p, b) for k, p, b, _ in rows}) == len(rows) == len(score.calls), "nothing scored twice"
    assert outcome.stopped == "budget" and len(outcome.finalists) == 3
    assert outcome.winner.options["x"] >= 8, "the search finds one of the good candidates"
    assert outcome.select_score >= max(f["select"] for f in outcome.finalists) - 1e-12
    best = [t["best_so_far"] for t in outcome.trace if t["part"] == "search"]
    assert best[0] is None, "nothing is scored on the whole search part before the first leader"
    best = [b for b in best if b is not None]
    assert best and best == sorted(best), "best-so-far never goes down"
    wholes = [search.whole(k) for k in search.candidates]
    assert best[-1] == max(w for w in wholes if w is not None), "best so far: the best on the whole search part"
    assert (tmp_path / "w" / "optuna.sqlite").is_file()


class FlatScore(ToyScore):
    """Every candidate right on the same examples: minibatch scores differ by luck alone, whole-part scores tie."""

    def right(self, c: Candidate, ex: Example) -> bool:
        return int(hashlib.sha256(ex.id.encode()).hexdigest()[:6], 16) % 3 != 0


@pytest.mark.slow
def test_patience_counts_trials_without_a_better_score_on_the_whole_search_part(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    settings = Settings(budget=Budget(evaluations=2000), minibatch=16, patience=15, startup=5, seed=0)
    search = Search(ToySpace(), FlatScore(), _metric, _examples(240), settings, tmp_path / "w", True)
    outcome = search.run()
    batches = [t["metric"] for t in outcome.trace if t["part"] == "search"]
    assert max(batches) > min(batches), "the minibatches differ by luck"
    wholes = {search.whole(k) for k in search.candidates} - {None}
    assert len(wholes) == 1, "every candidate scored on the whole search part scores alike"
    best = {t["best_so_far"] for t in outcome.trace if t["part"] == "search"} - {None}
    assert best == wholes and max(batches) > best.pop(), "best so far is not the luckiest minibatch"
    # the first leader sets the best; no later leader beats it (they all tie), so the search stops 15 scoring trials
    # after the first trial that saw it, however lucky a candidate's first minibatch was
    db = sqlite3.connect(tmp_path / "w" / "search.sqlite")
    (first_lead,) = db.execute("SELECT MIN(lead) FROM scoring WHERE lead IS NOT NULL").fetchone()
    (after,) = db.execute("SELECT COUNT(*) FROM scoring WHERE trial >= ?", (first_lead,)).fetchone()
    assert outcome.stopped == "patience" and after == 1 + 15
    assert outcome.spent.evaluations < 2000


class PairSpace(ToySpace):
    """Two candidates only: TPE soon asks again for what it has scored everywhere."""

    def initial(self) -> list[dict]:
        return [{"x": 11, "y": "a"}]

    def suggest(self, trial) -> dict:
        trial.suggest_categorical("x", [11])
        trial.suggest_categorical("y", ["a", "b"])
        return dict(trial.params)


@pytest.mark.slow
def test_trials_that_score_nothing_new_are_not_counted_by_patience(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    settings = Settings(budget=Budget(evaluations=2000), minibatch=16, patience=30, startup=5, seed=0)
    outcome = Search(PairSpace(), ToyScore(), _metric, _examples(240), settings, tmp_path / "w", True).run()
    searched = {(t["candidate"], t["batch"]) for t in outcome.trace if t["part"] == "search"}
    assert outcome.stopped == "exhausted", "both candidates scored on every minibatch, then 200 idle trials"
    assert len(searched) == 2 * outcome.parts["minibatches"] and outcome.trials > 200


@pytest.mark.slow
def test_a_search_killed_and_resumed_stops_on_patience_where_an_uninterrupted_one_does(tmp_path: Path) -> None:
    def search(workdir: Path, score: ToyScore) -> Search:
        workdir.mkdir(exist_ok=True)
        settings = Settings(budget=Budget(evaluations=2000), minibatch=16, patience=12, startup=5, seed=0)
        return Search(ToySpace(), score, _metric, _examples(240), settings, workdir, True)

    whole = search(tmp_path / "whole", FlatScore()).run()
    assert whole.stopped == "patience"
    first = FlatScore()
    first.fail_after = 30  # after the first leader, mid-count
    with pytest.raises(KeyboardInterrupt):
        search(tmp_path / "killed", first).run()
    resumed = search(tmp_path / "killed", FlatScore()).run()
    assert (resumed.stopped, resumed.trials, resumed.trace) == (whole.stopped, whole.trials, whole.trace)
    assert _scored(tmp_path / "killed") == _scored(tmp_path / "whole")


@pytest.mark.slow
def test_a_budget_in_calls_is_exceeded_by_at_most_one_batch(tmp_path: Path) -> None:
    outcome = _search(tmp_path / "w", ToyScore(), Budget(calls=1000)).run()
    select = outcome.parts["select"]
    assert outcome.spent.calls <= 1000 + max(select, 24)
    assert outcome.spent.calls >= 1000 - 2 * select


@pytest.mark.slow
def test_same_seed_same_search_other_seed_other_search(tmp_path: Path) -> None:
    a = _search(tmp_path / "a", ToyScore(), Budget(evaluations=40)).run()
    b = _search(tmp_path / "b", ToyScore(), Budget(evaluations=40)).run()
    _search(tmp_path / "c", ToyScore(), Budget(evaluations=40), seed=1).run()
    assert a.winner == b.winner and _scored(tmp_path / "a") == _scored(tmp_path / "b")
    assert _scored(tmp_path / "a") != _scored(tmp_path / "c")


def test_tpe_draws_every_explore_every_th_trial_at_random() -> None:
    import optuna

    tpe, rnd = optuna.samplers.TPESampler, optuna.samplers.RandomSampler
    assert [type(sampler_for("tpe", 0, n, 5, 3)) for n in range(6)] == [tpe, tpe, rnd, tpe, tpe, rnd]
    assert {type(sampler_for("tpe", 0, n, 5, 0)) for n in range(6)} == {tpe}
    assert {type(sampler_for("random", 0, n, 5, 2)) for n in range(6)} == {rnd}


def test_how_many_demonstrations_is_asked_as_an_ordered_rank() -> None:
    import optuna

    space = EncoderSpace(["{{ text }}"], None, ["a", "b"], ["a", "b"] * 300, ["few-shot"], 0, 2, 0, lambda t: True)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for params in space.initial():
        study.enqueue_trial(params)
    seen = []
    for _ in range(80):
        trial = study.ask()
        params = space.suggest(trial)
        assert "k_rank" not in params
        assert isinstance(trial.distributions["k_rank"], optuna.distributions.IntDistribution)
        seen.append(space.build(params).options["k"])
        study.tell(trial, 0.0)
    assert seen[0] == 8  # the hand-written starting point, enqueued by rank
    assert set(seen) == set(space.k_choices) and space.k_choices[-2:] == [256, "all"]


@pytest.mark.parametrize("sampler", ["tpe", "random"])
@pytest.mark.slow
def test_a_killed_search_resumes_scoring_nothing_twice(tmp_path: Path, sampler: str) -> None:
    whole = _search(tmp_path / "whole", ToyScore(), Budget(evaluations=50), sampler).run()
    first = ToyScore(fail_after=23)
    with pytest.raises(KeyboardInterrupt):
        _search(tmp_path / "killed", first, Budget(evaluations=50), sampler).run()
    second = ToyScore()
    resumed = _search(tmp_path / "killed", second, Budget(evaluations=50), sampler).run()
    assert not set(first.calls) & set(second.calls), "a resumed search scores nothing the killed one had"
    assert len(first.calls) + len(second.calls) == len(_scored(tmp_path / "killed"))
    assert _scored(tmp_path / "killed") == _scored(tmp_path / "whole"), "as if never killed"
    assert resumed.winner == whole.winner
    assert resumed.trace == whole.trace, "the trace (best so far included) read back as it was written"


class _KillAfterWrite:
    """A progress whose bar raises on the n-th advance: the search dies after a scoring is written, before optuna
    hears of it."""

    def __init__(self, n: int) -> None:
        self.n = n

    def bar(self, description, total):
        outer = self

        class Bar:
            def advance(self, k: int = 1) -> None:
                outer.n -= 1
                if outer.n == 0:
                    raise KeyboardInterrupt

        from contextlib import contextmanager

        @contextmanager
        def cm():
            yield Bar()

        return cm()

    def log(self, message: str) -> None:
        pass


@pytest.mark.slow
def test_killed_between_the_ledger_and_optuna_replays_the_scoring(tmp_path: Path) -> None:
    whole = _search(tmp_path / "whole", ToyScore(), Budget(evaluations=40)).run()
    first = ToyScore()
    with pytest.raises(KeyboardInterrupt):
        _search(tmp_path / "killed", first, Budget(evaluations=40), progress=_KillAfterWrite(18)).run()
    second = ToyScore()
    resumed = _search(tmp_path / "killed", second, Budget(evaluations=40)).run()
    assert not set(first.calls) & set(second.calls)
    assert _scored(tmp_path / "killed") == _scored(tmp_path / "whole")
    assert resumed.winner == whole.winner


class GrowingSpace(ToySpace):
    """The toy space with a pool of ``y`` that a proposer's answers extend (a new choice each time, as optuna's
    choices can't change)."""

    def __init__(self) -> None:
        self.ys, self.param = ["a", "b"], "y"

    def grow(self, texts: Sequence[str]) -> None:
        self.ys = [*self.ys, *(t for t in texts if t not in self.ys)]
        self.param = f"y@{len(self.ys)}"

    def suggest(self, trial) -> dict:
        x = trial.suggest_categorical("x", list(range(12)))
        return {"x": x, "y": trial.suggest_categorical(self.param, self.ys)}


def _proposer(asked: list[tuple[int, int]]):
    def propose(history, round_: int):
        asked.append((round_, len(history)))
        return [f"p{round_}-{i}" for i in range(2)], Usage(calls=1, input_tokens=50)

    return propose


@pytest.mark.slow
def test_the_proposer_is_asked_at_each_share_of_the_budget_and_a_resumed_search_asks_none_twice(tmp_path: Path) -> None:
    def search(workdir: Path, score: ToyScore, asked: list) -> Search:
        workdir.mkdir(exist_ok=True)
        settings = Settings(budget=Budget(evaluations=80), minibatch=16, patience=None, startup=5, rounds=3)
        return Search(GrowingSpace(), score, _metric, _examples(240), settings, workdir, True, propose=_proposer(asked))

    asked: list = []
    whole = search(tmp_path / "whole", ToyScore(), asked).run()
    assert [r for r, _ in asked] == [0, 1, 2], "asked at a quarter, half and three quarters of the budget"
    assert asked[0][1] < asked[1][1] < asked[2][1], "each time shown more scored candidates"
    rows = sqlite3.connect(tmp_path / "whole" / "search.sqlite").execute(
        "SELECT batch, outputs_json FROM scoring WHERE part = 'propose' ORDER BY step"
    )
    assert [(b, json.loads(o)) for b, o in rows] == [(r, [f"p{r}-0", f"p{r}-1"]) for r in range(3)]
    proposed = {c.options["y"] for c in (Candidate(**c) for c in whole.candidates)} - {"a", "b"}
    assert proposed, "proposed choices were searched"
    first, killed_asked = ToyScore(fail_after=40), []
    with pytest.raises(KeyboardInterrupt):
        search(tmp_path / "killed", first, killed_asked).run()
    resumed_asked: list = []
    resumed = search(tmp_path / "killed", ToyScore(), resumed_asked).run()
    assert [r for r, _ in killed_asked + resumed_asked] == [0, 1, 2], "no round asked twice, none skipped"
    assert killed_asked and resumed_asked, "the kill fell between two rounds"
    assert _scored(tmp_path / "killed") == _scored(tmp_path / "whole") and resumed.winner == whole.winner


def test_too_small_a_dev_is_refused(tmp_path: Path) -> None:
    settings = Settings(budget=Budget(evaluations=10), minibatch=16)
    (tmp_path / "w").mkdir()
    with pytest.raises(ValueError, match="dev has 1 examples"):
        Search(ToySpace(), ToyScore(), _metric, _examples(1), settings, tmp_path / "w", True)


# ---------------------------------------------------------------------------- the method, on the real encoder


def _task(tmp_path: Path, **search) -> Path:
    write_jsonl(tmp_path / "data.jsonl", dataset_rows())
    method = {"name": "prompt-search", "budget": {"evaluations": 16}, "minibatch": 4, "edits": 4, "draws": 2}
    method.update(search)
    doc = task_doc(methods=[{"name": "zero-shot"}, method])
    (tmp_path / "task.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return tmp_path / "task.yaml"


@pytest.mark.slow
def test_prompt_search_runs_exports_an_ordinary_prompt_and_reloads_identically(tmp_path: Path) -> None:
    task = _task(tmp_path)
    run = CliRunner().invoke(app, ["run", str(task), "--out", str(tmp_path / "run"), "-q"])
    assert run.exit_code == 0, run.output
    store = RunStore.open_existing(tmp_path / "run")
    try:
        row = next(r for r in store.results() if r["trial"] == "prompt-search")
        stored = store.predictions("prompt-search", "test")
    finally:
        store.close()
    assert row["status"] == "ok"
    search = row["details"]["search"]
    assert search["spent"]["evaluations"] <= 16 and search["trials"] >= 1
    assert search["winner"]["method"] in ("zero-shot", "few-shot")
    assert search["trace"] and all(t["cost"]["calls"] > 0 for t in search["trace"])
    folder = tmp_path / "run" / row["adapted_dir"]
    meta = json.loads((folder / "adapted.json").read_text())
    assert meta["method"] == search["winner"]["method"], "saved as the ordinary prompt it is"
    assert {k: v for k, v in meta["options"].items() if k in search["winner"]["options"]} == search["winner"]["options"]
    # the test split's inputs, predicted again through `tailor predict`
    inputs = tmp_path / "inputs.jsonl"
    rows = {r["id"]: r for r in dataset_rows()}
    write_jsonl(inputs, [{"id": p["example_id"], "text": rows[p["example_id"]]["text"]} for p in stored])
    out = tmp_path / "predicted.jsonl"
    predicted = CliRunner().invoke(app, ["predict", str(folder), str(inputs), "--output", str(out)])
    assert predicted.exit_code == 0, predicted.output
    again = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["label"] for r in again] == [p["label"] for p in stored]


@pytest.mark.slow
def test_prompt_search_is_reproducible_on_cpu(tmp_path: Path) -> None:
    winners = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        task = _task(tmp_path / name, forms=["zero-shot"])
        run = CliRunner().invoke(app, ["run", str(task), "--out", str(tmp_path / name / "run"), "-q"])
        assert run.exit_code == 0, run.output
        store = RunStore.open_existing(tmp_path / name / "run")
        try:
            row = next(r for r in store.results() if r["trial"] == "prompt-search")
        finally:
            store.close()
        winners.append((row["details"]["search"]["winner"], [t["metric"] for t in row["details"]["search"]["trace"]]))
    assert winners[0] == winners[1]


def test_a_budget_in_money_needs_a_price(tmp_path: Path) -> None:
    task = _task(tmp_path, budget={"money": 1.0})
    run = CliRunner().invoke(app, ["run", str(task), "--out", str(tmp_path / "run"), "-q"])
    assert run.exit_code != 0
    assert "budget.money" in run.output and "price" in run.output


# --------------------------------------------------------------------- generative models: the scripted fake LM

MAGIC = "Categorize the sentence by what it is about."


def _scripted_pool():
    """A fake LM that knows every answer only when the instruction says "Categorize" (else it prefers `sports`),
    and a proposer that proposes the instruction that does."""
    from tailor.backends.pool import ModelPool
    from tailor.config.task import ModelSpec
    from tailor.testing.scripted import ScriptedLM

    gold = {r["text"]: r["label"] for r in dataset_rows()}

    def score(prompt: str, continuation: str) -> float:
        word = continuation.strip().lower()
        text = max((t for t in gold if t in prompt), key=prompt.rfind, default=None)  # the input comes last
        knows = "categorize" in prompt.lower()
        if knows and text is not None:
            return -1.0 if word == gold[text] else -3.0
        return -1.0 if word == "sports" else -3.0

    pool = ModelPool()
    pool.put(ModelSpec(name="fake", kind="scripted"), ScriptedLM(scores=score, name="fake", parameters=100))
    proposer = ScriptedLM(default_answer=f"Instruction: {MAGIC}\n", name="proposer")
    pool.put(ModelSpec(name="proposer", kind="scripted"), proposer)
    return pool, proposer


def _lm_task(tmp_path: Path, **search) -> Path:
    write_jsonl(tmp_path / "data.jsonl", dataset_rows())
    method = {
        "name": "prompt-search",
        "budget": {"evaluations": 20},
        "minibatch": 4,
        "edits": 4,
        "instructions": ["Say what the sentence is about."],
        "prompt": {"k": 0},
        **search,
    }
    doc = task_doc(model={"kind": "scripted", "name": "fake"}, methods=[method])
    (tmp_path / "task.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return tmp_path / "task.yaml"


def _run_search(task: Path, out: Path, pool) -> dict:
    from tailor.config.task import load_task
    from tailor.runner.run import run_task

    spec, base = load_task(task)
    run_task(spec, base, out, models=pool)
    store = RunStore.open_existing(out)
    try:
        row = next(r for r in store.results() if r["trial"] == "prompt-search")
    finally:
        store.close()
    assert row["status"] == "ok", row["error"]
    return row


@pytest.mark.slow
def test_a_proposer_s_instruction_is_searched_and_its_calls_counted(tmp_path: Path) -> None:
    pool, proposer = _scripted_pool()
    row = _run_search(
        _lm_task(tmp_path, proposer={"kind": "scripted", "name": "proposer"}, proposals=3), tmp_path / "r", pool
    )
    search = row["details"]["search"]
    assert search["winner"]["method"] == "prompt" and search["winner"]["options"]["instruction"] == MAGIC
    assert row["test"]["accuracy"]["value"] == 1.0
    assert len(proposer.requests) == 2, "the proposer is asked before the search and once halfway, all at once"
    assert search["spent"]["calls"] >= 3 and search["trace"][0]["spent"]["calls"] > search["trace"][0]["cost"]["calls"]
    meta = json.loads((tmp_path / "r" / row["adapted_dir"] / "adapted.json").read_text())
    assert meta["method"] == "prompt" and meta["options"]["instruction"] == MAGIC
    assert json.loads((tmp_path / "r" / "work" / "prompt-search" / "proposals.json").read_text())["proposals"] == [
        MAGIC
    ]
    from tailor.report.build import build_report

    shown = build_report(tmp_path / "r")["prompt_search"][0]["prompt"]
    store = RunStore.open_existing(tmp_path / "r")
    try:
        first = store.predictions("prompt-search", "dev")[0]
    finally:
        store.close()
    assert shown["example"] == {"id": first["example_id"], "prompt": first["prompt"]} and MAGIC in first["prompt"]
    assert f"Instruction: {MAGIC}" in shown["text"] and shown["text"].endswith(first["prompt"])


def test_chat_prompts_have_no_answer_prefix_to_search() -> None:
    def space(chat: bool) -> GenerativeSpace:
        labels = ["x", "y"]
        return GenerativeSpace({"answer_prefix": "A:"}, ["Say."], [], labels, 10, 0, 1, 0, bool, "classification", chat)

    assert space(True).prefixes == ["A:"]
    assert space(False).prefixes[0] == "A:" and len(space(False).prefixes) > 1


@pytest.mark.slow
def test_without_the_proposer_the_hand_written_instruction_is_kept_unless_an_edit_wins(tmp_path: Path) -> None:
    pool, _ = _scripted_pool()
    row = _run_search(_lm_task(tmp_path, edits=0), tmp_path / "r", pool)
    search = row["details"]["search"]
    assert "categorize" not in search["winner"]["options"]["instruction"].lower()
    assert row["test"]["accuracy"]["value"] < 0.5
    calls = sum(t["cost"]["calls"] for t in search["trace"])
    assert calls == search["spent"]["calls"], "every call was spent on scoring (there was no proposer)"


@pytest.mark.slow
def test_a_small_budget_takes_fewer_finalists_and_too_small_a_one_is_refused(tmp_path: Path) -> None:
    # 240 examples: 72 held out, 3 evaluations (minibatches of 16... rounded: 72 / 16 = 4.5 -> 4) per finalist
    search = _search(tmp_path / "w", ToyScore(), Budget(evaluations=12))
    assert search.finalists == 1, "half of 12 evaluations pays for one finalist of 4"
    outcome = search.run()
    assert len(outcome.finalists) == 1 and outcome.spent.evaluations <= 12
    with pytest.raises(ValueError, match="raise the budget to at least 8"):
        _search(tmp_path / "x", ToyScore(), Budget(evaluations=7))


@pytest.mark.slow
def test_prompt_search_is_one_more_prompt_row_in_a_learning_curve(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "data.jsonl", dataset_rows())
    search = {"name": "prompt-search", "budget": {"evaluations": 12}, "minibatch": 4, "edits": 2, "draws": 2}
    doc = task_doc(methods=[{"name": "zero-shot"}, search], curve={"sizes": [0, 4], "seeds": 2})
    (tmp_path / "task.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    run = CliRunner().invoke(app, ["curve", str(tmp_path / "task.yaml"), "--out", str(tmp_path / "run"), "-q"])
    assert run.exit_code == 0, run.output
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    rows = {r["method"]: r for r in report["leaderboard"]}
    assert {"prompt-search@4:s0", "prompt-search@4:s1"} <= set(rows)
    assert all(
        rows[m]["status"] == "ok" and rows[m]["route"] == "prompt" for m in ("prompt-search@4:s0", "prompt-search@4:s1")
    )
    assert report["curve"]["methods"]["prompt-search"]["points"]["4"]["n_seeds"] == 2


@pytest.mark.slow
def test_halfway_the_proposer_sees_the_scores_and_its_new_instruction_wins(tmp_path: Path) -> None:
    from tailor.config.task import ModelSpec
    from tailor.testing.scripted import ScriptedLM

    pool, _ = _scripted_pool()
    # this proposer writes the instruction that works only once it is shown the scores so far
    proposer = ScriptedLM(
        answers=lambda prompt: MAGIC if "tried so far" in prompt else "Read the sentence.", name="proposer"
    )
    pool.put(ModelSpec(name="proposer", kind="scripted"), proposer)
    task = _lm_task(
        tmp_path, budget={"evaluations": 40}, edits=0, proposer={"kind": "scripted", "name": "proposer"}, proposals=2
    )
    row = _run_search(task, tmp_path / "r", pool)
    search = row["details"]["search"]
    assert len(proposer.requests) == 2, "asked before the search, and once more halfway"
    midway = proposer.requests[1]
    shown = "\n".join(str(p) for p in midway.prompts)
    assert "tried so far" in shown and "Say what the sentence is about." in shown
    assert search["winner"]["options"]["instruction"] == MAGIC
    proposed = [t for t in search["trace"] if t["part"] == "propose"]
    assert len(proposed) == 1 and proposed[0]["cost"]["calls"] == 2
    assert any(i["text"] == MAGIC and i["from"].startswith("proposed") for i in search["space"]["instructions"])


@pytest.mark.slow
def test_a_budget_in_money_at_the_model_s_price(tmp_path: Path) -> None:
    from tailor.backends.pool import ModelPool
    from tailor.config.task import ModelSpec
    from tailor.testing.scripted import ScriptedLM

    price = {"input": 1000.0, "output": 0.0}  # per million tokens: a thousandth of a unit per token read
    spec = ModelSpec(name="fake", kind="scripted", price=price)
    pool = ModelPool()
    pool.put(spec, ScriptedLM(scores={"sports": -1.0}, name="fake"))
    write_jsonl(tmp_path / "data.jsonl", dataset_rows())
    method = {"name": "prompt-search", "budget": {"money": 2.0}, "minibatch": 4, "edits": 2, "prompt": {"k": 0}}
    doc = task_doc(model={"kind": "scripted", "name": "fake", "price": price}, methods=[method])
    (tmp_path / "task.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    row = _run_search(tmp_path / "task.yaml", tmp_path / "r", pool)
    search = row["details"]["search"]
    per_token = 1000.0 / 1e6
    assert search["spent"]["money"] == pytest.approx(search["spent"]["input_tokens"] * per_token)
    batch = max(t["cost"]["money"] for t in search["trace"])
    # a scoring that doesn't fit stops the search (a new bootstrapped candidate may expect more than one batch)
    assert 1.0 <= search["spent"]["money"] <= 2.0 + batch
    assert search["stopped"] == "budget"


def test_bootstrapped_demonstrations_are_drawn_from_what_the_prompt_gets_right(tmp_path: Path) -> None:
    from tailor.config.task import ModelSpec
    from tailor.contract import Context, TaskInfo
    from tailor.methods.prompt_search import CandidateScorer
    from tailor.types import Split

    pool, _ = (
        _scripted_pool()
    )  # without "Categorize" in the instruction the fake answers `sports`: right on sports only
    fake = pool.get(ModelSpec(name="fake", kind="scripted"))
    rows = dataset_rows()
    train = Split("train", tuple(Example(r["id"], {"text": r["text"]}, r["label"]) for r in rows[:60]))
    task = TaskInfo("mini", "classification", tuple(sorted({r["label"] for r in rows})), ("text",), ("accuracy",))
    (tmp_path / "w").mkdir()
    ctx = Context(task=task, model=ModelSpec(name="fake", kind="scripted"), seed=0, workdir=tmp_path / "w", models=pool)
    options = {"instruction": "Say what it is about.", "k": 3, "select": "balanced", "demo_order": "fixed"}
    c = Candidate("prompt", options, 0, "bootstrapped")
    space = GenerativeSpace({}, [], [], task.labels, len(train), 0, 1, 0, lambda t: True, task.kind)
    adapted, usage = CandidateScorer(train, ctx, space).build(c)
    assert {d.label for d in adapted.demos} == {"sports"} and len(adapted.demos) == 3
    assert usage.calls > 0, "finding what the prompt gets right is a cost of the candidate"
    sent = len(fake.requests)
    again, usage = CandidateScorer(train, ctx, space).build(c)  # a resumed search: read back, not asked again
    assert len(fake.requests) == sent and usage.calls == 0
    assert [d.id for d in again.demos] == [d.id for d in adapted.demos]
    with pytest.raises(MethodError, match="fewer than k=40"):
        CandidateScorer(train, ctx, space).build(Candidate("prompt", {**options, "k": 40}, 0, "bootstrapped"))


def test_a_ledger_from_before_bootstrapping_opens_with_every_candidate_drawing_from_train(tmp_path: Path) -> None:
    from tailor.search.ledger import Ledger

    db = sqlite3.connect(tmp_path / "search.sqlite")
    db.executescript(
        "CREATE TABLE candidate (key TEXT PRIMARY KEY, method TEXT NOT NULL, options_json TEXT NOT NULL, "
        "seed INTEGER NOT NULL, first_step INTEGER NOT NULL);"
        "INSERT INTO candidate VALUES ('k', 'zero-shot', '{}', 0, 0);"
    )
    db.commit()
    db.close()
    ledger = Ledger(tmp_path / "search.sqlite")
    try:
        assert ledger.candidates()["k"]["pool"] == "train"
    finally:
        ledger.close()


def test_an_encoder_s_bootstrapped_demonstrations_are_what_its_zero_shot_prompt_gets_right(
    tmp_path: Path, shared_models, task_data
) -> None:
    from tailor.contract import Context, TaskInfo
    from tailor.methods import METHODS
    from tailor.methods.prompt_search import CandidateScorer
    from tailor.search.space import EncoderSpace

    spec, data = task_data
    train = data.train
    labels = tuple(sorted(set(train.labels())))
    task = TaskInfo(spec.name, "classification", labels, ("text",), ("accuracy",))
    (tmp_path / "w").mkdir()
    ctx = Context(task=task, model=spec.model, seed=0, workdir=tmp_path / "w", models=shared_models)
    forms = ["zero-shot", "few-shot"]
    muddled = {labels[0]: [f"{labels[0]} or {labels[1]}"]}  # a hand-written description that gets some wrong
    space = EncoderSpace(["{{ text }}"], muddled, labels, [ex.label for ex in train], forms, 0, 1, 0, lambda t: True)
    assert "bootstrapped" in space.selects
    assert "bootstrapped" not in EncoderSpace([], None, labels, train.labels(), ["few-shot"], 0, 1, 0, bool).selects
    c = space.build({"form": "few-shot", "k": 1, "select": "bootstrapped", "draw": 0, "classify": "centroid"})
    assert c.pool == "bootstrapped" and c.options == {"k": 1, "select": "balanced", "classify": "centroid"}
    adapted, usage = CandidateScorer(train, ctx, space).build(c)
    reference = space.bootstrap(c)
    assert reference.method == "zero-shot" and reference.sample == len(train)
    zero = METHODS["zero-shot"]
    prompt = zero.adapt(zero.Options(**reference.options), train, None, ctx)
    right = {ex.text for ex, p in zip(train, prompt.predict(list(train))) if p.label == ex.label}
    assert 0 < len(right) < len(train), "the zero-shot prompt gets some of train wrong: the pool is a filter"
    assert set(adapted.texts) <= right and len(adapted.texts) == len(labels)
    record = json.loads((tmp_path / "w" / "bootstrap.json").read_text())
    assert len(record) == 1 and len(next(iter(record.values()))) == len(right)
    short = min(sum(1 for ex in train if ex.text in right and ex.label == lb) for lb in labels)
    with pytest.raises(MethodError, match=f"k={short + 1} demonstrations per class"):
        CandidateScorer(train, ctx, space).build(Candidate("few-shot", {**c.options, "k": short + 1}, 0, c.pool))
