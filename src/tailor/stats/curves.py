"""The statistics of a learning curve: every method at several training sizes x and several seeds.

The experiment. Seed s draws one nested sequence of training subsets, and every method at seed s trains (or picks
its demonstrations) on the same draw. Two methods' results at one seed are therefore *paired*: they share the
draw, which at small x is the largest source of between-seed variation. Seeds are treated as independent
replicates of the whole experiment (draw and training randomness together). The test set is fixed, so every
interval below is about the variation over training draws on this test set; test-set sampling error is the
business of the paired tests elsewhere in the report. Higher metric values are better throughout.

What each function answers:

* :func:`method_stats`: per method and size, the mean over seeds, its sample standard deviation and a percentile
  bootstrap band for the mean (a display band, not a test).
* :func:`route_curves`: per route ("prompt", "finetune") and size, the method that represents the route there,
  chosen on dev (never on test, unless there is no dev), so the route curves are not flattered by selection.
* :func:`crossover`: the size n* from which fine-tuning is ahead of prompting on average, with a confidence
  interval from the paired t interval over seeds, inverted.
* :func:`variance_aware`: from which size a single fine-tuning run beats a single prompting run for most pairs of
  seeds (a probability of superiority, not a test).
* :func:`data_advantage`: Le Scao & Rush's (NAACL 2021) "how many data points is a prompt worth": the mean
  horizontal gap between the two mean curves, with a leave-one-seed-out (jackknife) standard error.
* :func:`p_better`: P(A > B) over seed pairs for every two methods at each size.

Everything returned is plain JSON (dicts, lists, floats, None); sizes are keyed by their label and ordered by x.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

FINE = 200
"""Points per grid interval (in log2 x) on which the interval limits U and L are evaluated (see crossover)."""


@dataclass(frozen=True)
class Point:
    """One finished curve trial: a method at one size and seed, with its primary metric on test (and dev)."""

    method: str
    route: str
    size: str
    x: float
    seed: int
    test: float
    dev: float | None


def _labels(points: Iterable[Point]) -> dict[str, float]:
    """Each size label with its x (the mean over its points), ordered by x, ties in order of appearance."""
    xs: dict[str, list[float]] = {}
    for p in points:
        xs.setdefault(p.size, []).append(p.x)
    mean = {label: float(np.mean(v)) for label, v in xs.items()}
    return dict(sorted(mean.items(), key=lambda kv: kv[1]))


def _grouped(points: Iterable[Point]) -> dict[str, dict[str, dict[int, Point]]]:
    """method -> size label -> seed -> point (methods in order of appearance; a repeated trial: the last one)."""
    out: dict[str, dict[str, dict[int, Point]]] = {}
    for p in points:
        out.setdefault(p.method, {}).setdefault(p.size, {})[p.seed] = p
    return out


def _mean_or_none(values: list[float | None]) -> float | None:
    return None if not values or any(v is None for v in values) else float(np.mean(values))


def _band(values: np.ndarray, resamples: int, confidence: float, rng: np.random.Generator) -> tuple[float, float]:
    """Percentile bootstrap over seeds of the mean: resample the seeds with replacement, take the quantiles."""
    if len(values) < 2 or resamples < 1:
        return float(values.mean()), float(values.mean())
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(axis=1)
    alpha = 1 - confidence
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def method_stats(
    points: list[Point], bootstrap: int = 1000, confidence: float = 0.95, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """Per method: its route and, per size, the spread of the primary metric over seeds.

    ``std`` is the sample standard deviation (ddof=1; 0.0 with one seed). ``band_low``/``band_high`` is a
    percentile bootstrap interval over seeds for the mean, meant as a shaded band on the plot: with 5 seeds the
    bootstrap distribution of a mean is too narrow (it ignores the t quantile and shrinks the variance by (S-1)/S),
    so the band is a picture of the spread, not a confidence interval one should test with. It is clipped to
    contain the mean and collapses to the value when the seeds agree (or there is one seed). Each (method, size)
    gets its own random stream, derived from ``seed`` and the names, so a band doesn't depend on what else ran.
    ``dev_mean`` is None unless every seed has a dev score."""
    labels = _labels(points)
    out: dict[str, dict[str, Any]] = {}
    for method, by_size in _grouped(points).items():
        entry: dict[str, Any] = {"route": next(iter(next(iter(by_size.values())).values())).route, "points": {}}
        for label in labels:
            if label not in by_size:
                continue
            trials = [by_size[label][s] for s in sorted(by_size[label])]
            values = np.array([p.test for p in trials], dtype=float)
            mean = float(values.mean())
            key = [abs(int(seed)), zlib.crc32(method.encode()), zlib.crc32(label.encode())]
            low, high = _band(values, bootstrap, confidence, np.random.default_rng(key))
            entry["points"][label] = {
                "x": float(np.mean([p.x for p in trials])),
                "mean": mean,
                "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                "n_seeds": len(values),
                "band_low": min(low, mean),
                "band_high": max(high, mean),
                "seeds": [p.seed for p in trials],
                "values": [float(v) for v in values],
                "dev_mean": _mean_or_none([p.dev for p in trials]),
            }
        out[method] = entry
    return out


def route_curves(points: list[Point]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per route and size: the method that represents the route there, and its test scores by seed.

    The candidates at a size are the route's methods that ran at that size plus the route's size-0 methods (a
    method that uses no training data can be deployed whatever data one has: at size 16 the prompt route may be
    few-shot@16 or zero-shot@0). The representative is the candidate with the best dev mean over seeds; test is
    only read for the chosen one, so the route curve is not biased upward by picking on test. When a candidate has
    no dev score all candidates are compared on test mean instead, and ``chosen_on`` says "test" (that curve is
    optimistic). Candidates are compared over the seeds all of them ran (``compared_seeds``; every seed any ran when
    they share none), so that a method run at fewer seeds is not judged on other draws. Ties go to the method that
    appears first. A route has an entry at a size only when it has a
    candidate there; size "0" only for routes with size-0 methods. ``size`` is the size the chosen method ran at
    ("0" for a zero-shot stand-in); ``by_seed`` maps seed -> test score; ``candidates`` the scores compared."""
    labels = _labels(points)
    grouped = _grouped(points)
    zero = {label for label, x in labels.items() if x == 0}
    by_route: dict[str, list[str]] = {}
    for method, by_size in grouped.items():
        by_route.setdefault(next(iter(next(iter(by_size.values())).values())).route, []).append(method)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for route, methods in by_route.items():
        stand_ins = [(m, z) for m in methods for z in zero if z in grouped[m]]
        curve: dict[str, dict[str, Any]] = {}
        for label in labels:
            candidates = [(m, label) for m in methods if label in grouped[m]]
            candidates += [(m, z) for m, z in stand_ins if all(m != c for c, _ in candidates)]
            if not candidates:
                continue
            # Candidates that ran different seeds (a method's own `curve:`) are compared on the seeds all of them
            # ran: a seed's draw moves every method alike, so means over different draws would favour the luckier.
            ran = [set(grouped[m][size]) for m, size in candidates]
            keep = set.intersection(*ran) or set.union(*ran)
            trials = [[grouped[m][size][s] for s in sorted(keep & r)] for (m, size), r in zip(candidates, ran)]
            devs = [_mean_or_none([p.dev for p in t]) for t in trials]
            on = "dev" if all(d is not None for d in devs) else "test"
            scores = devs if on == "dev" else [float(np.mean([p.test for p in t])) for t in trials]
            best = max(range(len(candidates)), key=lambda i: (scores[i], -i))
            method, size = candidates[best]
            by_seed = {s: float(grouped[method][size][s].test) for s in sorted(grouped[method][size])}
            curve[label] = {
                "method": method,
                "size": size,
                "chosen_on": on,
                "x": labels[label],
                "by_seed": by_seed,
                "mean": float(np.mean(list(by_seed.values()))),
                "candidates": {m: scores[i] for i, (m, _) in enumerate(candidates)},
                "compared_seeds": sorted(keep),
            }
        if curve:
            out[route] = curve
    return out


