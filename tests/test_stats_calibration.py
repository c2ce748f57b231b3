"""The paired tests hold their level: two methods with the same true accuracy, 1,000 simulated test sets — each
test's false-positive rate at α = 0.05 must lie in [3.5 %, 6.5 %] (a 1,000-set estimate of 5 % has a standard
error of 0.7 points). Correctness is correlated across the two methods, as on real data: a share of hard
examples both tend to miss."""

from __future__ import annotations

import numpy as np
import pytest

from tailor.metrics import METRICS, mcnemar, paired_bootstrap

SIMULATIONS, ALPHA = 1000, 0.05


def same_accuracy_pair(rng: np.random.Generator, n: int, accuracy: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    hard = rng.random(n) < 0.15  # both methods get a hard example right 30 % of the time, the rest more often
    easy_rate = (accuracy - 0.15 * 0.3) / 0.85

    def one() -> np.ndarray:
        return np.where(hard, rng.random(n) < 0.3, rng.random(n) < easy_rate)

    return one(), one()


@pytest.mark.parametrize("n", [200, 1000])
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
