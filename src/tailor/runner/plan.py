"""Planning a run: every method entry of the task file resolved into trials, every mistake found before any model
is loaded.

A *trial* is the unit the runner executes, stores, resumes and reports: a method entry × variant × training size
× seed, with the model it adapts. A task with a ``curve:`` has one trial per method, variant, curve size and seed
(``few-shot@16:s2``); without one, one per method and variant. Planning happens in two steps, both before any
model is loaded: :func:`plan_trials` reads only the task file (methods, options, models, kinds);
:func:`prepare_trials`, once the data is read, draws each trial's training sample and lets each method check its
options against it.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..backends.models import error_key
from ..backends.pool import ModelPool
from ..config.task import MethodCurveSpec, ModelSpec, TaskSpec, dotted_key
from ..contract import Context, Method, TaskInfo
from ..data.load import TaskData
from ..errors import MethodError, TailorError, TaskFileError
from ..methods import METHODS
from ..progress import Progress
from ..stats.metrics import METRICS
from ..types import Split
from .folders import safe_name


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
        seed: The trial's seed (the entry's ``seed``, or the task's; in a curve, the curve's).
        size: In a curve, the trial's training size (per class for classification; ``"all"``); else None.
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
    size: int | str | None = None

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
            msg = "unknown option" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
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
        points = curve_points(spec, method, options, origin, at, entry.curve) if spec.curve else [(None, seed)]
        for variant, opts in method.variants(options).items():
            name = f"{family}/{variant}" if variant else family
            for size, s in points:
                point = f"{name}@{size}:s{s}" if size is not None else name
                trials.append(Trial(point, i, family, variant or None, entry.name, opts, options, model, s, size))
    return trials


def curve_points(
    spec: TaskSpec, method: Method, options: Any, origin: str, at: str, own: MethodCurveSpec | None = None
) -> list[tuple[int | str, int]]:
    """The (size, seed) points of one method entry in the task's curve: size 0 alone for a method that uses no
    examples, every size above 0 for the others; each at every seed. ``own`` is the entry's `curve:`, which narrows
    them to its sizes and seeds (checked again here: `tailor curve --sizes/--seeds` replaces the task's curve after
    the task file was validated)."""
    curve = spec.curve
    assert curve is not None
    for key in ("train_per_class", "train_size", "seed"):
        if getattr(options, key) is not None:
            what = "seeds" if key == "seed" else "training size"
            raise TaskFileError(origin, f"{at}.{key}", f"the curve sets each trial's {what}; remove `{key}` here")
    own = own or MethodCurveSpec()
    problem = own.mismatch(curve, spec.seed)
    if problem:
        raise TaskFileError(origin, f"{at}.curve.{problem[0]}", problem[1])
    sizes = own.size_list(curve)
    if method.uses_examples(options):
        if own.sizes and 0 in own.sizes:
            raise TaskFileError(
                origin,
                f"{at}.curve.sizes",
                f"{method.name} needs training examples; size 0 is for methods that use none",
            )
        sizes = [s for s in sizes if s != 0]
        if not sizes:
            raise TaskFileError(
                origin, f"{at}.name", f"{method.name} needs training examples, but curve.sizes has no size above 0"
            )
    else:
        if own.sizes and own.sizes != [0]:
            raise TaskFileError(
                origin, f"{at}.curve.sizes", f"{method.name} uses no training examples, so it takes only size 0"
            )
        if 0 not in curve.sizes:
            raise TaskFileError(
                origin,
                f"{at}.name",
                f"{method.name} uses no training examples, so it takes only size 0: add 0 to curve.sizes, or "
                "remove this method from the curve",
            )
        sizes = [0]
    return [(size, seed) for size in sizes for seed in own.seed_list(curve, spec.seed)]


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
        key, message = error_key(exc)  # `name`, or `trust_remote_code`: under the model's entry
        raise TaskFileError(origin, f"{at}.{key}", message) from None


def _shuffled(items: list[int], seed: int, salt: str) -> list[int]:
    """``items`` in an order fixed by ``seed`` and ``salt`` alone (a string seed hashes the same in every process)."""
    order = list(items)
    random.Random(f"{seed}:{salt}").shuffle(order)
    return order


def sample_per_class(train: Split, n: int | None, seed: int) -> Split:
    """At most ``n`` training examples per class, a seeded sample in the split's original order.

    Samples are nested: for one seed, the first ``n`` of each class's fixed shuffled order, so the sample of 8 per
    class lies inside the sample of 16 (a learning curve adds examples; it never redraws them)."""
    if n is None:
        return train
    by_class: dict[str, list[int]] = defaultdict(list)
    for i, ex in enumerate(train.examples):
        by_class[ex.label].append(i)
    keep = sorted(i for c in sorted(by_class) for i in _shuffled(by_class[c], seed, f"class:{c}")[:n])
    return Split(train.name, tuple(train.examples[i] for i in keep))


def sample_size(train: Split, n: int | None, seed: int) -> Split:
    """``n`` training examples, a seeded sample in the split's original order (any task kind); nested like
    :func:`sample_per_class`."""
    if n is None or n >= len(train):
        return train
    keep = sorted(_shuffled(list(range(len(train))), seed, "all")[:n])
    return Split(train.name, tuple(train.examples[i] for i in keep))


def check_curve_sizes(spec: TaskSpec, train: Split, origin: str) -> None:
    """Every curve size fits the training data: per class, the smallest class bounds it."""
    if spec.curve is None:
        return
    sizes = [s for s in spec.curve.sizes if isinstance(s, int)]
    if spec.kind == "classification":
        counts: dict[str, int] = defaultdict(int)
        for ex in train.examples:
            counts[ex.label] += 1
        smallest = min(counts, key=lambda c: (counts[c], c))
        largest, unit = counts[smallest], f"per class (class {smallest!r} has {counts[smallest]} training examples)"
    else:
        largest, unit = len(train), f"(the training split has {len(train)} examples)"
    too_big = [s for s in sizes if s > largest]
    if too_big:
        raise TaskFileError(
            origin,
            "curve.sizes",
            f"{', '.join(map(str, too_big))} exceed the training data: the largest size available is {largest} "
            f"{unit}; use `all` for the whole split",
        )


def trial_sample(spec: TaskSpec, trial: Trial, train: Split) -> Split:
    """The training examples ``trial`` gets: its curve size's nested draw, or its options' sample."""
    if trial.size is not None:
        if trial.size == 0:
            return Split(train.name, ())
        n = None if trial.size == "all" else int(trial.size)
        per_class = spec.kind == "classification"
        return sample_per_class(train, n, trial.seed) if per_class else sample_size(train, n, trial.seed)
    options = trial.options
    return sample_size(sample_per_class(train, options.train_per_class, trial.seed), options.train_size, trial.seed)


def task_info(spec: TaskSpec, data: TaskData) -> TaskInfo:
    labels = tuple(data.labels) if data.labels else None
    return TaskInfo(spec.name, spec.kind, labels, tuple(spec.fields.inputs), tuple(spec.metric_names))


def prepare_trials(
    spec: TaskSpec,
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
    check_curve_sizes(spec, data.train, origin)
    out = []
    checked: dict[tuple, tuple[Context, Split]] = {}
    for trial in trials:
        options = trial.options
        point = (trial.entry, trial.size, trial.seed)
        if point in checked:  # variants share their entry's sample and checks, not its scratch folder
            ctx, train = checked[point]
            out.append((trial, replace(ctx, workdir=run_dir / "work" / safe_name(trial.name)), train))
            continue
        if options.train_size is not None and options.train_size > len(data.train):
            raise TaskFileError(
                origin,
                f"{trial.key}.train_size",
                f"train_size {options.train_size} is larger than the training split ({len(data.train)} examples)",
            )
        train = trial_sample(spec, trial, data.train)
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
        checked[point] = (ctx, train)
        out.append((trial, ctx, train))
    return out