def _scores(point: dict[str, Any]) -> dict[str, float]:
    """A route point's scores by seed, keyed by the seed as text (the same before and after a JSON round trip)."""
    return {str(s): float(v) for s, v in point["by_seed"].items()}


def _common(prompt: dict[str, Any], finetune: dict[str, Any]) -> list[str]:
    """The size labels above 0 that both route curves have, ordered by x."""
    labels = [label for label in finetune if label in prompt and finetune[label]["x"] > 0]
    return sorted(labels, key=lambda label: finetune[label]["x"])


def _crossing(u: np.ndarray, v: np.ndarray, below: np.ndarray) -> tuple[str, float | None]:
    """Where a piecewise-linear curve ``v(u)`` leaves its last ``below`` stretch for good: ("never", None) when it
    is never below, ("end", None) when it is still below at the last point, else ("cross", u*) with u* linearly
    interpolated between the last point below and the next one."""
    idx = np.flatnonzero(below)
    if not idx.size:
        return "never", None
    i = int(idx[-1])
    if i == len(v) - 1:
        return "end", None
    share = v[i] / (v[i] - v[i + 1])  # v[i] < 0 <= v[i+1] (or <= 0 < for L): the denominator is never 0
    return "cross", float(u[i] + share * (u[i + 1] - u[i]))


