"""Metrics against scikit-learn and scipy, bootstrap intervals, paired tests and Holm's adjustment."""

from __future__ import annotations

from math import comb

import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn.metrics import accuracy_score, f1_score

from tailor.stats.metrics import METRICS, compare_all, estimate, holm, mcnemar, paired_bootstrap, point

INVALID = "<invalid>"  # how None (no valid label) is spelled for scikit-learn, which can't mix None and str


def _present(gold, sk_pred) -> list[str]:
    """The classes macro-F1 averages over: those in gold or predictions (scikit-learn's default), INVALID not one."""
    return sorted((set(gold) | set(sk_pred)) - {INVALID})


def _random_case(rng: np.random.Generator) -> tuple[list[str], list[str], list[str | None]]:
    k = int(rng.integers(2, 6))
    labels = [f"c{i}" for i in range(k)]
    n = int(rng.integers(1, 80))
    # Skewed gold so some labels are rare or absent; predictions sometimes invalid or never made.
    gold = list(rng.choice(labels, size=n, p=np.arange(k, 0, -1) / np.arange(k, 0, -1).sum()))
    pred: list[str | None] = []
    for g in gold:
        u = rng.random()
        pred.append(g if u < 0.5 else None if u < 0.6 else str(rng.choice(labels[: max(1, k - 1)])))
    return labels, [str(g) for g in gold], pred


@pytest.mark.parametrize("seed", range(40))
def test_accuracy_and_macro_f1_match_sklearn(seed: int) -> None:
    labels, gold, pred = _random_case(np.random.default_rng(seed))
    sk_pred = [p if p is not None else INVALID for p in pred]
    acc = point(METRICS["accuracy"].prepare(gold, pred, labels))
    f1 = point(METRICS["macro_f1"].prepare(gold, pred, labels))
    assert acc == pytest.approx(accuracy_score(gold, sk_pred), abs=1e-12)
    expected = f1_score(gold, sk_pred, labels=_present(gold, sk_pred), average="macro", zero_division=0)
    assert f1 == pytest.approx(expected, abs=1e-12)


def test_metrics_on_a_hand_example() -> None:
    gold = ["a", "a", "b", "b"]
    pred = ["a", "b", "b", None]
    assert point(METRICS["accuracy"].prepare(gold, pred, ["a", "b"])) == pytest.approx(0.5)
    # F1(a) = 2·1/(2+1) = 2/3; F1(b) = 2·1/(2+2) = 1/2; the invalid prediction counts for no class.
    assert point(METRICS["macro_f1"].prepare(gold, pred, ["a", "b"])) == pytest.approx((2 / 3 + 1 / 2) / 2)
    # A label in the set that occurs in neither gold nor predictions is not averaged over (scikit-learn's default).
    assert point(METRICS["macro_f1"].prepare(gold, pred, ["a", "b", "c"])) == pytest.approx((2 / 3 + 1 / 2) / 2)


def test_bootstrap_values_match_a_loop_over_resamples() -> None:
    # The vectorized per-resample computation equals scoring each resample on its own.
    labels, gold, pred = _random_case(np.random.default_rng(123))
    prep = METRICS["macro_f1"].prepare(gold, pred, labels)
    idx = np.random.default_rng(0).integers(0, len(gold), size=(25, len(gold)))
    sk_pred = np.array([p if p is not None else INVALID for p in pred])
    gold_a = np.array(gold)
    expected = [
        f1_score(
            gold_a[row], sk_pred[row], labels=_present(gold_a[row], sk_pred[row]), average="macro", zero_division=0
        )
        for row in idx
    ]
    np.testing.assert_allclose(prep.values(idx), expected, atol=1e-12)


def _binary_case(n: int, p_correct: float, seed: int) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    gold = [str(x) for x in rng.choice(["a", "b"], size=n)]
    flip = {"a": "b", "b": "a"}
    pred = [g if rng.random() < p_correct else flip[g] for g in gold]
    return gold, pred


@pytest.mark.parametrize("metric", ["accuracy", "macro_f1"])
def test_bootstrap_ci_contains_the_point_and_narrows_with_more_data(metric: str) -> None:
    widths = []
    for n in (40, 400, 4000):
        gold, pred = _binary_case(n, 0.75, seed=n)
        est = estimate(METRICS[metric].prepare(gold, pred, ["a", "b"]), resamples=500, confidence=0.95, seed=0)
        assert est.ci_low <= est.value <= est.ci_high
        assert est.ci_low < est.ci_high
        widths.append(est.ci_high - est.ci_low)
    assert widths[0] > widths[1] > widths[2]
    # The width shrinks roughly as 1/sqrt(n): ~10x less data spread → ~3x narrower.
    assert widths[0] / widths[2] > 5


def test_bootstrap_ci_is_reproducible_and_wider_at_higher_confidence() -> None:
    gold, pred = _binary_case(200, 0.7, seed=1)
    prep = METRICS["accuracy"].prepare(gold, pred, ["a", "b"])
    assert estimate(prep, 300, 0.95, seed=5) == estimate(prep, 300, 0.95, seed=5)
    narrow, wide = estimate(prep, 1000, 0.8, seed=5), estimate(prep, 1000, 0.99, seed=5)
    assert wide.ci_low < narrow.ci_low and wide.ci_high > narrow.ci_high


