"""Judging candidates by their minibatch scores: empirical-Bayes estimates, and the leader the search picks by them."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tailor.search.budget import Budget, Cost
from tailor.search.evidence import estimates
from tailor.search.ledger import Ledger
from tailor.search.searcher import Search, Settings
from tailor.types import Example

# minibatch scores that differ by about 0.05 around their candidate's mean, means that differ by less
SPREAD = [(0.78, 0.05), (0.82, -0.04), (0.75, 0.06), (0.85, 0.05), (0.80, -0.06), (0.77, 0.04), (0.83, -0.05)]
SCORES = {"lucky": [0.94], "steady": [0.91, 0.89, 0.92, 0.88]} | {
    f"other{i}": [m + d, m - d] for i, (m, d) in enumerate(SPREAD)
}


def test_one_lucky_minibatch_ranks_below_a_candidate_nearly_as_good_on_four() -> None:
    scores = SCORES
    raw = {k: sum(v) / len(v) for k, v in scores.items()}
    assert max(raw, key=raw.get) == "lucky", "by raw means the single minibatch wins"
    est = estimates(scores)
    assert max(est, key=est.get) == "steady"
    centre = sum(raw.values()) / len(raw)
    for k in scores:  # every estimate lies between the candidate's mean and the mean of all candidates
        assert min(raw[k], centre) - 1e-12 <= est[k] <= max(raw[k], centre) + 1e-12
    assert abs(est["lucky"] - raw["lucky"]) > abs(est["steady"] - raw["steady"]), "less evidence, more shrinkage"


def test_with_equal_evidence_the_order_of_the_means_is_kept() -> None:
    rng = random.Random(0)
    scores = {f"c{i}": [rng.random() for _ in range(3)] for i in range(20)}
    est = estimates(scores)
    raw = {k: sum(v) / len(v) for k, v in scores.items()}
    assert sorted(scores, key=est.get) == sorted(scores, key=raw.get)


def test_without_a_measure_of_the_noise_the_means_are_kept_and_unscored_candidates_are_last() -> None:
    scores = {"a": [0.9], "b": [0.7], "c": []}
    assert estimates(scores) == {"a": 0.9, "b": 0.7, "c": float("-inf")}
    assert estimates({"a": [0.5, 0.7]}) == {"a": pytest.approx(0.6)}, "one candidate: nothing to shrink toward"


def test_little_noise_against_a_wide_spread_leaves_the_means_nearly_as_they_are() -> None:
    scores = {f"c{i}": [i / 10, i / 10 + 0.001] for i in range(10)}
    est = estimates(scores)
    for k, v in scores.items():
        assert est[k] == pytest.approx(sum(v) / len(v), abs=1e-3)


def _examples(n: int) -> list[Example]:
    return [Example(f"e{i}", f"text {i}", "a" if i % 2 else "b") for i in range(n)]


def test_the_leader_is_the_best_evidenced_candidate_not_the_luckiest_minibatch(tmp_path: Path) -> None:
    scores = SCORES
    ledger = Ledger(tmp_path / "search.sqlite")
    for key, batch_scores in scores.items():
        ledger.add_candidate(key, "zero-shot", {"name": key}, 0)
        for b, metric in enumerate(batch_scores):
            ledger.add(key, "search", b, None, metric, ["a"] * 16, [""] * 16, Cost(1))
    ledger.close()
    settings = Settings(budget=Budget(evaluations=100), minibatch=16, finalists=1, patience=None)
    search = Search(None, None, None, _examples(240), settings, tmp_path, True)
    assert search.mean("lucky") > search.mean("steady")
    assert search.leader(10) == "steady"
    ledger = Ledger(tmp_path / "search.sqlite")  # killed while scoring a leader: that one is finished first
    ledger.add("other3", "search", 5, None, 0.5, ["a"] * 16, [""] * 16, Cost(1), lead=20)
    search = Search(None, None, None, _examples(240), settings, tmp_path, True)
    assert search.leader(20) == "other3" and search.leader(30) == "steady"


def test_each_kind_shrinks_toward_its_own_mean() -> None:
    """Zero-shot prompts near 0.70, few-shot ones near 0.83: around one centre for all, a lucky few-shot minibatch
    stands far above it and keeps its lead; around the few-shot centre, the candidate steady on four leads."""
    zero = [(0.62, 0.05), (0.70, -0.04), (0.78, 0.06), (0.66, 0.05), (0.74, -0.06)]
    few = [(0.78, 0.05), (0.86, -0.04), (0.82, 0.06), (0.88, 0.05), (0.80, -0.05)]
    scores = {"lucky": [0.96], "steady": [0.92, 0.90, 0.93, 0.89]}
    scores |= {f"zero{i}": [m + d, m - d] for i, (m, d) in enumerate(zero)}
    scores |= {f"few{i}": [m + d, m - d] for i, (m, d) in enumerate(few)}
    kinds = {k: "zero-shot" if k.startswith("zero") else "few-shot" for k in scores}
    alone = estimates(scores)
    assert alone["lucky"] > alone["steady"]
    by_kind = estimates(scores, kinds)
    assert by_kind["steady"] > by_kind["lucky"]
    few_mean = sum(sum(scores[k]) / len(scores[k]) for k in scores if kinds[k] == "few-shot") / 7
    assert by_kind["lucky"] < alone["lucky"] and by_kind["lucky"] > few_mean, "pulled toward the few-shot centre"
    one = estimates(scores | {"lone": [0.5]}, kinds | {"lone": "prompt"})  # a kind of one: toward the mean of all
    assert one["lone"] > 0.5
