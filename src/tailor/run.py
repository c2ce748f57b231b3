"""The whole run, top to bottom: load task → split → adapt each method → evaluate on held-out
test → store → report.

Everything a report shows is written to the run's store as it happens; a method that fails is
recorded as failed and the run goes on; Ctrl-C keeps every finished method's results. A run that
stopped before its end (Ctrl-C, a crash, SIGKILL) is continued with ``resume``: the methods it
finished are kept, the others rerun, and fine-tuning picks up from its last checkpoint.

Under ``torchrun`` every process runs the same run (same splits, same seed): all of them adapt each
method together (the fine-tuning loop splits each step between them) and rank 0 alone evaluates and
writes the run folder.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .backends import load_shared
from .config import TaskSpec
from .contract import Adapted, Context, TaskInfo
from .data import TaskData, load_task_data
from .errors import MethodError, TailorError, TaskFileError
from .methods import METHODS
from .metrics import METRICS, estimate, gold_and_pred, point
from .predict import write_meta
from .progress import NULL_PROGRESS, Progress
from .record import dir_size, git_revision, versions
from .store import STORE_FILE, MethodResult, RunStore
from .types import Example, Prediction, Split, adapting

_PREDICT_CHUNK = 256


@dataclass(frozen=True)
class PlannedMethod:
    """One method entry of the task file, resolved against the registry, with validated options."""

    index: int
    family: str  # display name of the entry
    registered: str
    options: Any


# ---------------------------------------------------------------------------------------------- planning


def plan_methods(spec: TaskSpec, origin: str, kind_of_model: str) -> list[PlannedMethod]:
    """Resolve every method entry and validate its options, before any data is read or model loaded."""
    planned, taken = [], set()
    for i, entry in enumerate(spec.methods):
        if entry.name not in METHODS:
            raise TaskFileError(
                origin, f"methods[{i}].name", f"unknown method {entry.name!r}; registered: {', '.join(METHODS)}"
            )
        method = METHODS[entry.name]
        try:
            options = method.Options.model_validate(entry.options())
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(str(p) for p in err["loc"])
            msg = "unknown option" if err["type"] == "extra_forbidden" else err["msg"]
            allowed = ", ".join(method.Options.model_fields)
            raise TaskFileError(origin, f"methods[{i}].{key}", f"{msg} (options of {entry.name}: {allowed})") from None
        if spec.kind not in method.task_kinds:
            raise TaskFileError(
                origin,
                f"methods[{i}].name",
                f"{entry.name} does not handle {spec.kind} tasks (it handles {', '.join(method.task_kinds)})",
            )
        if kind_of_model not in method.model_kinds:
            raise TaskFileError(
                origin,
                f"methods[{i}].name",
                f"{entry.name} needs a model of kind {', '.join(sorted(method.model_kinds))}; "
                f"{spec.model.name} is {kind_of_model}"
                + ("; methods for it: " + ", ".join(n for n, m in METHODS.items() if kind_of_model in m.model_kinds)),
            )
        family = entry.label or entry.name
        n = 2
        while family in taken:
            family, n = f"{entry.label or entry.name}-{n}", n + 1
        taken.add(family)
        planned.append(PlannedMethod(i, family, entry.name, options))
    return planned


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


# ---------------------------------------------------------------------------------------------- evaluating


def predict_all(adapted: Adapted, examples: Sequence[Example], progress: Progress, what: str) -> list[Prediction]:
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


def score_split(
    spec: TaskSpec,
    labels: Sequence[str] | None,
    examples: Sequence[Example],
    preds: Sequence[Prediction],
    with_ci: bool,
) -> dict[str, Any]:
    gold, pred = gold_and_pred(spec.kind, examples, preds)
    out: dict[str, Any] = {}
    for name in spec.metric_names:
        prep = METRICS[name].prepare(gold, pred, labels)
        if with_ci:
            out[name] = estimate(prep, spec.stats.bootstrap, spec.stats.confidence, spec.seed).to_dict()
        else:
            out[name] = point(prep)
    # Control: how often the output could be used — a label parsed (classification), any text (generation).
    valid = sum(1 for p in preds if (p.label is not None if spec.kind == "classification" else p.output.strip()))
    out["valid_rate"] = valid / len(preds) if preds else 0.0
    out["n"] = len(preds)
    return out


# ---------------------------------------------------------------------------------------------- run folders


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def new_run_dir(spec: TaskSpec, root: Path) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = root / f"{_safe(spec.name)}-{stamp}"
    n = 2
    while path.exists():
        path, n = root / f"{_safe(spec.name)}-{stamp}-{n}", n + 1
    return path


# ---------------------------------------------------------------------------------------------- processes


def process_rank() -> tuple[int, int]:
    """(rank, processes) of this process. Launched by torchrun (``WORLD_SIZE`` > 1), the process group is started
    here; otherwise (0, 1) without touching torch."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1
    from .tuning.loop import distributed

    return distributed()