def test_paired_bootstrap_of_a_method_with_itself() -> None:
    gold, pred = _binary_case(150, 0.7, seed=3)
    prep = METRICS["accuracy"].prepare(gold, pred, ["a", "b"])
    diff, lo, hi, p = paired_bootstrap(prep, prep, resamples=500, seed=0)
    assert diff == 0 and lo == 0 and hi == 0
    assert p == 1.0
    correct = np.array([g == q for g, q in zip(gold, pred)])
    assert mcnemar(correct, correct.copy()) == 1.0


def test_a_clearly_better_method_is_significant() -> None:
    gold, good = _binary_case(300, 0.95, seed=4)
    _, bad = _binary_case(300, 0.55, seed=5)
    labels = ["a", "b"]
    prepared = {
        "good": METRICS["accuracy"].prepare(gold, good, labels),
        "bad": METRICS["accuracy"].prepare(gold, bad, labels),
    }
    correct = {
        "good": np.array([g == p for g, p in zip(gold, good)]),
        "bad": np.array([g == p for g, p in zip(gold, bad)]),
    }
    (result,) = compare_all(prepared, correct, "accuracy", resamples=1000, confidence=0.95, seed=0)
    assert (result.a, result.b) == ("good", "bad")
    assert result.diff == pytest.approx(correct["good"].mean() - correct["bad"].mean())
    assert result.diff > 0.3 and result.ci_low > 0
    assert result.p_bootstrap < 0.01 and result.p_mcnemar < 1e-6
    assert result.significant


def test_two_equally_good_methods_are_not_significant() -> None:
    gold, a = _binary_case(200, 0.8, seed=6)
    rng = np.random.default_rng(7)
    # b: a's predictions with a few correct and a few wrong ones swapped, so the same accuracy.
    b = list(a)
    right = [i for i, (g, p) in enumerate(zip(gold, a)) if g == p]
    wrong = [i for i, (g, p) in enumerate(zip(gold, a)) if g != p]
    flip = {"a": "b", "b": "a"}
    for i in rng.choice(right, 5, replace=False):
        b[i] = flip[b[i]]
    for i in rng.choice(wrong, 5, replace=False):
        b[i] = flip[b[i]]
    labels = ["a", "b"]
    prepared = {m: METRICS["accuracy"].prepare(gold, p, labels) for m, p in (("a", a), ("b", b))}
    correct = {m: np.array([g == q for g, q in zip(gold, p)]) for m, p in (("a", a), ("b", b))}
    (result,) = compare_all(prepared, correct, "accuracy", resamples=1000, seed=0)
    assert result.diff == pytest.approx(0.0)
    assert result.ci_low < 0 < result.ci_high
    assert result.p_bootstrap > 0.5 and result.p_mcnemar == pytest.approx(1.0)
    assert not result.significant


def test_mcnemar_is_the_exact_test_less_half_the_observed_split() -> None:
    rng = np.random.default_rng(11)
    for _ in range(20):
        n = int(rng.integers(5, 200))
        a, b = rng.random(n) < rng.random(), rng.random(n) < rng.random()
        only_a = sum(1 for x, y in zip(a, b) if x and not y)
        only_b = sum(1 for x, y in zip(a, b) if y and not x)
        m, k = only_a + only_b, min(only_a, only_b)
        # mid-p by hand: both tails beyond the observed split, plus the observed split's probability once
        expected = 1.0 if m == 0 else min(1.0, (2 * sum(comb(m, i) for i in range(k)) + comb(m, k)) / 2**m)
        assert mcnemar(a, b) == pytest.approx(expected, abs=1e-12)
        assert mcnemar(a, b) <= (1.0 if m == 0 else binomtest(only_a, m, 0.5).pvalue) + 1e-12
    # A hand case: 9 discordant pairs all in A's favour → exact p = 2 · 0.5^9, mid-p = 0.5^9.
    a = np.array([True] * 9 + [True, False] * 5)
    b = np.array([False] * 9 + [True, False] * 5)
    assert mcnemar(a, b) == pytest.approx(0.5**9)


def test_holm_on_a_hand_example() -> None:
    # Sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → monotone: 0.06.
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # Capped at 1, and a single test is left as it is.
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])
    assert holm([0.2]) == pytest.approx([0.2])
    assert holm([]) == []


def test_compare_all_applies_holm_over_all_pairs() -> None:
    gold, a = _binary_case(120, 0.9, seed=8)
    _, b = _binary_case(120, 0.7, seed=9)
    _, c = _binary_case(120, 0.6, seed=10)
    labels = ["a", "b"]
    prepared = {m: METRICS["accuracy"].prepare(gold, p, labels) for m, p in (("A", a), ("B", b), ("C", c))}
    results = compare_all(prepared, None, "accuracy", resamples=400, seed=0)
    assert [(r.a, r.b) for r in results] == [("A", "B"), ("A", "C"), ("B", "C")]
    assert all(r.p_mcnemar is None for r in results)
    assert [r.p_adjusted for r in results] == pytest.approx(holm([r.p_bootstrap for r in results]))
    assert all(r.significant == (r.p_adjusted < 0.05) for r in results)


def test_paired_bootstrap_needs_the_same_examples() -> None:
    a = METRICS["accuracy"].prepare(["a", "b"], ["a", "a"], ["a", "b"])
    b = METRICS["accuracy"].prepare(["a", "b", "a"], ["a", "a", "a"], ["a", "b"])
    with pytest.raises(ValueError, match="same examples"):
        paired_bootstrap(a, b)
