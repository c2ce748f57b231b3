"""The training tail every method on tailor's own loop shares (the generative recipe and `seq-cls`): a seeded dev
sample scored on the task metric → the loop's settings from the method's options → a checkpoint fingerprint →
train → the checkpoint removed → what it cost.

A method brings what differs — its model, its rows and how they become batches and a loss, and how it predicts dev
— and gets back the loop's record, the dev sample it was evaluated on, and :class:`~tailor.costs.usage.Usage` of the
whole: the training FLOPs and tokens, plus the forward passes of every dev prediction made while training.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..backends.models import resolve_path
from ..contract import Context, TaskInfo
from ..costs.usage import Usage, total
from ..types import Example, Prediction, Split
from .checkpoints import fingerprint_of, weights_signature
from .loop import LoopResult, LoopSettings, distributed, train
from .options import TuneOptions
from .packing import Batch
from .steps import unwrap

T = TypeVar("T")
# Options that change when or how often the loop looks at dev or writes checkpoints, not what it trains: a
# checkpoint written under other values may be resumed.
_CADENCE = {"eval_every", "checkpoint_every", "patience"}


@dataclass
class Trained:
    """What :func:`train_with_dev` did.

    Attributes:
        result: The loop's record (steps, losses, evaluations, tokens, FLOPs).
        dev: The dev examples the task metric was measured on during training (empty: no dev split).
        usage: Training (tokens trained and their FLOPs) plus every dev prediction's forward usage.
        dev_predictions: The predictions on ``dev`` of the evaluation whose weights the model ended with, so that
            those weights are never scored on dev again (empty when that evaluation ran before a resume).
    """

    result: LoopResult
    dev: list[Example]
    usage: Usage
    dev_predictions: list[Prediction] = field(default_factory=list)


def dev_subset(dev: Split | None, n: int, seed: int) -> list[Example]:
    """At most ``n`` dev examples, a seeded sample kept in the split's order."""
    if dev is None or len(dev) == 0:
        return []
    examples = list(dev)
    if len(examples) <= n:
        return examples
    import numpy as np

    idx = sorted(np.random.default_rng(seed).choice(len(examples), size=n, replace=False))
    return [examples[i] for i in idx]


def remove_checkpoint(folder: Path) -> None:
    """A finished method's checkpoint is only weight on disk (for full fine-tuning, three models' worth)."""
    if distributed()[0] == 0:
        shutil.rmtree(folder, ignore_errors=True)


def primary_score(task: TaskInfo, examples: Sequence[Example], preds: Sequence[Prediction]) -> float:
    """The task's first metric on ``examples`` (a point value, higher is better)."""
    from ..stats.metrics import METRICS, gold_and_pred, point

    gold, pred = gold_and_pred(task.kind, examples, preds)
    return point(METRICS[task.primary_metric].prepare(gold, pred, task.labels))


def loop_settings(options: TuneOptions, seed: int) -> LoopSettings:
    """The training loop's settings from a fine-tuning method's options."""
    return LoopSettings(
        epochs=options.epochs,
        max_steps=options.max_steps,
        batch_size=options.batch_size,
        grad_accum=options.gradient_accumulation,
        learning_rate=options.learning_rate,
        weight_decay=options.weight_decay,
        warmup_ratio=options.warmup_ratio,
        max_grad_norm=options.max_grad_norm,
        eval_every=options.eval_every,
        patience=options.patience,
        checkpoint_every=options.checkpoint_every,
        seed=seed,
    )


def train_with_dev(
    model: Any,
    rows: Sequence[T],
    make_batch: Callable[[Sequence[T]], Batch],
    loss_fn: Callable[[Any, Batch], tuple[Any, int]],
    count: Callable[[T], int],
    predict_dev: Callable[[Sequence[Example]], list[Prediction]],
    dev: Split | None,
    options: TuneOptions,
    ctx: Context,
    *,
    method: list[Any],
    data: list[Any],
) -> Trained:
    """Train ``model`` on ``rows`` with :func:`tailor.tuning.loop.train`, scoring a dev sample on the task metric,
    resuming from (and finally removing) the checkpoint in ``ctx.workdir``; the model ends at its best dev weights.

    Args:
        model: The torch model to train (its parameters with ``requires_grad``), PEFT-wrapped or not.
        rows: Training rows, in any form ``make_batch`` takes.
        make_batch: A micro-batch of rows → a :class:`~tailor.tuning.packing.Batch`.
        loss_fn: ``(model, batch) -> (summed loss, targets)``.
        count: Targets of one row (answer tokens, or 1).
        predict_dev: Predicts dev examples with the model as it is (in eval mode) at that step.
        dev: The dev split; ``options.eval_examples`` of it, a seeded sample, are scored (None: no evaluation,
            the last step's weights are kept).
        options: The method's training options (epochs, batch sizes, optimizer, cadence, ``eval_examples``).
        ctx: The run's context (model, task, seed, workdir, progress).
        method: The method's name and settings, for the checkpoint's fingerprint.
        data: The rows' identity (ids and token ids), for the checkpoint's fingerprint.
    """
    dev_examples = dev_subset(dev, options.eval_examples, ctx.seed)
    dev_usage: list[Usage] = []
    made: list[list[Prediction]] = []  # every evaluation's predictions, in order

    def evaluate() -> float:
        preds = predict_dev(dev_examples)
        made.append(preds)
        dev_usage.append(total(p.usage for p in preds))
        return primary_score(ctx.task, dev_examples, preds)

    fingerprint = fingerprint_of(
        model=[ctx.model.name, unwrap(model).config.to_dict(), weights_signature(resolve_path(ctx.model.name))],
        method=method,
        options=options.model_dump(mode="json", exclude=_CADENCE),
        data=data,
        seed=ctx.seed,
    )
    checkpoints = ctx.workdir / "checkpoint"
    result = train(
        model,
        rows,
        make_batch,
        loss_fn,
        count,
        loop_settings(options, ctx.seed),
        evaluate=evaluate if dev_examples else None,
        checkpoint_dir=checkpoints,
        fingerprint=fingerprint,
        progress=ctx.progress,
    )
    remove_checkpoint(checkpoints)
    # The loop ends holding the best evaluation's weights: keep what they predicted then. This process made the
    # last len(made) evaluations (a resumed run's earlier ones came from the checkpoint, without predictions).
    ours = result.evals[len(result.evals) - len(made) :] if made else []
    best = next((preds for e, preds in zip(ours, made) if e["step"] == result.best_step), [])
    trained = Usage(input_tokens=result.tokens, flops=result.flops)
    return Trained(result, dev_examples, trained + total(dev_usage), best)
