"""The curve statistics are right, not only present: the crossover interval covers a known crossing as often as its
level says over 500 simulated curves, and every other figure matches a hand-computed answer."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from tailor.stats.curves import Point, crossover, data_advantage, method_stats, p_better, route_curves, variance_aware

SIZES = [4, 8, 16, 32, 64, 128]


def _route(values: dict[int, list[float]]) -> dict:
    """A route curve as route_curves returns it, from per-size lists of per-seed values."""
    return {
        str(x): {"method": "m", "chosen_on": "dev", "x": float(x), "by_seed": dict(enumerate(v)), "mean": np.mean(v)}
        for x, v in values.items()
    }


def _simulated(rng: np.random.Generator, crossing: float, seeds: int = 5) -> tuple[dict, dict]:
    """A flat-ish prompt curve and a fine-tune curve rising in log2(size) that meets it at ``crossing``; each seed
    has its own offset (shared across sizes, as a draw of examples gives) and noise per size."""
    lx = np.log2(SIZES)
    prompt = 0.75 + 0.01 * (lx - lx[0])
    at = 0.75 + 0.01 * (np.log2(crossing) - lx[0])
    finetune = at + 0.04 * (lx - np.log2(crossing))
    off_p, off_f = rng.normal(0, 0.01, seeds), rng.normal(0, 0.02, seeds)
    p = {x: list(prompt[i] + off_p + rng.normal(0, 0.01, seeds)) for i, x in enumerate(SIZES)}
    f = {x: list(finetune[i] + off_f + rng.normal(0, 0.015, seeds)) for i, x in enumerate(SIZES)}
    return _route(p), _route(f)


@pytest.mark.slow
def test_crossover_interval_covers_the_true_crossing_at_its_level() -> None:
    rng = np.random.default_rng(2026)
    truth, sims, covered, estimates = 20.0, 2000, 0, []
    for _ in range(sims):
        prompt, finetune = _simulated(rng, truth)
        c = crossover(prompt, finetune, 0.95)
        low = c["ci_low"] if c["ci_low"] is not None else 0.0  # None: at or below the smallest size
        high = c["ci_high"] if c["ci_high"] is not None else np.inf  # None: beyond the largest size
        covered += low <= truth <= high
        if c["n"] is not None:
            estimates.append(c["n"])
    assert covered / sims >= 0.93, covered / sims
    assert covered / sims <= 0.995  # an interval as wide as the grid would cover always: it must also be informative
    assert abs(np.median(estimates) - truth) < 2.0
    assert abs(np.mean(np.log2(estimates)) - np.log2(truth)) < 0.1  # unbiased on the log2 axis it interpolates on


@pytest.mark.slow
def test_percentile_bootstrap_of_the_crossing_would_under_cover() -> None:
    """Why the interval is an inverted t interval: the plain percentile bootstrap over 5 seeds misses more often."""
    rng = np.random.default_rng(7)
    truth, sims, covered = 20.0, 120, 0
    for _ in range(sims):
        prompt, finetune = _simulated(rng, truth)
        crossings = []
        for _ in range(150):
            pick = rng.integers(0, 5, 5)

            def resampled(curve: dict, pick: np.ndarray = pick) -> dict:
                return {s: {**v, "by_seed": {i: v["by_seed"][k] for i, k in enumerate(pick)}} for s, v in curve.items()}

            try:
                n = crossover(resampled(prompt), resampled(finetune))["n"]
            except ValueError:
                continue
            crossings.append(n if n is not None else np.inf)
        low, high = np.quantile(crossings, [0.025, 0.975])
        covered += low <= truth <= high
    assert covered / sims < 0.90, covered / sims


def test_crossover_edges() -> None:
    ahead = _route({x: [0.9, 0.91, 0.92] for x in SIZES})
    behind = _route({x: [0.5, 0.52, 0.51] for x in SIZES})
    c = crossover(behind, ahead)
    assert c["status"] == "finetune ahead at every size" and c["n"] == 4.0 and c["ci_low"] is None
    assert c["ci_high"] == 4.0  # significantly ahead from the smallest size
    c = crossover(ahead, behind)
    assert c["status"] == "prompt ahead at every size" and c["n"] is None and c["ci_high"] is None
    assert "beyond" in c["ci_note"]
    with pytest.raises(ValueError, match="at least 2 seeds"):
        crossover(_route({4: [0.5], 8: [0.6]}), _route({4: [0.4], 8: [0.7]}))


def test_crossover_interpolates_on_log2_sizes() -> None:
    # the mean difference goes from -0.1 at 8 to +0.1 at 32: zero halfway in log2, at 16
    prompt = _route({8: [0.6, 0.6, 0.6], 32: [0.6, 0.6, 0.6]})
    finetune = _route({8: [0.49, 0.5, 0.51], 32: [0.69, 0.7, 0.71]})
    c = crossover(prompt, finetune)
    assert c["status"] == "crossing" and c["n"] == pytest.approx(16.0, rel=1e-3)
    assert c["ci_low"] < 16.0 < c["ci_high"]


def test_data_advantage_of_parallel_lines_is_their_horizontal_offset() -> None:
    xs = [0, 10, 20, 30, 40, 50]
    prompt = {str(x): {"x": float(x), "by_seed": {0: 0.5 + 0.01 * x, 1: 0.5 + 0.01 * x}} for x in xs}
    finetune = {str(x + 10): {"x": float(x + 10), "by_seed": {0: 0.5 + 0.01 * x, 1: 0.5 + 0.01 * x}} for x in xs}
    d = data_advantage(prompt, finetune)
    assert d["examples"] == pytest.approx(10.0, abs=1e-9) and d["error"] == pytest.approx(0.0, abs=1e-9)
    assert d["range"] == pytest.approx([0.5, 1.0])
    far = {s: {**v, "by_seed": {k: y + 1.0 for k, y in v["by_seed"].items()}} for s, v in finetune.items()}
    d = data_advantage(prompt, far)
    assert d["examples"] is None and "no common quality range" in d["why"]


def test_data_advantage_error_is_the_jackknife_over_seeds() -> None:
    # seed k shifts the fine-tune curve right by 10 + 2k examples: the estimate is the mean shift, 10 + 2·mean(k)
    xs = [0.0, 10.0, 20.0, 30.0, 40.0]
    prompt = {str(x): {"x": x, "by_seed": {k: 0.5 + 0.01 * x for k in range(4)}} for x in xs}
    finetune = {}
    for x in [10.0, 20.0, 30.0, 40.0, 50.0, 60.0]:
        finetune[str(x)] = {"x": x, "by_seed": {k: 0.5 + 0.01 * (x - 10 - 2 * k) for k in range(4)}}
    d = data_advantage(prompt, finetune)
    assert d["examples"] == pytest.approx(13.0, abs=0.05)
    # leaving seed k out shifts the mean by (3 - 2k)·2/3: jackknife SE of a mean of 0, 2, 4, 6 = sd/√n = 1.29
    assert d["error"] == pytest.approx(np.std([0, 2, 4, 6], ddof=1) / 2, rel=0.05)


def test_variance_aware_break_even_counts_all_seed_pairs_ties_half() -> None:
    prompt = _route({4: [0.6, 0.7], 8: [0.6, 0.7], 16: [0.6, 0.7]})
    finetune = _route({4: [0.5, 0.6], 8: [0.6, 0.7], 16: [0.65, 0.75]})
    v = variance_aware(prompt, finetune)
    # 4: pairs (0.5,0.6) (0.5,0.7) (0.6,0.6 tie) (0.6,0.7) -> 0.5/4; 8: 1 win + 2 ties -> 2/4; 16: 3 wins -> 3/4
    assert v["p_ahead"] == {"4": 0.125, "8": 0.5, "16": 0.75}
    assert v["n"] == 16.0
    assert variance_aware(finetune, prompt)["n"] is None or variance_aware(finetune, prompt)["n"] == 4.0


def test_p_better_per_size() -> None:
    points = [
        Point("a", "prompt", "8", 8, 0, 0.7, None),
        Point("a", "prompt", "8", 8, 1, 0.8, None),
        Point("b", "finetune", "8", 8, 0, 0.8, None),
        Point("b", "finetune", "8", 8, 1, 0.9, None),
    ]
    # a > b: (0.7 vs 0.8, 0.9) no; (0.8 vs 0.8) tie half; (0.8 vs 0.9) no -> 0.5/4
    assert p_better(points) == {"8": [{"a": "a", "b": "b", "p": 0.125}]}


def _points() -> list[Point]:
    out = []
    for seed in (0, 1):
        out.append(Point("zero", "prompt", "0", 0, seed, 0.6, 0.61))
        for x, (few, few_dev) in {4: (0.55, 0.5), 16: (0.7, 0.72)}.items():
            out.append(Point("few", "prompt", str(x), x, seed, few + 0.01 * seed, few_dev))
            out.append(Point("head", "finetune", str(x), x, seed, 0.5 + 0.01 * x, 0.5 + 0.01 * x))
    return out


def test_route_curves_choose_on_dev_with_size_0_methods_everywhere() -> None:
    routes = route_curves(_points())
    assert list(routes["prompt"]) == ["0", "4", "16"]
    assert routes["prompt"]["4"]["method"] == "zero"  # few's dev 0.5 < zero's 0.61, though on test few is lower too
    assert routes["prompt"]["16"]["method"] == "few" and routes["prompt"]["16"]["by_seed"] == {0: 0.7, 1: 0.71}
    assert routes["finetune"]["16"]["chosen_on"] == "dev"
    no_dev = [Point(p.method, p.route, p.size, p.x, p.seed, p.test, None) for p in _points()]
    assert route_curves(no_dev)["prompt"]["4"]["chosen_on"] == "test"


def test_method_stats_mean_std_and_band() -> None:
    s = method_stats(_points(), bootstrap=500, seed=0)
    few = s["few"]["points"]["16"]
    assert s["few"]["route"] == "prompt" and list(s["few"]["points"]) == ["4", "16"]
    assert few["mean"] == pytest.approx(0.705) and few["std"] == pytest.approx(np.std([0.7, 0.71], ddof=1))
    assert few["band_low"] <= few["mean"] <= few["band_high"] and few["n_seeds"] == 2 and few["seeds"] == [0, 1]
    zero = s["zero"]["points"]["0"]
    assert zero["std"] == 0.0 and zero["band_low"] == zero["band_high"] == pytest.approx(0.6)
    assert zero["dev_mean"] == pytest.approx(0.61)


def test_crossover_limits_are_the_paired_t_interval_at_their_ends() -> None:
    """The interval ends are where the paired t limits, recomputed here by hand from the interpolated per-seed
    differences, meet 0; and n* is where the mean difference does."""
    rng = np.random.default_rng(3)
    sizes, seeds = [4, 8, 16, 32, 64], 4
    u = np.log2(sizes)
    d = 0.05 * (u - 3.7) + rng.normal(0, 0.03, (seeds, len(sizes)))  # per seed and size
    prompt = _route({x: [0.6] * seeds for x in sizes})
    finetune = _route({x: list(0.6 + d[:, i]) for i, x in enumerate(sizes)})
    c = crossover(prompt, finetune, 0.9)
    assert c["status"] == "crossing" and c["seeds"] == seeds and c["confidence"] == 0.9
    assert c["ci_low"] <= c["n"] <= c["ci_high"]
    half = stats.t.ppf(0.95, seeds - 1) / np.sqrt(seeds)

    def limits(x: float) -> tuple[float, float, float]:
        ds = np.array([np.interp(np.log2(x), u, row) for row in d])
        return ds.mean(), ds.mean() - half * ds.std(ddof=1), ds.mean() + half * ds.std(ddof=1)

    assert limits(c["n"])[0] == pytest.approx(0.0, abs=1e-12)
    assert limits(c["ci_low"])[2] == pytest.approx(0.0, abs=1e-5)
    assert limits(c["ci_high"])[1] == pytest.approx(0.0, abs=1e-5)
    assert limits(c["ci_low"] * 0.99)[2] < 0 < limits(c["ci_high"] * 1.01)[1]
    for i, label in enumerate(map(str, sizes)):
        mean, low, high = limits(sizes[i])
        assert c["difference"][label] == pytest.approx({"x": sizes[i], "mean": mean, "low": low, "high": high})


def test_crossover_pairs_by_seed() -> None:
    """A large per-seed offset shared by both routes cancels in the paired differences: a tight interval. Seeds
    only one route ran are left out."""
    offsets = [-0.2, 0.0, 0.15, 0.3]
    prompt = _route({x: [0.5 + o for o in offsets] for x in SIZES})
    finetune = _route(
        {x: [0.5 + o + 0.02 * (np.log2(x) - 4) + 0.001 * k for k, o in enumerate(offsets)] for x in SIZES}
    )
    c = crossover(prompt, finetune)
    assert c["n"] == pytest.approx(16.0 * 2 ** (-0.0015 / 0.02), rel=1e-9)  # mean difference 0.02·(log2 x − 4) + 0.0015
    assert 14 < c["ci_low"] < c["n"] < c["ci_high"] < 18
    # the same curves after a JSON round trip (seeds become text) give the same answer
    again = crossover(json.loads(json.dumps(prompt)), json.loads(json.dumps(finetune)))
    assert again == c
    # a seed only one route has is dropped; one seed in common is too few
    extra = {s: {**v, "by_seed": {**v["by_seed"], 9: 0.99}} for s, v in finetune.items()}
    assert crossover(prompt, extra)["seeds"] == 4
    lonely = {s: {**v, "by_seed": {0: v["by_seed"][0]}} for s, v in prompt.items()}
    with pytest.raises(ValueError, match="at least 2 seeds"):
        crossover(lonely, finetune)
    with pytest.raises(ValueError, match="no training size above 0"):
        crossover(_route({4: [0.5, 0.6]}), _route({8: [0.5, 0.6]}))


def test_crossover_edges_beyond_the_grid_are_named() -> None:
    # fine-tuning significantly behind even at the largest size: the lower end is that size, the upper beyond it
    prompt = _route({x: [0.9, 0.91, 0.92] for x in SIZES})
    finetune = _route({x: [0.5 + 0.01 * np.log2(x) + e for e in (0.0, 0.01, 0.02)] for x in SIZES})
    c = crossover(prompt, finetune)
    assert c["status"] == "prompt ahead at every size" and c["ci_low"] == 128.0 and c["ci_high"] is None
    assert "still significantly behind" in c["ci_note"] and "beyond the largest size" in c["ci_note"]
    # a crossing whose interval starts below the grid: the lower end is None, said in the note
    finetune = _route({x: [0.9 + 0.005 * (np.log2(x) - 2) + e for e in (-0.04, 0.0, 0.04)] for x in SIZES})
    c = crossover(prompt, finetune)
    assert c["status"] == "crossing" and c["n"] == pytest.approx(16.0)
    assert c["ci_low"] is None and c["ci_high"] is None and "at or below the smallest size" in c["ci_note"]


def test_data_advantage_follows_le_scao_and_rush() -> None:
    # a prompt route with its zero-shot point at x=0, a fine-tune route that dips (running max) then rises
    prompt = {"0": {"x": 0.0, "by_seed": {0: 0.6, 1: 0.6}}, "8": {"x": 8.0, "by_seed": {0: 0.7, 1: 0.7}}}
    finetune = {
        "4": {"x": 4.0, "by_seed": {0: 0.5, 1: 0.5}},
        "8": {"x": 8.0, "by_seed": {0: 0.45, 1: 0.45}},  # below its running max 0.5: treated as 0.5
        "16": {"x": 16.0, "by_seed": {0: 0.7, 1: 0.7}},
    }
    d = data_advantage(prompt, finetune)
    # common quality range 0.6..0.7; prompt x(y) = 80(y − 0.6); fine-tune x(y) = 8 + 40(y − 0.5) (from 0.5 at 8 to
    # 0.7 at 16): mean gap over y in [0.6, 0.7] = mean of (12 + 40(y − 0.6)) − 80(y − 0.6) = 12 − 40·0.05 = 10
    assert d["range"] == pytest.approx([0.6, 0.7]) and d["examples"] == pytest.approx(10.0)
    assert d["seeds"] == 2 and d["error"] == pytest.approx(0.0, abs=1e-12)
    # the other way round the sign flips: fine-tuning is the data-efficient route
    assert data_advantage(finetune, prompt)["examples"] == pytest.approx(-10.0)


def test_data_advantage_of_a_flat_prompt_curve_is_the_gap_at_its_quality() -> None:
    # zero-shot, chosen at every size: a flat prompt curve at 0.6 from x=0; the fine-tune curve reaches 0.6 at 12
    # (0.5 at 8, 0.7 at 16): the prompt is worth 12 examples, the gap at the one quality both curves have
    flat = {str(x): {"x": float(x), "by_seed": {0: 0.6, 1: 0.6}} for x in (0, 4, 8, 16)}
    finetune = {"8": {"x": 8.0, "by_seed": {0: 0.49, 1: 0.51}}, "16": {"x": 16.0, "by_seed": {0: 0.69, 1: 0.71}}}
    d = data_advantage(flat, finetune)
    assert d["examples"] == pytest.approx(12.0) and d["range"] == pytest.approx([0.6, 0.6])
    # leaving a seed out moves the fine-tune curve by ±0.01 in quality, ∓0.4 examples: the jackknife sees it
    assert d["error"] == pytest.approx(0.4, rel=1e-6)
    # a flat prompt above everything fine-tuning reached still has no common range
    high = {s: {**v, "by_seed": {0: 0.9, 1: 0.9}} for s, v in flat.items()}
    assert "no common quality range" in data_advantage(high, finetune)["why"]


def test_variance_aware_with_unequal_seed_counts() -> None:
    prompt = {"4": {"x": 4.0, "by_seed": {0: 0.5, 1: 0.7}}, "8": {"x": 8.0, "by_seed": {0: 0.5, 1: 0.7}}}
    finetune = {
        "4": {"x": 4.0, "by_seed": {0: 0.5, 1: 0.6, 2: 0.8}},
        "8": {"x": 8.0, "by_seed": {0: 0.6, 1: 0.7, 2: 0.8}},
    }
    v = variance_aware(prompt, finetune)
    # 4: 0.5 ties 0.5 (½), 0.6 beats 0.5, 0.8 beats both -> 3.5 of 6; 8: 0.6 beats 0.5, 0.7: 1 + ½, 0.8: 2 -> 4.5/6
    assert v["p_ahead"] == pytest.approx({"4": 3.5 / 6, "8": 4.5 / 6}) and v["n"] == 4.0 and v["size"] == "4"


def test_p_better_pairs_only_methods_at_the_same_size() -> None:
    points = [Point("zero", "prompt", "0", 0.0, s, 0.6, None) for s in (0, 1)]
    for s, (a, b, c) in enumerate([(0.7, 0.6, 0.7), (0.8, 0.8, 0.5)]):
        points += [Point("a", "prompt", "4", 4.0, s, a, None), Point("b", "finetune", "4", 4.0, s, b, None)]
        points += [Point("c", "finetune", "4", 4.0, s, c, None)]
    out = p_better(points)
    assert list(out) == ["0", "4"] and out["0"] == []
    # a vs b: 0.7>0.6, 0.7<0.8, 0.8>0.6, 0.8=0.8 -> 2.5/4; a vs c: 0.7=0.7, 0.7>0.5, 0.8>0.7, 0.8>0.5 -> 3.5/4
    # b vs c: 0.6<0.7, 0.6>0.5, 0.8>0.7, 0.8>0.5 -> 3/4
    assert out["4"] == [
        {"a": "a", "b": "b", "p": 0.625},
        {"a": "a", "b": "c", "p": 0.875},
        {"a": "b", "b": "c", "p": 0.75},
    ]


def test_route_curves_stand_ins_order_and_json() -> None:
    points = []
    for s in (0, 1):
        points += [
            Point("zero/v1", "prompt", "0", 0.0, s, 0.55, 0.66),
            Point("zero/v2", "prompt", "0", 0.0, s, 0.5, 0.6),
        ]
        for label, x, few, head in [("all", 150.0, 0.8, 0.9), ("4", 4.0, 0.6, 0.4), ("16", 16.0, 0.65, 0.7)]:
            points.append(Point("few", "prompt", label, x, s, few, few - 0.1 * (label == "4")))
            points.append(Point("head", "finetune", label, x, s, head + 0.01 * s, None if label == "16" else head))
    routes = route_curves(points)
    prompt, finetune = routes["prompt"], routes["finetune"]
    assert list(prompt) == ["0", "4", "16", "all"] and list(finetune) == ["4", "16", "all"]
    # at 4 few-shot's dev (0.5) loses to zero/v1's (0.66): the stand-in's own size-0 test scores are used
    assert (
        prompt["4"]["method"] == "zero/v1"
        and prompt["4"]["size"] == "0"
        and prompt["4"]["by_seed"] == {0: 0.55, 1: 0.55}
    )
    assert prompt["4"]["candidates"] == pytest.approx({"few": 0.5, "zero/v1": 0.66, "zero/v2": 0.6})
    assert prompt["all"]["method"] == "few" and prompt["all"]["x"] == 150.0 and prompt["all"]["chosen_on"] == "dev"
    assert finetune["16"]["chosen_on"] == "test" and finetune["4"]["chosen_on"] == "dev"
    assert finetune["all"]["mean"] == pytest.approx(0.905)
    json.dumps(routes)
    json.dumps(method_stats(points, bootstrap=50))
    json.dumps(p_better(points))


def test_method_stats_known_numbers() -> None:
    points = [Point("m", "finetune", "all", 40.0, s, v, 0.5) for s, v in enumerate([0.5, 0.6, 0.7])]
    points += [Point("m", "finetune", "8", 8.0, s, 0.6, None if s == 1 else 0.5) for s in range(3)]
    s = method_stats(points, bootstrap=2000, confidence=0.9, seed=5)
    m = s["m"]["points"]
    assert list(m) == ["8", "all"]  # by x, not by label
    assert m["all"]["mean"] == pytest.approx(0.6) and m["all"]["std"] == pytest.approx(0.1)
    assert 0.5 <= m["all"]["band_low"] < 0.6 < m["all"]["band_high"] <= 0.7
    # the bootstrap means of 3 values have sd 0.1·sqrt(2/3)/sqrt(3) = 0.047: a 90 % band about ±0.075
    assert m["all"]["band_high"] - m["all"]["band_low"] == pytest.approx(2 * 1.645 * 0.0471, rel=0.2)
    assert m["8"]["band_low"] == m["8"]["band_high"] == pytest.approx(0.6) and m["8"]["dev_mean"] is None
    assert m["all"]["values"] == [0.5, 0.6, 0.7] and m["all"]["dev_mean"] == pytest.approx(0.5)
    assert method_stats(points, bootstrap=2000, confidence=0.9, seed=5) == s  # reproducible


def test_route_candidates_that_ran_different_seeds_are_compared_on_the_seeds_all_ran() -> None:
    """A method run at fewer seeds (its own `curve:`) is judged on the same draws as the others: over seeds 0-2
    ``wide`` has the better dev mean only thanks to seed 2, which ``narrow`` never ran; over seeds 0-1 it is worse."""
    points = [Point("wide", "finetune", "8", 8.0, s, 0.7, dev) for s, dev in enumerate([0.6, 0.6, 0.95])]
    points += [Point("narrow", "finetune", "8", 8.0, s, 0.72, 0.65) for s in (0, 1)]
    chosen = route_curves(points)["finetune"]["8"]
    assert chosen["method"] == "narrow" and chosen["compared_seeds"] == [0, 1]
    assert chosen["candidates"] == pytest.approx({"wide": 0.6, "narrow": 0.65})
    assert chosen["by_seed"] == {0: 0.72, 1: 0.72}  # the chosen method's own seeds, all of them
    # no seed in common: each on its own seeds, as before
    apart = [Point("a", "finetune", "8", 8.0, 0, 0.7, 0.6), Point("b", "finetune", "8", 8.0, 1, 0.7, 0.5)]
    assert route_curves(apart)["finetune"]["8"]["method"] == "a"
    assert route_curves(apart)["finetune"]["8"]["compared_seeds"] == [0, 1]


def test_crossover_and_data_advantage_name_the_seeds_they_paired() -> None:
    prompt = _route({x: [0.7, 0.71, 0.72] for x in SIZES})
    finetune = _route({x: [0.6 + 0.02 * i, 0.61 + 0.02 * i] for i, x in enumerate(SIZES)})  # seeds 0 and 1 only
    c = crossover(prompt, finetune)
    assert c["seeds"] == 2 and c["seed_list"] == [0, 1]
    d = data_advantage(prompt, finetune)
    assert d["seeds"] == 2 and d["seed_list"] == [0, 1]


def test_the_verdict_words_a_flat_prompt_curves_data_advantage_as_a_gap_at_its_quality() -> None:
    from tailor.report.sections.curve import verdict

    figures = {"crossover": None, "variance_aware": None}
    flat_gap = {"examples": 40.6, "error": 4.0, "range": [0.777, 0.777], "flat": True}
    flat = verdict("classification", [], {**figures, "data_advantage": flat_gap}, [])
    assert flat == [
        "The best prompt is worth 40.6 ± 4.0 labelled examples per class: fine-tuning needs that many more to reach "
        "its 0.777 (Le Scao & Rush's data advantage, for a prompt curve that is flat)."
    ]
    ranged_gap = {"examples": 2.4, "error": 0.6, "range": [0.62, 0.71], "flat": False}
    ranged = verdict("classification", [], {**figures, "data_advantage": ranged_gap}, [])
    assert "over the quality range both reach" in ranged[0]


def test_the_data_advantage_says_once_whether_the_prompt_curve_was_flat() -> None:
    """The flag the verdict and the curve's words both read: a single quality in common is a flat prompt curve."""
    sizes = ("0", "2", "4")
    flat_prompt = _route({x: [0.7, 0.7, 0.7] for x in sizes})
    climbing = _route({x: [0.5 + 0.2 * i] * 3 for i, x in enumerate(sizes)})
    assert data_advantage(flat_prompt, climbing)["flat"] is True
    rising_prompt = _route({x: [0.6 + 0.05 * i] * 3 for i, x in enumerate(sizes)})
    assert data_advantage(rising_prompt, climbing)["flat"] is False
