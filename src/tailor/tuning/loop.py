"""The training recipe for the fine-tune route: steps → dev evaluation on the task metric → early stopping →
best weights restored, with checkpoints a killed run resumes from, in one process or several.

Why our own loop rather than transformers' ``Trainer``: the loss here is computed on packed rows through the
decoder and the output layer separately, on answer positions only (see :mod:`.packing`), which Trainer's
model-calls-its-own-loss design can't express; and a step is defined by examples, not rows, so its gradient
is identical packed or not, split over micro-batches or processes. ``benchmarks/finetune_speed.py`` measures
what this buys against Trainer and TRL's SFTTrainer on the same model and data.

Several processes (``torchrun``; gloo on CPU, NCCL on GPU): every process sees the same example order and
takes every ``world``-th example of each step; gradients are summed with one all-reduce per step over a flat
buffer, and each loss is divided by the step's global target count, so two processes compute the step one
process would.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ..costs.usage import params_per_token, training_flops
from ..errors import MethodError
from ..progress import NULL_PROGRESS, Progress
from .checkpoints import CHECKPOINT, load_checkpoint, save_checkpoint
from .packing import Batch

T = TypeVar("T")


@dataclass(frozen=True)
class LoopSettings:
    """How to train. ``batch_size`` examples per micro-batch per process, ``grad_accum`` micro-batches per step:
    a step covers ``batch_size * grad_accum * processes`` examples."""

    epochs: int = 3
    max_steps: int | None = None
    batch_size: int = 16
    grad_accum: int = 1
    learning_rate: float = 1e-4
    weight_decay: float = 0.0
    warmup_ratio: float = 0.1
    max_grad_norm: float | None = 1.0
    eval_every: int | None = None
    patience: int | None = None
    checkpoint_every: int | None = None
    seed: int = 0


@dataclass
class LoopResult:
    """What happened in training, for the run record."""

    steps: int = 0
    total_steps: int = 0
    tokens: int = 0
    """Real (non-padding) tokens trained on, summed over steps and processes."""
    positions: int = 0
    """Token positions computed, padding included (``tokens`` counts real tokens only)."""
    flops: float = 0.0
    """Estimated training FLOPs: ``6·N`` per real token trained, ``N`` the parameters a token meets
    (:func:`tailor.costs.usage.params_per_token`). The convention's upper bound: the loss computes the output layer on
    answer-predicting positions only, and a frozen weight needs no gradient of its own, so the true figure is
    lower (see :mod:`tailor.costs.usage`)."""
    examples: int = 0
    train_seconds: float = 0.0
    evals: list[dict[str, float]] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    """Training loss of every step (mean over the step's answer tokens)."""
    best_step: int | None = None
    best_metric: float | None = None
    stopped_early: bool = False
    resumed_from_step: int | None = None
    processes: int = 1

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.train_seconds if self.train_seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "total_steps": self.total_steps,
            "tokens": self.tokens,
            "flops": self.flops,
            "examples": self.examples,
            "train_seconds": round(self.train_seconds, 3),
            "tokens_per_s": round(self.tokens_per_s, 1),
            "padding_fraction": round(1 - self.tokens / self.positions, 4) if self.positions else 0.0,
            "evals": self.evals,
            "losses": self.losses,
            "best_step": self.best_step,
            "best_metric": self.best_metric,
            "stopped_early": self.stopped_early,
            "resumed_from_step": self.resumed_from_step,
            "processes": self.processes,
        }


# -------------------------------------------------------------------------------------------- processes


def distributed() -> tuple[int, int]:
    """(rank, world size), starting the process group when launched by torchrun and not yet started."""
    import torch
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        from datetime import timedelta

        if torch.cuda.is_available():  # one GPU per process: "cuda" then means this process's own device
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        # Rank 0 evaluates and predicts alone while the others wait at their next collective (the next step, or the
        # next method's first one): torch's default timeout (10 min for NCCL) would cut a long test prediction short.
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo", timeout=timedelta(hours=6))
    return dist.get_rank(), dist.get_world_size()