def on_rank0(fn: Any, world: int) -> Any:
    """``fn()`` computed by rank 0 alone and handed to every process; a :class:`TailorError` it raises is raised on
    every process (so all of them stop together)."""
    if world == 1:
        return fn()
    import torch.distributed as dist

    box: list[Any] = [None]
    error: TailorError | None = None
    if dist.get_rank() == 0:
        try:
            box = [("value", fn())]
        except TailorError as exc:
            error, box = exc, [("error", str(exc))]
    dist.broadcast_object_list(box, src=0)
    what, value = box[0]
    if what == "error":
        raise error or TailorError(value)
    return value


# ---------------------------------------------------------------------------------------------- resuming


def config_differences(old: Any, new: Any, where: str = "") -> list[str]:
    """Where two resolved configurations differ, as ``key: old in the run, new now`` (keys as in the task file)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in [*old, *(k for k in new if k not in old)]:
            key = f"{where}.{k}" if where else str(k)
            if k not in new:
                out.append(f"{key}: {_short(old[k])} in the run, not set now")
            elif k not in old:
                out.append(f"{key}: not set in the run, {_short(new[k])} now")
            else:
                out += config_differences(old[k], new[k], key)
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [d for i, (a, b) in enumerate(zip(old, new)) for d in config_differences(a, b, f"{where}[{i}]")]
    return [] if old == new else [f"{where or 'config'}: {_short(old)} in the run, {_short(new)} now"]


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass(frozen=True)
class _Resume:
    """What a resumed run keeps from its earlier attempt."""

    done: frozenset[str]  # methods stored with status ok
    data: dict[str, Any]  # the data summary the run recorded


def _resume_plan(spec: TaskSpec, run_dir: Path, resume: bool) -> _Resume | None:
    """For ``resume``, what the run in ``run_dir`` keeps, refusing one whose configuration differs; for a new run,
    refuses a folder that already holds a run (its checkpoints would be resumed unasked)."""
    if not resume:
        if (run_dir / STORE_FILE).exists():
            raise TailorError(
                f"{run_dir} already holds a run; continue it with `tailor run TASK --resume {run_dir}`, "
                "or write the new run to another folder"
            )
        return None
    if not (run_dir / STORE_FILE).is_file():
        raise TailorError(f"--resume {run_dir}: no run store ({STORE_FILE}) there; give a folder `tailor run` wrote")
    store = RunStore.open_existing(run_dir)
    try:
        run = store.run()
        done = frozenset(r["method"] for r in store.results() if r["status"] == "ok")
    finally:
        store.close()
    differ = config_differences(run["config"], json.loads(json.dumps(spec.model_dump(mode="json"))))
    if differ:
        raise TailorError(
            f"refusing to resume {run_dir}: the task's configuration differs from the run's at "
            + "; ".join(differ)
            + ". Resume with the same task file and overrides, or start a new run."
        )
    return _Resume(done, run["data"])


def _check_same_data(stored: dict[str, Any], now: dict[str, Any], run_dir: Path) -> None:
    """The data a resumed run reads must split as it did (notes aside: they hold timings)."""
    now = json.loads(json.dumps(now))  # as the store holds it (lists, not tuples)
    differ = config_differences(
        {k: v for k, v in stored.items() if k != "notes"}, {k: v for k, v in now.items() if k != "notes"}, "data"
    )
    if differ:
        raise TailorError(f"refusing to resume {run_dir}: the data no longer splits as it did: " + "; ".join(differ))


@contextmanager
def _run_lock(run_dir: Path) -> Iterator[None]:
    """One process at a time writes a run folder. The lock dies with its process, so a killed run can be resumed."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    with (run_dir / ".lock").open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise TailorError(f"{run_dir} is being written by another tailor process; wait for it or stop it") from None
        yield


# ---------------------------------------------------------------------------------------------- the run


