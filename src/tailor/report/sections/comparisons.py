"""Which trial wins, and how sure the test set lets us be: paired tests between every two compared trials (paired
bootstrap, Holm-adjusted; McNemar on accuracy), the winner chosen on dev, the smallest difference the test set can
tell apart between the two best, and the warnings a reader must see before trusting the leaderboard."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ...formats import fmt_ci, fmt_p
from ...stats.metrics import METRICS, compare_all, min_detectable_difference
from ...stats.outcomes import scored_value
from ..records import Records
from .leaderboard import Row

MIN_DEV = 30
"""Fewer dev examples than this make a choice on dev (of a variant, of the winner) a coin toss: warned about."""


@dataclass(frozen=True)
class Comparisons:
    """The paired tests (``pairs``, as :meth:`tailor.stats.metrics.PairedResult.to_dict` gives them), the ``winner``
    (None: no compared trial finished), the ``power`` of the test set between the two best (classification), the
    ``warnings`` and the trials ``compared`` (in a curve, each method at its largest size and first seed)."""

    pairs: list[dict[str, Any]]
    winner: dict[str, Any] | None
    power: dict[str, Any] | None
    warnings: list[str]
    compared: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "winner": self.winner,
            "power": self.power,
            "warnings": self.warnings,
            "comparisons": self.pairs,
            "compared": sorted(self.compared),
        }


def build_comparisons(records: Records, leaderboard: list[Row]) -> Comparisons:
    """The paired tests from the compared trials' stored test predictions, and what they say about the winner."""
    config, kind, metrics = records.config, records.config["kind"], records.metrics
    primary = metrics[0]
    prepared, correct, ids = {}, {}, {}
    for trial, preds in records.test_predictions.items():
        ids[trial] = [p["example_id"] for p in preds]
        gold = [p["target"] for p in preds]
        out = [scored_value(kind, p["label"], p["output"]) for p in preds]
        prepared[trial] = METRICS[primary].prepare(gold, out, records.labels)
        if kind == "classification":
            correct[trial] = np.array([g == o for g, o in zip(gold, out)])
    if len({tuple(v) for v in ids.values()}) > 1:
        raise ValueError("methods were evaluated on different test examples; paired tests are impossible")
    stats = config.get("stats", {})
    pairs = (
        compare_all(
            prepared,
            correct or None,
            primary,
            stats.get("bootstrap", 1000),
            stats.get("confidence", 0.95),
            config.get("seed", 0),
        )
        if len(prepared) > 1
        else []
    )
    position = {trial: i for i, trial in enumerate(records.compared)}
    # the winner is chosen among the compared trials in the run's order (ties: the first)
    in_order = sorted((r for r in leaderboard if r.trial in position), key=lambda r: position[r.trial])
    winner = choose_winner(in_order, primary, pairs)
    power = top_two_power([r.trial for r in leaderboard], correct)
    return Comparisons(
        pairs=[p.to_dict() for p in pairs],
        winner=winner,
        power=power,
        warnings=data_warnings(records.run["data"], winner) + power_warnings(power),
        compared=records.compared,
    )


def choose_winner(rows: list[Row], primary: str, pairs: list) -> dict[str, Any] | None:
    """The best finished trial on dev (on test when some has no dev score), and which others it beats
    significantly."""
    ok = [r for r in rows if r.status == "ok"]
    if not ok:
        return None
    by_dev = all(r.dev_primary is not None for r in ok)
    best = max(ok, key=(lambda r: r.dev_primary) if by_dev else (lambda r: r.test[primary]["value"]))
    beats, ties = [], []
    for p in pairs:
        if best.trial not in (p.a, p.b):
            continue
        other = p.b if p.a == best.trial else p.a
        better = (p.diff > 0) == (p.a == best.trial)
        (beats if p.significant and better else ties).append(other)
    return {
        "method": best.trial,
        "route": best.route,
        "chosen_on": "dev" if by_dev else "test",
        "test": best.test[primary],
        "significantly_better_than": beats,
        "not_significantly_different": ties,
    }


