"""How good a candidate is on the whole search part, judged from the few minibatches it was scored on.

A candidate's mean over one minibatch of 32 is a noisy guess (a standard error near 0.06 for an accuracy of 0.85):
among dozens of candidates scored once, the best mean belongs to the luckiest, not the best. So the search judges
candidates it hasn't scored on the whole search part by an empirical-Bayes estimate instead: each mean is pulled
toward the mean of the candidates of its kind, the more the fewer minibatches stand behind it. How much follows from
the data: the spread of one minibatch's score around its candidate's mean (from candidates scored on several) against
the spread of the candidates' means themselves (James-Stein; Efron & Morris 1975). One lucky minibatch then no longer
outranks a candidate that scored nearly as well on four, and a search that asks its good candidates again (TPE)
gathers the evidence that lets them lead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

FLOOR = 1e-6
"""Smallest spread of the candidates' true scores the estimate assumes (all alike would shrink every mean to one)."""


def estimates(scores: Mapping[str, Sequence[float]], kinds: Mapping[str, str] | None = None) -> dict[str, float]:
    """Each candidate's minibatch scores → an estimate of its mean over all minibatches (``-inf`` with none).

    ``kinds`` (candidate → its kind, such as the method it is) makes each mean shrink toward the mean of its own kind:
    zero-shot and few-shot prompts differ more than two few-shot prompts do, and one centre for both would leave the
    few-shot ones barely shrunk. A kind with a single candidate shrinks toward the mean of all. With no candidate
    scored on two minibatches yet there is no measure of the noise, and the means are returned as they are.
    """
    scored = {k: list(v) for k, v in scores.items() if v}
    means = {k: sum(v) / len(v) for k, v in scored.items()}
    dof = sum(len(v) - 1 for v in scored.values())  # only candidates scored on several minibatches measure the noise
    out = {k: float("-inf") for k in scores}
    if not dof or len(means) < 2:
        return out | means
    noise = sum((x - means[k]) ** 2 for k, v in scored.items() for x in v) / dof  # one minibatch around its candidate
    groups: dict[str, list[str]] = {}
    for k in scored:
        groups.setdefault(kinds.get(k, "") if kinds else "", []).append(k)
    prior = {kind: _prior(members, means, scored, noise) for kind, members in groups.items() if len(members) > 1}
    for kind, members in groups.items():
        centre, true_spread = prior.get(kind) or _prior(list(scored), means, scored, noise)
        for k in members:
            weight = true_spread / (true_spread + noise / len(scored[k]))
            out[k] = centre + weight * (means[k] - centre)
    return out


def _prior(members: list[str], means: Mapping[str, float], scored: Mapping[str, list[float]], noise: float):
    """The centre of ``members``' means and the spread of their true scores (the means' spread less the noise's)."""
    centre = sum(means[k] for k in members) / len(members)
    spread = sum((means[k] - centre) ** 2 for k in members) / (len(members) - 1)
    return centre, max(spread - sum(noise / len(scored[k]) for k in members) / len(members), FLOOR)