def _all_reduce_grads(params: list[Any], loss: float) -> float:
    """Sum every process's gradients (and its part of the step's loss, carried along in the same buffer)."""
    import torch
    import torch.distributed as dist

    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads] + [torch.tensor([loss], dtype=grads[0].dtype)])
    dist.all_reduce(flat)
    at = 0
    for p in params:
        n = p.numel()
        p.grad = flat[at : at + n].view_as(p).clone()
        at += n
    return float(flat[-1])


def _all_reduce_counts(counts: list[int], device: Any) -> list[int]:
    """Every process's counts summed (integers: exact, whatever the gradients' dtype)."""
    import torch
    import torch.distributed as dist

    box = torch.tensor(counts, dtype=torch.int64, device=device)
    dist.all_reduce(box)
    return [int(v) for v in box.tolist()]


def _broadcast(value: Any, world: int) -> Any:
    if world == 1:
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


# -------------------------------------------------------------------------------------------- the loop


def train(
    model: Any,
    rows: Sequence[T],
    make_batch: Callable[[Sequence[T]], Batch],
    loss_fn: Callable[[Any, Batch], tuple[Any, int]],
    count: Callable[[T], int],
    settings: LoopSettings,
    *,
    evaluate: Callable[[], float] | None = None,
    checkpoint_dir: Path | None = None,
    fingerprint: dict[str, str] | None = None,
    progress: Progress = NULL_PROGRESS,
) -> LoopResult:
    """Train ``model``'s trainable parameters on ``rows`` and leave it holding the best weights seen on dev.

    Args:
        model: A torch module whose parameters with ``requires_grad`` are trained.
        rows: Training examples in any form ``make_batch`` takes.
        make_batch: Turns a micro-batch of rows into a :class:`Batch`.
        loss_fn: ``(model, batch) -> (summed loss, number of targets)``.
        count: Targets of one row (answer tokens, or 1): a step's loss is divided by its rows' total.
        settings: Steps, batch sizes, optimizer, schedule, evaluation and checkpoint cadence.
        evaluate: The task metric on a dev subset (higher is better), for early stopping and the best weights.
        checkpoint_dir: Where the resumable checkpoint lives; a checkpoint already there is resumed from.
        fingerprint: What the checkpoint must match to be resumed (see :func:`.checkpoints.fingerprint_of`).
        progress: Shows the steps.

    Returns:
        What happened: steps, losses, evaluations, and the real tokens trained with their estimated FLOPs
        (``6·N`` per token: an upper bound, since the loss computes the output layer on answer positions only).
    """
    import torch
    from transformers import get_linear_schedule_with_warmup

    rank, world = distributed()
    s = settings
    params = [p for p in model.parameters() if p.requires_grad]
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    per_step = s.batch_size * s.grad_accum * world
    steps_per_epoch = max(1, math.ceil(len(rows) / per_step))
    total = s.max_steps or s.epochs * steps_per_epoch
    eval_every = s.eval_every or steps_per_epoch
    checkpoint_every = s.checkpoint_every or eval_every

    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": s.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    try:  # one fused kernel for all tensors (an adapter has a hundred small ones); not every dtype/device has it
        optimizer = torch.optim.AdamW(groups, lr=s.learning_rate, fused=True)
    except (RuntimeError, TypeError):
        optimizer = torch.optim.AdamW(groups, lr=s.learning_rate)
    scheduler = get_linear_schedule_with_warmup(optimizer, math.ceil(s.warmup_ratio * total), total)
    per_token = params_per_token(model)

    result = LoopResult(total_steps=total, processes=world)
    best_state: dict[str, Any] | None = None
    bad_evals = 0
    step = 0
    path = checkpoint_dir / CHECKPOINT if checkpoint_dir else None
    fingerprint = fingerprint or {}
    if path is not None and (state := load_checkpoint(path, fingerprint)) is not None:
        if state.get("per_step", per_step) != per_step:  # the same step numbers would cover other examples
            raise MethodError(
                f"refusing to resume from {path}: its steps cover {state['per_step']} examples, this run's "
                f"{per_step} (batch_size {s.batch_size} × gradient_accumulation {s.grad_accum} × {world} processes); "
                "resume with as many processes as the run was started with",
                key="resume",
            )
        trainable = dict(zip(names, params))
        with torch.no_grad():
            for name, value in state["trainable"].items():
                trainable[name].copy_(value)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        step, bad_evals, best_state = state["step"], state["bad_evals"], state["best_state"]
        for key in (
            "tokens",
            "positions",
            "flops",
            "examples",
            "train_seconds",
            "evals",
            "losses",
            "best_step",
            "best_metric",
            "stopped_early",
        ):
            setattr(result, key, state["result"].get(key, getattr(result, key)))
        result.resumed_from_step = step
        progress.log(f"  resuming from the checkpoint at step {step} of {total}")

    def checkpoint() -> None:
        if path is None:
            return
        if rank == 0:
            trainable = {n: p.detach().clone() for n, p in zip(names, params)}
            summary = result.to_dict() | {"train_seconds": result.train_seconds, "positions": result.positions}
            save_checkpoint(
                path,
                {
                    "fingerprint": fingerprint,
                    "per_step": per_step,
                    "step": step,
                    "trainable": trainable,
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "rng": torch.get_rng_state(),
                    "bad_evals": bad_evals,
                    "best_state": best_state,
                    "result": summary,
                },
            )
        if world > 1:
            torch.distributed.barrier()

    model.train()
    order, order_epoch = np.arange(0), -1
    with progress.bar("training", total) as bar:
        bar.advance(step)
        while step < total and not result.stopped_early:
            epoch, within = divmod(step, steps_per_epoch)
            if order_epoch != epoch:  # each epoch's order depends on the seed and the epoch alone (resumable)
                order, order_epoch = np.random.default_rng([s.seed, epoch]).permutation(len(rows)), epoch
            chosen = [rows[i] for i in order[within * per_step : (within + 1) * per_step]]
            targets = sum(count(r) for r in chosen)
            mine = chosen[rank::world]
            t0 = time.perf_counter()
            summed = []  # the micro-batches' losses, read once per step (a device sync on GPU)
            tokens = positions = 0
            for start in range(0, len(mine), s.batch_size):
                batch = make_batch(mine[start : start + s.batch_size])
                loss, _ = loss_fn(model, batch)
                # summed over this micro-batch, divided by the whole step's targets (on every process)
                (loss / targets).backward()
                summed.append(loss.detach())
                tokens += batch.tokens
                positions += int(batch.input_ids.numel())
            step_loss = float(sum(summed)) / targets
            if world > 1:
                step_loss = _all_reduce_grads(params, step_loss)
                tokens, positions = _all_reduce_counts([tokens, positions], params[0].device)
            result.tokens += tokens
            result.positions += positions
            result.flops += training_flops(per_token, tokens)
            if s.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(params, s.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            result.train_seconds += time.perf_counter() - t0
            result.examples += len(chosen)
            result.losses.append(round(step_loss, 6))
            step += 1
            result.steps = step
            bar.advance(1)

            if evaluate is not None and (step % eval_every == 0 or step == total):
                model.eval()
                metric = _broadcast(evaluate() if rank == 0 else None, world)
                model.train()
                since = result.evals[-1]["step"] if result.evals else 0
                window = result.losses[since:step] or [float("nan")]
                result.evals.append({"step": step, "metric": metric, "train_loss": sum(window) / len(window)})
                if result.best_metric is None or metric > result.best_metric:
                    result.best_metric, result.best_step, bad_evals = metric, step, 0
                    best_state = {n: p.detach().clone() for n, p in zip(names, params)}
                else:
                    bad_evals += 1
                    result.stopped_early = bool(s.patience) and bad_evals >= (s.patience or 0) and step < total
                progress.log(f"  step {step}/{total}: dev {metric:.4f}" + ("  (best)" if bad_evals == 0 else ""))
                checkpoint()
            elif step % checkpoint_every == 0:
                checkpoint()
    result.steps = step
    if best_state is not None:  # the best dev evaluation's weights, not the last step's
        trainable = dict(zip(names, params))
        with torch.no_grad():
            for name, value in best_state.items():
                trainable[name].copy_(value)
    model.eval()
    return result
