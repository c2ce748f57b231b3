"""Planning a run: every method entry of the task file resolved into trials, every mistake found before any model
is loaded.

A *trial* is the unit the runner executes, stores, resumes and reports: a method entry × variant × training size
× seed, with the model it adapts. Planning happens in two steps, both before any model is loaded:
:func:`plan_trials` reads only the task file (methods, options, models, kinds); :func:`prepare_trials`, once the
data is read, draws each trial's training sample and lets each method check its options against it.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .backends.pool import ModelPool
from .config import ModelSpec, TaskSpec, dotted_key
from .contract import Context, TaskInfo
from .data import TaskData
from .errors import MethodError, TailorError, TaskFileError
from .folders import safe_name
from .methods import METHODS
from .metrics import METRICS
from .progress import Progress
from .types import Split


@dataclass(frozen=True)
class Trial:
    """One thing the runner adapts, evaluates and stores.

    Attributes:
        name: Unique display name (``family`` or ``family/variant``); the store's key.
        entry: Index of the method entry in the task file (for error keys).
        family: The entry's display name (its ``label``, or the method's name made unique).
        variant: The variant's name, or None.
        method: The registered method name.
        options: The method's validated options for this variant.
        entry_options: The entry's options before its variants were expanded (what the method checks).
        model: The model this trial adapts (the entry's own ``model:``, or the task's).
        seed: The trial's seed (the entry's ``seed``, or the task's).
    """

    name: str
    entry: int
    family: str
    variant: str | None
    method: str
    options: Any
    entry_options: Any
    model: ModelSpec
    seed: int

    @property
    def key(self) -> str:
        """Where this trial's entry sits in the task file, for errors: ``methods[2]``."""
        return f"methods[{self.entry}]"


def plan_trials(spec: TaskSpec, origin: str, pool: ModelPool) -> list[Trial]:
    """Resolve every method entry (method, options, model, model kind) into trials, reading no data and loading
    no model (a model's kind is read from its configuration file)."""
    missing = [m for m in spec.metric_names if m not in METRICS or spec.kind not in METRICS[m].kinds]
    if missing:
        available = ", ".join(k for k, m in METRICS.items() if spec.kind in m.kinds) or "none"
        raise TaskFileError(origin, "metrics", f"not available for {spec.kind}: {', '.join(missing)} ({available})")
    trials: list[Trial] = []
    taken: set[str] = set()
    for i, entry in enumerate(spec.methods):
        at = f"methods[{i}]"
        if entry.name not in METHODS:
            raise TaskFileError(
                origin, f"{at}.name", f"unknown method {entry.name!r}; registered: {', '.join(METHODS)}"
            )
        method = METHODS[entry.name]
        try:
            options = method.Options.model_validate(entry.options())
        except ValidationError as exc:
            err = exc.errors()[0]
            msg = "unknown option" if err["type"] == "extra_forbidden" else err["msg"]
            allowed = ", ".join(method.Options.model_fields)
            key = f"{at}.{dotted_key(err['loc'])}"
            raise TaskFileError(origin, key, f"{msg} (options of {entry.name}: {allowed})") from None
        if spec.kind not in method.task_kinds:
            handles = ", ".join(sorted(method.task_kinds))
            raise TaskFileError(origin, f"{at}.name", f"{entry.name} does not handle {spec.kind} tasks ({handles})")
        _check_sampling(options, spec, origin, at)
        model = entry.model or spec.model
        model_at = f"{at}.model" if entry.model else "model"
        kind = _kind(pool, model, origin, model_at)
        if kind not in method.model_kinds:
            able = ", ".join(n for n, m in METHODS.items() if kind in m.model_kinds and spec.kind in m.task_kinds)
            raise TaskFileError(
                origin,
                f"{at}.model" if entry.model else f"{at}.name",
                f"{entry.name} needs a model of kind {', '.join(sorted(method.model_kinds))}; {model.name} is {kind} "
                f"(methods for {kind} models: {able or 'none'})",
            )
        family = entry.label or entry.name
        n = 2
        while family in taken:
            family, n = f"{entry.label or entry.name}-{n}", n + 1
        taken.add(family)
        seed = options.seed if options.seed is not None else spec.seed
        for variant, opts in method.variants(options).items():
            name = f"{family}/{variant}" if variant else family
            trials.append(Trial(name, i, family, variant or None, entry.name, opts, options, model, seed))
    return trials