def _edge(u: np.ndarray, y: np.ndarray, i: int) -> float:
    """The size where ``y`` crosses 0 between the fine points ``i`` and ``i + 1`` (linear in log2 size)."""
    t = y[i] / (y[i] - y[i + 1]) if y[i] != y[i + 1] else 0.0
    return float(2 ** (u[i] + t * (u[i + 1] - u[i])))


def crossover(prompt: dict[str, Any], finetune: dict[str, Any], confidence: float = 0.95) -> dict[str, Any]:
    """The crossover n*: from which training size fine-tuning is ahead of prompting, with a confidence interval.

    Data: the sizes above 0 both route curves have and the seeds both have at every one of them; per seed s the
    paired difference d_s(x) = finetune_s(x) - prompt_s(x), linearly interpolated in log2 x between the sizes
    (learning curves are close to linear in log x, and the sizes are spaced geometrically).

    Point estimate: n* is where the mean difference m(x) last rises to >= 0, i.e. the smallest x from which
    m >= 0 at every larger size, interpolated between the two sizes around the sign change.

    Interval: at each x the paired t interval over seeds, m(x) +- t_{1-a/2,S-1} sd(d_s(x)) / sqrt(S), with limits
    U(x) and L(x). Since the seeds are independent and d_s(x) is the same linear map of each seed's grid values,
    the d_s(x) at a fixed x are i.i.d. over seeds, so under normality the test at every fixed x is exact, including
    between grid sizes. The interval for n* collects the sizes where the difference is not significantly non-zero:
    ``ci_low`` is where U last rises to >= 0 (below it fine-tuning is significantly behind) and ``ci_high`` the
    point from which L stays > 0 up to the largest size (from there it is significantly ahead) — precisely, the
    span of the points where U >= 0 >= L. U and L are not linear in log2 x between sizes (the sd is the square
    root of a quadratic there), so they are evaluated on FINE points per interval. If the true mean difference is
    0 at x*, the span holds x* whenever the t interval at x* covers 0: coverage is at least the nominal level
    (tests/stats/test_curve_stats.py measures it). A percentile bootstrap of n* over 5 seeds, by
    contrast, under-covers: resampling 5 seeds understates the spread and ignores the t quantile.

    Ends beyond the grid: ``ci_low`` None means at or below the smallest size (fine-tuning is never significantly
    behind); when fine-tuning is still significantly behind at the largest size ``ci_low`` is that size (n* is
    beyond it). ``ci_high`` None means beyond the largest size (L <= 0 there); the smallest size when L > 0
    everywhere. ``ci_note`` says so in words. Statuses: "crossing"; "finetune ahead at every size" (m >= 0 at the
    smallest size and on: n is that size); "prompt ahead at every size" (m < 0 at the largest size: n is None).
    ``difference`` gives m, L and U at each size, for plotting. Raises ValueError with fewer than 2 common seeds
    or no common size above 0."""
    labels = _common(prompt, finetune)
    if not labels:
        raise ValueError("the prompt and fine-tune routes have no training size above 0 in common")
    pairs = [(_scores(finetune[label]), _scores(prompt[label])) for label in labels]
    seeds = sorted(set.intersection(*(set(f) & set(p) for f, p in pairs)), key=lambda s: (len(s), s))
    if len(seeds) < 2:
        raise ValueError(
            f"the crossover needs at least 2 seeds that both routes ran at every common size; they share "
            f"{len(seeds)} ({', '.join(seeds) or 'none'}) over sizes {', '.join(labels)}"
        )
    d = np.array([[f[s] - p[s] for f, p in pairs] for s in seeds])  # seeds x sizes
    x = np.array([finetune[label]["x"] for label in labels], dtype=float)
    u = np.log2(x)
    n_seeds = len(seeds)
    half = stats.t.ppf(1 - (1 - confidence) / 2, n_seeds - 1) / math.sqrt(n_seeds)
    mean = d.mean(axis=0)

    kind, at = _crossing(u, mean, mean < 0)
    if kind == "never":
        status, n = "finetune ahead at every size", float(x[0])
    elif kind == "end":
        status, n = "prompt ahead at every size", None
    else:
        status, n = "crossing", float(2**at)

    # the seeds' differences on FINE points per interval of log2 x, then U and L there
    share = np.linspace(0, 1, FINE, endpoint=False)
    fine_u = np.concatenate([u[k] + share * (u[k + 1] - u[k]) for k in range(len(u) - 1)] + [u[-1:]])
    fine_d = np.concatenate(
        [d[:, k, None] + share * (d[:, k + 1, None] - d[:, k, None]) for k in range(len(u) - 1)] + [d[:, -1:]], axis=1
    )
    fine_m, fine_half = fine_d.mean(axis=0), half * fine_d.std(axis=0, ddof=1)
    upper, lower = fine_m + fine_half, fine_m - fine_half

    # The interval: the span of the sizes where the difference is not significantly non-zero (U >= 0 >= L). The
    # true crossing x* lies in it whenever the t interval at x* covers 0, so it covers x* at least as often as the
    # level says, however slowly the difference grows past x*.
    notes = []
    undecided = np.nonzero((upper >= 0) & (lower <= 0))[0]
    if len(undecided):
        first, last = int(undecided[0]), int(undecided[-1])
        ci_low = None if first == 0 else _edge(fine_u, upper if upper[first - 1] < 0 else lower, first - 1)
        ci_high = None if last == len(fine_u) - 1 else _edge(fine_u, lower if lower[last + 1] > 0 else upper, last)
    elif lower[0] > 0:
        ci_low, ci_high = None, float(x[0])
    elif upper[-1] < 0:
        ci_low, ci_high = float(x[-1]), None
    else:  # from significantly behind to significantly ahead between two fine points
        at = float(2 ** fine_u[int(np.argmax(lower > 0))])
        ci_low = ci_high = at
    if ci_low is None:
        notes.append(
            f"the lower end is at or below the smallest size ({x[0]:g}): fine-tuning is not significantly behind there"
        )
    elif upper[-1] < 0:
        notes.append(
            f"fine-tuning is still significantly behind at the largest size ({x[-1]:g}): the crossing, "
            "if there is one, lies beyond it"
        )
    if ci_high is None:
        notes.append(
            f"the upper end is beyond the largest size ({x[-1]:g}): fine-tuning is not significantly ahead there"
        )
    elif lower[0] > 0:
        notes.append(f"fine-tuning is significantly ahead already at the smallest size ({x[0]:g})")

    sd = d.std(axis=0, ddof=1)
    return {
        "n": n,
        "ci_low": ci_low,
        "ci_high": ci_high,
        "status": status,
        "ci_note": "; ".join(notes) or None,
        "seeds": n_seeds,
        "seed_list": [int(s) for s in seeds],
        "confidence": confidence,
        "method": "paired t over seeds, inverted",
        "difference": {
            label: {
                "x": float(x[k]),
                "mean": float(mean[k]),
                "low": float(mean[k] - half * sd[k]),
                "high": float(mean[k] + half * sd[k]),
            }
            for k, label in enumerate(labels)
        },
    }