def run_task(
    spec: TaskSpec,
    base: Path,
    run_dir: Path,
    *,
    task_file: str | None = None,
    progress: Progress = NULL_PROGRESS,
    resume: bool = False,
) -> Path:
    """Run every method of ``spec`` and store the results in ``run_dir``. Returns ``run_dir``.

    With ``resume``, continue the run ``run_dir`` holds (stopped by Ctrl-C, a crash or SIGKILL): its configuration
    must equal ``spec``'s; methods it finished are kept, the others rerun, and fine-tuning methods pick up their
    checkpoint from ``run_dir/work/METHOD/checkpoint``. Without it, ``run_dir`` must not hold a run yet.
    """
    from .backends.models import model_kind

    origin = task_file or "task"
    rank, world = process_rank()
    earlier = on_rank0(lambda: _resume_plan(spec, run_dir, resume), world)
    missing_metrics = [m for m in spec.metric_names if m not in METRICS or spec.kind not in METRICS[m].kinds]
    if missing_metrics:
        raise TaskFileError(
            origin,
            "metrics",
            f"not available for {spec.kind}: {', '.join(missing_metrics)} "
            f"(available: {', '.join(k for k, m in METRICS.items() if spec.kind in m.kinds) or 'none'})",
        )
    kind = model_kind(spec.model)
    planned = plan_methods(spec, origin, kind)
    data = load_task_data(spec, base, origin)
    if earlier is not None:
        _check_same_data(earlier.data, data.summary(), run_dir)
    task = TaskInfo(
        spec.name,
        spec.kind,
        tuple(data.labels) if data.labels else None,
        tuple(spec.fields.inputs),
        tuple(spec.metric_names),
    )
    resources: dict[str, Any] = {}  # shared across methods: one frozen base model, one embedding cache
    contexts = _check_methods(spec, planned, data, task, run_dir, progress, origin, resources)
    t0 = time.perf_counter()
    if load_shared(kind, spec.model, resources) is not None:
        data.notes.append(
            f"base model {spec.model.name} loaded once for all methods in {time.perf_counter() - t0:.1f} s "
            "(not counted in any method's adapt time)"
        )

    with ExitStack() as stack:
        store: RunStore | None = None  # rank 0's; the other processes write nothing
        if rank == 0:
            run_dir.mkdir(parents=True, exist_ok=True)
            stack.enter_context(_run_lock(run_dir))
            store = RunStore(run_dir)
            stack.callback(store.close)
            if earlier is not None:
                store.reopen_run()
            else:
                store.start_run(
                    task=spec.name,
                    seed=spec.seed,
                    git_rev=git_revision(),
                    task_file=task_file,
                    config=spec.model_dump(mode="json"),
                    versions=versions(),
                    data=data.summary(),
                )
                store.add_bad_rows((b.split, b.where, b.reason) for b in data.bad_rows)
        status = "failed"
        try:
            for plan, (ctx, train) in zip(planned, contexts):
                method = METHODS[plan.registered]
                for variant, options in method.variants(plan.options).items():
                    name = f"{plan.family}/{variant}" if variant else plan.family
                    if earlier is not None and name in earlier.done:
                        progress.log(f"[bold]{name}[/bold]: kept, it finished before the run stopped")
                        continue
                    progress.log(f"[bold]{name}[/bold] ({method.route}) on {len(train)} training examples")
                    result = _run_one(
                        spec, plan, name, variant, options, ctx, train, data, run_dir, store, progress, rank
                    )
                    progress.log(_one_line(result))
            status = "finished"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            if store is not None:
                store.finish_run(status)
    return run_dir


def _check_methods(
    spec, planned, data: TaskData, task, run_dir, progress, origin, resources
) -> list[tuple[Context, Split]]:
    out = []
    for plan in planned:
        seed = plan.options.seed if plan.options.seed is not None else spec.seed
        ctx = Context(
            task=task,
            model=spec.model,
            seed=seed,
            workdir=run_dir / "work" / _safe(plan.family),
            progress=progress,
            resources=resources,
        )
        train = sample_per_class(data.train, plan.options.train_per_class, seed)
        try:
            METHODS[plan.registered].check(plan.options, train, ctx)
        except MethodError as exc:
            key = f"methods[{plan.index}]" + (f".{exc.key}" if exc.key else "")
            raise TaskFileError(origin, key, exc.message) from None
        out.append((ctx, train))
    return out


@contextmanager
def _cold(resources: dict[str, Any]) -> Iterator[None]:
    """Bypass shared caches while a cost is timed.

    Adapting and test inference are timed cold: embeddings an earlier method computed (of the
    train or test texts) are not reused, so every method pays its own cost whatever the order.
    Dev evaluation, which is not timed, does use the caches.
    """
    with ExitStack() as stack:
        for resource in resources.values():
            if hasattr(resource, "cache_disabled"):
                stack.enter_context(resource.cache_disabled())
        yield