def data_warnings(data: dict[str, Any], winner: dict[str, Any] | None) -> list[str]:
    """What the reader must know before trusting the leaderboard: test examples also in train, a winner chosen on
    too few dev examples (or on test)."""
    out = []
    for o in data.get("overlaps", []):
        if o["count"]:
            out.append(
                f"{o['count']} {o['splits'][1]} examples also appear in {o['splits'][0]} (same normalized text): "
                "their scores are optimistic; remove them from one split"
            )
    if winner and winner["chosen_on"] == "test":
        out.append("there is no dev split: the winner was chosen on the test split, so its score is optimistic")
    elif winner and 0 < data.get("dev", 0) < MIN_DEV:
        out.append(
            f"the winner was chosen on only {data['dev']} dev examples: the choice is noisy; give a dev split of "
            f"at least {MIN_DEV}"
        )
    return out


def top_two_power(ranked: list[str], correct: dict[str, np.ndarray]) -> dict[str, Any] | None:
    """Classification: what the test set can tell apart between the two best trials on test (the first two of
    ``ranked``, the leaderboard's order, that have ``correct``: each test example answered right or not) — the
    smallest accuracy difference a paired test finds there with 80 % power at α = 0.05, given how often the two
    disagree."""
    top = [t for t in ranked if t in correct][:2]
    if len(top) < 2:
        return None
    a, b = correct[top[0]], correct[top[1]]
    discordance = float(np.mean(a != b))
    return {
        "methods": top,
        "n": len(a),
        "difference": float(abs(a.mean() - b.mean())),
        "discordance": discordance,
        "min_detectable_difference": min_detectable_difference(len(a), discordance),
        "power": 0.8,
        "alpha": 0.05,
    }


def power_warnings(power: dict[str, Any] | None) -> list[str]:
    """A warning when the two best methods are closer than the test set can tell apart."""
    if power is None or power["discordance"] == 0:
        return []
    (a, b), mdd, diff = power["methods"], power["min_detectable_difference"], power["difference"]
    if mdd is None:
        return [
            f"{a} and {b} disagree on too few of the {power['n']} test examples for any accuracy difference between "
            "them to be detected reliably: treat them as tied, or test on more examples"
        ]
    if diff >= mdd:
        return []
    return [
        f"{a} and {b} differ by {diff:.3f} accuracy on test, less than the {mdd:.3f} that {power['n']} test examples "
        f"detect with 80 % power (they disagree on {power['discordance']:.0%} of them): treat them as tied, or test "
        "on more examples"
    ]


def markdown(c: Comparisons, primary: str) -> list[str]:
    """The Winner and Paired comparisons sections of report.md."""
    lines = []
    w = c.winner
    if w:
        lines += [
            "",
            "## Winner",
            "",
            f"**{w['method']}** ({w['route']} route), chosen on {w['chosen_on']}: test {primary} {fmt_ci(w['test'])}.",
        ]
        if w["significantly_better_than"]:
            lines.append(f"Significantly better than: {', '.join(w['significantly_better_than'])}.")
        if w["not_significantly_different"]:
            lines.append(f"Not significantly different from: {', '.join(w['not_significantly_different'])}.")
    if c.pairs:
        lines += [
            "",
            f"## Paired comparisons (test {primary}; paired bootstrap, Holm-adjusted; McNemar on accuracy)",
            "",
            "| A | B | A − B [CI] | p (bootstrap) | p (Holm) | p (McNemar) | significant |",
            "|---|---|---|---|---|---|---|",
        ]
        for p in c.pairs:
            lines.append(
                f"| {p['a']} | {p['b']} | {p['diff']:+.3f} [{p['ci_low']:+.3f}, {p['ci_high']:+.3f}] | "
                f"{fmt_p(p['p_bootstrap'])} | {fmt_p(p['p_adjusted'])} | {fmt_p(p['p_mcnemar'])} | "
                f"{'yes' if p['significant'] else 'no'} |"
            )
    return lines