def _p_greater(a: Iterable[float], b: Iterable[float]) -> float:
    """P(A > B) over all pairs of one value of ``a`` and one of ``b``, ties counting half."""
    diff = np.asarray(list(a), dtype=float)[:, None] - np.asarray(list(b), dtype=float)[None, :]
    return float(np.mean((diff > 0) + 0.5 * (diff == 0)))


def variance_aware(prompt: dict[str, Any], finetune: dict[str, Any]) -> dict[str, Any]:
    """A break-even that counts the seed-to-seed variance one deployment faces, not only the means.

    At each common size above 0, ``p_ahead`` is the probability that one fine-tuning run beats one prompting run:
    over all S_f x S_p pairs of a fine-tune seed and a prompt seed, ties counting half. Comparing every run of one
    route with every run of the other measures how much the two routes' distributions over draws overlap (the
    probability of superiority, i.e. the Mann-Whitney AUC): an effect size, not a test. The paired, same-seed
    comparison is the crossover's. ``n`` is the smallest size from which
    p_ahead > 0.5 at it and every larger size (None when fine-tuning is not ahead for most pairs at the largest)."""
    labels = _common(prompt, finetune)
    p_ahead = {
        label: _p_greater(_scores(finetune[label]).values(), _scores(prompt[label]).values()) for label in labels
    }
    n, size = None, None
    for label in reversed(labels):
        if p_ahead[label] <= 0.5:
            break
        n, size = float(finetune[label]["x"]), label
    return {"n": n, "size": size, "p_ahead": p_ahead}