def _check_sampling(options: Any, spec: TaskSpec, origin: str, at: str) -> None:
    if options.train_per_class is not None and options.train_size is not None:
        raise TaskFileError(origin, f"{at}.train_size", "give train_size or train_per_class, not both")
    if options.train_per_class is not None and spec.kind != "classification":
        raise TaskFileError(
            origin,
            f"{at}.train_per_class",
            f"a {spec.kind} task has no classes; use train_size for a sample of N training examples",
        )


def _kind(pool: ModelPool, model: ModelSpec, origin: str, at: str) -> str:
    """The model's kind, or an error at ``at.name`` when its folder is missing or its configuration unreadable."""
    try:
        return pool.kind(model)
    except TailorError as exc:
        raise TaskFileError(origin, f"{at}.name", str(exc).removeprefix("model.name: ")) from None


def sample_per_class(train: Split, n: int | None, seed: int) -> Split:
    """At most ``n`` training examples per class, a seeded sample in the split's original order."""
    if n is None:
        return train
    by_class: dict[str, list[int]] = defaultdict(list)
    for i, ex in enumerate(train.examples):
        by_class[ex.label].append(i)
    rng = random.Random(seed)
    keep = sorted(i for c in sorted(by_class) for i in rng.sample(by_class[c], min(n, len(by_class[c]))))
    return Split(train.name, tuple(train.examples[i] for i in keep))


def sample_size(train: Split, n: int | None, seed: int) -> Split:
    """``n`` training examples, a seeded sample in the split's original order (any task kind)."""
    if n is None or n >= len(train):
        return train
    keep = sorted(random.Random(seed).sample(range(len(train)), n))
    return Split(train.name, tuple(train.examples[i] for i in keep))


def task_info(spec: TaskSpec, data: TaskData) -> TaskInfo:
    labels = tuple(data.labels) if data.labels else None
    return TaskInfo(spec.name, spec.kind, labels, tuple(spec.fields.inputs), tuple(spec.metric_names))


def prepare_trials(
    trials: list[Trial],
    data: TaskData,
    task: TaskInfo,
    run_dir: Path,
    progress: Progress,
    origin: str,
    pool: ModelPool,
) -> list[tuple[Trial, Context, Split]]:
    """Each trial's context and training sample, after its method checked its options against them (no model is
    loaded: methods read configurations and capabilities only)."""
    out = []
    checked: dict[int, tuple[Context, Split]] = {}
    for trial in trials:
        options = trial.options
        if trial.entry in checked:  # variants share their entry's sample and checks, not its scratch folder
            ctx, train = checked[trial.entry]
            out.append((trial, replace(ctx, workdir=run_dir / "work" / safe_name(trial.name)), train))
            continue
        if options.train_size is not None and options.train_size > len(data.train):
            raise TaskFileError(
                origin,
                f"{trial.key}.train_size",
                f"train_size {options.train_size} is larger than the training split ({len(data.train)} examples)",
            )
        train = sample_per_class(data.train, options.train_per_class, trial.seed)
        train = sample_size(train, options.train_size, trial.seed)
        ctx = Context(
            task=task,
            model=trial.model,
            seed=trial.seed,
            workdir=run_dir / "work" / safe_name(trial.name),  # per trial: checkpoints never shared
            progress=progress,
            models=pool,
        )
        try:
            METHODS[trial.method].check(trial.entry_options, train, ctx)
        except MethodError as exc:
            raise TaskFileError(origin, trial.key + (f".{exc.key}" if exc.key else ""), exc.message) from None
        checked[trial.entry] = (ctx, train)
        out.append((trial, ctx, train))
    return out