def _run_one(
    spec,
    plan,
    name,
    variant,
    options,
    ctx: Context,
    train: Split,
    data: TaskData,
    run_dir: Path,
    store: RunStore | None,
    progress: Progress,
    rank: int = 0,
) -> MethodResult:
    """Adapt one method and, on rank 0, evaluate it and store it. Returns its result."""
    method = METHODS[plan.registered]
    result = MethodResult(
        method=name,
        family=plan.family,
        variant=variant or None,
        registered=plan.registered,
        route=method.route,
        status="failed",
        options=options.model_dump(mode="json"),
        n_train=len(train),
    )
    try:
        if rank == 0:
            ctx.workdir.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        with adapting(name), _cold(ctx.resources):  # the sealed test split refuses to open inside this block
            adapted = method.adapt(options, train, data.dev, ctx)
        adapt_seconds = time.perf_counter() - t0
        details = getattr(adapted, "details", None)  # fine-tuning: data, audits, training
        result.details = details if isinstance(details, dict) and details else None
        if rank != 0 or store is None:  # the other processes helped adapt; rank 0 evaluates and writes
            result.status = "ok"
            return result

        predictions: dict[str, list[tuple[Example, Prediction]]] = {}
        if data.dev is not None:
            dev_preds = predict_all(adapted, data.dev.examples, progress, f"{name}: dev")
            result.dev = score_split(spec, data.labels, data.dev.examples, dev_preds, with_ci=False)
            predictions["dev"] = list(zip(data.dev.examples, dev_preds))

        test = data.test.open()
        with _cold(ctx.resources):
            t0 = time.perf_counter()
            test_preds = predict_all(adapted, test.examples, progress, f"{name}: test")
            predict_seconds = time.perf_counter() - t0
        result.test = score_split(spec, data.labels, test.examples, test_preds, with_ci=True)
        predictions["test"] = list(zip(test.examples, test_preds))

        out_dir = run_dir / "adapted" / _safe(name)
        shutil.rmtree(out_dir, ignore_errors=True)  # an earlier attempt's files, when resumed
        out_dir.mkdir(parents=True, exist_ok=True)
        adapted.save(out_dir)
        write_adapted_meta(out_dir, plan.registered, name, options, ctx, spec)
        result.adapted_dir = str(out_dir.relative_to(run_dir))
        result.n_train = int(getattr(adapted, "examples_used", len(train)))
        result.costs = {
            "adapt_seconds": adapt_seconds,
            "predict_seconds_per_1k": 1000 * predict_seconds / max(1, len(test)),
            "trainable_params": int(adapted.trainable_params),
            "disk_bytes": dir_size(out_dir),
        }
        result.status = "ok"
        store.add_result(result, predictions)
    except KeyboardInterrupt:
        raise
    except MethodError as exc:
        if exc.key == "resume":  # a checkpoint that isn't this run's: stop, rather than retrain unasked
            raise TailorError(f"{name}: {exc.message}") from None
        _failed(result, exc, store, progress)
    except Exception as exc:  # a failing method is recorded (with tailor's own message, if it is one); the run goes on
        _failed(result, exc, store, progress)
    return result


def _failed(result: MethodResult, exc: Exception, store: RunStore | None, progress: Progress) -> None:
    result.error = f"{type(exc).__name__}: {exc}"
    if store is not None:
        store.add_result(result)
    progress.log(f"[red]{result.method} failed:[/red] {result.error}")


def write_adapted_meta(path: Path, registered: str, name: str, options: Any, ctx: Context, spec: TaskSpec) -> None:
    write_meta(
        path,
        method=registered,
        name=name,
        options=options.model_dump(mode="json"),
        seed=ctx.seed,
        task=ctx.task.to_dict(),
        model=spec.model.model_dump(mode="json"),
    )


def _one_line(r: MethodResult) -> str:
    if r.status == "ok" and not r.test:
        return "  adapted (rank 0 evaluates)"
    if r.status != "ok" or not r.test:
        return f"  [red]failed[/red]: {r.error}"
    first = next(k for k in r.test if isinstance(r.test[k], dict))
    m = r.test[first]
    resumed = ((r.details or {}).get("training") or {}).get("resumed_from_step")
    return (
        f"  test {first} {m['value']:.3f} [{m['ci_low']:.3f}, {m['ci_high']:.3f}]"
        f"  adapt {r.costs['adapt_seconds']:.1f}s  {r.costs['predict_seconds_per_1k']:.2f}s/1k"
        + (f"  (training resumed from step {resumed})" if resumed else "")
    )