def _monotone(curve: dict[str, Any], seeds: list[str] | None) -> tuple[np.ndarray, np.ndarray]:
    """A route curve's (x, mean quality) ordered by x, the mean over ``seeds`` (None: all of each size's), made
    non-decreasing by a running maximum so that it can be inverted."""
    points = sorted(curve.values(), key=lambda p: p["x"])
    x = np.array([p["x"] for p in points], dtype=float)
    y = [np.mean([v for s, v in _scores(p).items() if seeds is None or s in seeds]) for p in points]
    return x, np.maximum.accumulate(np.array(y, dtype=float))


def _inverse(x: np.ndarray, y: np.ndarray, q: np.ndarray) -> np.ndarray:
    """The smallest x at which the (non-decreasing, piecewise-linear) curve reaches each quality in ``q``; every
    q lies within the curve's range."""
    j = np.searchsorted(y, q, side="left")  # the first point with y >= q
    prev = np.maximum(j - 1, 0)
    rise = np.where(j > 0, y[j] - y[prev], 1.0)
    return np.where(j > 0, x[prev] + (q - y[prev]) / rise * (x[j] - x[prev]), x[0])


def _advantage(p: tuple[np.ndarray, np.ndarray], f: tuple[np.ndarray, np.ndarray]) -> dict[str, Any]:
    (xp, yp), (xf, yf) = p, f
    low, high = max(yp[0], yf[0]), min(yp[-1], yf[-1])
    if high == low:
        # One quality in common, typically a flat prompt curve (zero-shot, the best prompt at every size) that the
        # fine-tune curve passes: there is no range to average over, so the gap at that quality, the examples
        # fine-tuning needs to reach it beyond the fewest with which the prompt does (0 for zero-shot).
        q = np.array([low])
        gap = float(_inverse(xf, yf, q)[0] - _inverse(xp, yp, q)[0])
        return {"examples": gap, "range": [float(low), float(high)], "flat": True}
    if not high > low:
        return {
            "examples": None,
            "why": f"the two mean curves have no common quality range (prompt {yp[0]:.3f} to {yp[-1]:.3f}, "
            f"fine-tune {yf[0]:.3f} to {yf[-1]:.3f})",
            "flat": False,
        }
    ys = np.concatenate([yp, yf])
    breaks = np.unique(np.concatenate([[low, high], ys[(ys > low) & (ys < high)]]))
    # between breakpoints both inverses are linear, so the midpoint rule integrates them exactly (and never
    # evaluates at a plateau's jump)
    mid = (breaks[:-1] + breaks[1:]) / 2
    area = float(np.sum(np.diff(breaks) * (_inverse(xf, yf, mid) - _inverse(xp, yp, mid))))
    return {"examples": area / (high - low), "range": [float(low), float(high)], "flat": False}


