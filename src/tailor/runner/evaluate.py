"""Evaluating an adapted model on a split: predictions in chunks, metrics with confidence intervals, the
valid-output rate, and what the queries cost (usage)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from ..contract import Adapted
from ..costs.usage import Usage, total
from ..progress import Progress
from ..stats.metrics import METRICS, estimate, gold_and_pred, point
from ..stats.outcomes import is_valid
from ..types import Example, Prediction

_PREDICT_CHUNK = 256


def predict_all(adapted: Adapted, examples: Sequence[Example], progress: Progress, what: str) -> list[Prediction]:
    """One prediction per example, asked for in chunks (a bar advances per chunk)."""
    out: list[Prediction] = []
    with progress.bar(what, len(examples)) as bar:
        for start in range(0, len(examples), _PREDICT_CHUNK):
            chunk = examples[start : start + _PREDICT_CHUNK]
            preds = adapted.predict(chunk)
            if len(preds) != len(chunk) or any(p.id != ex.id for p, ex in zip(preds, chunk)):
                raise RuntimeError("the method returned predictions that don't match its inputs one to one")
            out.extend(preds)
            bar.advance(len(chunk))
    return out


def predict_dev(
    adapted: Adapted, examples: Sequence[Example], known: Mapping[str, Prediction], progress: Progress, what: str
) -> list[Prediction]:
    """:func:`predict_all` on the dev split, taking the predictions the adapted model already made on it with its
    final weights (``known``, by id: its :attr:`~tailor.contract.AdaptReport.dev_predictions`, fine-tuning's best
    evaluation) rather than asking again."""
    fresh = iter(predict_all(adapted, [ex for ex in examples if ex.id not in known], progress, what))
    return [known[ex.id] if ex.id in known else next(fresh) for ex in examples]


def score_split(
    kind: str,
    metric_names: Sequence[str],
    labels: Sequence[str] | None,
    examples: Sequence[Example],
    preds: Sequence[Prediction],
    ci: tuple[int, float, int] | None = None,
) -> dict[str, Any]:
    """Every metric on ``preds`` (with a bootstrap interval when ``ci`` = (resamples, confidence, seed) is given),
    the valid-output rate and the number of examples.

    Examples whose query failed (``Prediction.error``: a served model that never answered) are not scored — a
    failure is not a wrong answer — but counted in ``n_failed``, with their reasons in ``failures``; ``n`` counts
    the scored ones. A trial with failures is stored as incomplete, and ``--resume`` asks again.
    """
    failed = [p for p in preds if p.error is not None]
    if failed:
        kept = [(ex, p) for ex, p in zip(examples, preds) if p.error is None]
        examples, preds = [ex for ex, _ in kept], [p for _, p in kept]
    gold, pred = gold_and_pred(kind, examples, preds)
    out: dict[str, Any] = {}
    for name in metric_names:
        prep = METRICS[name].prepare(gold, pred, labels)
        out[name] = estimate(prep, *ci).to_dict() if ci else point(prep)
    # Control: how often the output could be used — a label parsed (classification), any text (generation).
    valid = sum(1 for p in preds if is_valid(kind, p.label, p.output))
    out["valid_rate"] = valid / len(preds) if preds else 0.0
    out["n"] = len(preds)
    if failed:
        out["n_failed"] = len(failed)
        out["failures"] = dict(Counter(p.error for p in failed).most_common(5))
    return out


def usage_summary(adapt: Usage, dev: Sequence[Prediction], test: Sequence[Prediction]) -> dict[str, Any]:
    """What adapting cost, what the dev and test queries cost, and the test cost per 1,000 queries.

    ``reported`` counts the test predictions that carried their usage (all of them, for every built-in method).
    """
    test_total = total(p.usage for p in test)
    reported = sum(1 for p in test if p.usage is not None)
    per_1k = {k: v * 1000 / reported for k, v in test_total.to_dict().items()} if reported else None
    return {
        "adapt": adapt.to_dict(),
        "dev": total(p.usage for p in dev).to_dict(),
        "test": test_total.to_dict(),
        "test_per_1k": per_1k,
        "reported": reported,
        "n_test": len(test),
    }
