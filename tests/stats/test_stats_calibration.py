"""The paired tests hold their level: two methods with the same true accuracy, 1,000 simulated test sets — each
test's false-positive rate at α = 0.05 must lie in [3.5 %, 6.5 %] (a 1,000-set estimate of 5 % has a standard
error of 0.7 points). Correctness is correlated across the two methods, as on real data: a share of hard
examples both tend to miss."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tailor.report.sections.comparisons import power_warnings, top_two_power
from tailor.stats.metrics import METRICS, mcnemar, min_detectable_difference, paired_bootstrap

SIMULATIONS, ALPHA = 1000, 0.05


def same_accuracy_pair(rng: np.random.Generator, n: int, accuracy: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    hard = rng.random(n) < 0.15  # both methods get a hard example right 30 % of the time, the rest more often
    easy_rate = (accuracy - 0.15 * 0.3) / 0.85

    def one() -> np.ndarray:
        return np.where(hard, rng.random(n) < 0.3, rng.random(n) < easy_rate)

    return one(), one()


@pytest.mark.parametrize("n", [200, pytest.param(1000, marks=pytest.mark.slow)])
@pytest.mark.slow
def test_paired_tests_have_the_nominal_false_positive_rate(n: int) -> None:
    rng = np.random.default_rng(n)
    labels = ["right", "wrong"]
    gold = ["right"] * n
    false_bootstrap = false_mcnemar = 0
    for s in range(SIMULATIONS):
        a, b = same_accuracy_pair(rng, n)
        prep_a = METRICS["accuracy"].prepare(gold, ["right" if c else "wrong" for c in a], labels)
        prep_b = METRICS["accuracy"].prepare(gold, ["right" if c else "wrong" for c in b], labels)
        false_bootstrap += paired_bootstrap(prep_a, prep_b, resamples=1000, seed=s)[3] < ALPHA
        false_mcnemar += mcnemar(a, b) < ALPHA
    assert 0.035 <= false_bootstrap / SIMULATIONS <= 0.065, false_bootstrap / SIMULATIONS
    assert 0.035 <= false_mcnemar / SIMULATIONS <= 0.065, false_mcnemar / SIMULATIONS


@pytest.mark.slow
def test_the_tests_see_a_real_difference() -> None:
    """The other side of calibration: a 5-point gap on 1,000 examples is found most of the time."""
    rng = np.random.default_rng(0)
    n, found = 1000, 0
    labels, gold = ["right", "wrong"], ["right"] * 1000
    for s in range(200):
        a = rng.random(n) < 0.85
        b = np.where(a, rng.random(n) < 0.9, rng.random(n) < 0.3)  # about 0.81: a few points worse, correlated
        prep_a = METRICS["accuracy"].prepare(gold, ["right" if c else "wrong" for c in a], labels)
        prep_b = METRICS["accuracy"].prepare(gold, ["right" if c else "wrong" for c in b], labels)
        found += paired_bootstrap(prep_a, prep_b, resamples=500, seed=s)[3] < ALPHA and mcnemar(a, b) < ALPHA
    assert found / 200 >= 0.8


def test_min_detectable_difference_inverts_connors_sample_size() -> None:
    # Connor (1987): discordance 0.2 and a difference of 0.1 need n = (1.96·√0.2 + 0.8416·√0.19)² / 0.01 ≈ 155
    n = (1.959964 * 0.2**0.5 + 0.841621 * 0.19**0.5) ** 2 / 0.1**2
    assert min_detectable_difference(math.ceil(n), 0.2) == pytest.approx(0.1, abs=0.001)
    assert min_detectable_difference(4 * math.ceil(n), 0.2) < 0.06  # four times the data: about half the gap
    assert min_detectable_difference(100, 0.0) is None  # methods that never disagree can't be told apart
    assert min_detectable_difference(3, 0.1) is None  # too few examples for any difference


def test_at_the_min_detectable_difference_the_test_finds_it_four_times_in_five() -> None:
    rng = np.random.default_rng(5)
    n, discordance = 500, 0.2
    delta = min_detectable_difference(n, discordance)
    found = 0
    for _ in range(SIMULATIONS):  # each example: only A right, only B right, or they agree
        draw = rng.choice(3, size=n, p=[(discordance + delta) / 2, (discordance - delta) / 2, 1 - discordance])
        a, b = draw == 0, draw == 1
        found += mcnemar(a, b) < ALPHA
    assert 0.72 <= found / SIMULATIONS <= 0.88, found / SIMULATIONS


def test_the_report_warns_when_the_top_two_are_closer_than_the_test_set_can_tell() -> None:
    rng = np.random.default_rng(1)
    a = rng.random(120) < 0.9
    b = a.copy()
    b[:6] = ~b[:6]  # six disagreements: a gap of at most 0.05 on 120 examples
    leaderboard = ["head", "contrastive", "zero-shot"]
    power = top_two_power(leaderboard, {"head": a, "contrastive": b, "zero-shot": ~a})
    assert power["methods"] == ["head", "contrastive"] and power["n"] == 120
    assert power["discordance"] == pytest.approx(6 / 120)
    (warning,) = power_warnings(power)
    assert "head and contrastive" in warning and "treat them as tied" in warning
    far = top_two_power(leaderboard[:1] + leaderboard[2:], {"head": a, "zero-shot": ~a})
    assert far["difference"] > far["min_detectable_difference"] and power_warnings(far) == []
    assert top_two_power(leaderboard[:1], {"head": a}) is None