def data_advantage(prompt: dict[str, Any], finetune: dict[str, Any]) -> dict[str, Any]:
    """How many training examples (per class, the curve's unit) the prompt is worth: Le Scao & Rush (2021).

    Each route's mean curve (quality y against size x on a linear axis, the prompt route's size-0 point at x=0) is
    made non-decreasing by a running maximum and inverted: x(y) is the smallest size at which the curve reaches y,
    linear between sizes. Over the quality range both curves reach, [max of the two minima, min of the two maxima],
    the area between x_finetune(y) and x_prompt(y) divided by the range's height is the average number of extra
    examples fine-tuning needs to match the prompt's quality: positive means the prompt is worth that many. When
    the range is a single quality (a flat prompt curve, such as zero-shot chosen at every size, inside the
    fine-tune curve's range), it is the gap at that quality, x_finetune(y) - x_prompt(y): "zero-shot prompting is
    worth as many examples as fine-tuning needs to reach it".

    Means are over the seeds both curves have at every size (all seeds of each when they share none), so that the
    leave-one-out replicates are of the same statistic. ``error`` is the jackknife standard error over those
    seeds, sqrt((S-1)/S * sum_i (theta_i - theta_bar)^2), theta_i computed without seed i in both curves; the
    statistic is not smooth (running maximum, range ends), so take it as an approximate spread. None with fewer
    than 2 seeds, or when some replicate has no common range. Without a common range: ``examples`` None, ``why``.
    ``flat``: the common range is a single quality (a flat prompt curve), so ``examples`` is the gap at it."""
    common = set.intersection(*(set(_scores(p)) for p in [*prompt.values(), *finetune.values()]))
    seeds = sorted(common, key=lambda s: (len(s), s))
    keep = seeds or None
    out = _advantage(_monotone(prompt, keep), _monotone(finetune, keep))
    out["seeds"], out["seed_list"] = len(seeds), [int(s) for s in seeds]
    if out["examples"] is None:
        return out
    out["error"] = None
    if len(seeds) >= 2:
        thetas = [
            _advantage(_monotone(prompt, rest), _monotone(finetune, rest))["examples"]
            for rest in ([s for s in seeds if s != drop] for drop in seeds)
        ]
        if all(t is not None for t in thetas):
            t = np.array(thetas, dtype=float)
            out["error"] = float(math.sqrt((len(t) - 1) / len(t) * np.sum((t - t.mean()) ** 2)))
        else:
            out["why_no_error"] = "without some seed the two curves have no common quality range"
    return out


def p_better(points: list[Point]) -> dict[str, list[dict[str, Any]]]:
    """Per size, for every two methods that ran there: ``p`` = P(A > B), the share of all S_a x S_b pairs of a
    seed of A and a seed of B in which A scores higher on test, ties counting half (P(B > A) = 1 - p)."""
    grouped = _grouped(points)
    out: dict[str, list[dict[str, Any]]] = {}
    for label in _labels(points):
        ran = [m for m in grouped if label in grouped[m]]
        scores = {m: [p.test for p in grouped[m][label].values()] for m in ran}
        out[label] = [
            {"a": a, "b": b, "p": _p_greater(scores[a], scores[b])} for i, a in enumerate(ran) for b in ran[i + 1 :]
        ]
    return out
