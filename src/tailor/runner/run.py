"""The whole run, top to bottom: plan the trials → read and split the data → load each model once → adapt each
trial → evaluate it on the held-out test split → store → (the CLI) report.

Everything a report shows is written to the run's store as it happens; a trial that fails is recorded as failed
and the run goes on; Ctrl-C keeps every finished trial. A run that stopped before its end (Ctrl-C, a crash,
SIGKILL) is continued with ``resume``: the trials it finished are kept, the others rerun, and fine-tuning picks up
from its last checkpoint.

Under ``torchrun`` every process runs the same run (same splits, same seed): all of them adapt each trial together
(the fine-tuning loop splits each step between them) and rank 0 alone evaluates and writes the run folder.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..backends.models import best_device
from ..backends.pool import ModelPool
from ..config.saved import AdaptedFile
from ..config.task import TaskSpec
from ..contract import Adapted, AdaptReport, Context
from ..costs.usage import money_summary
from ..data.load import TaskData, load_task_data
from ..errors import MethodError, TailorError
from ..methods import METHODS
from ..paths import model_name_for_meta, share_adapter_configs, shown_path
from ..progress import NULL_PROGRESS, Progress
from ..types import Split, adapting
from .evaluate import predict_all, predict_dev, score_split, usage_summary
from .folders import Resume, check_same_data, make_run_dir, resume_plan, run_lock, safe_name
from .parallel.job import Executor, Job
from .parallel.processes import on_rank0, process_rank
from .plan import Trial, plan_trials, prepare_trials, task_info
from .record import dir_size, git_revision, versions
from .store import RunStore, TrialResult

CURVE_TIMING_SAMPLE = 256
"""Test examples a learning curve's trial predicts cold, for its per-query time (the rest through the caches)."""


def run_task(
    spec: TaskSpec,
    base: Path,
    run_dir: Path,
    *,
    task_file: str | None = None,
    progress: Progress = NULL_PROGRESS,
    resume: bool = False,
    models: ModelPool | None = None,
    executor: Executor | None = None,
) -> Path:
    """Run every trial of ``spec`` and store the results in ``run_dir``. Returns ``run_dir``.

    With ``resume``, continue the run ``run_dir`` holds (its configuration must equal ``spec``'s): finished trials
    are kept, the others rerun, fine-tuning resumes from ``run_dir/work/TRIAL/checkpoint``. Without it, ``run_dir``
    must not hold a run yet. ``models`` may hold backends to use instead of loading them (e.g. a scripted fake).
    ``executor`` runs the trials elsewhere (worker processes, Ray: :mod:`tailor.runner.parallel.workers`) and hands
    each finished one back to be stored here.
    """
    origin = task_file or "task"
    rank, world = process_rank()
    earlier = on_rank0(lambda: resume_plan(spec, run_dir, resume), world)
    pool = models or ModelPool()
    trials = plan_trials(spec, origin, pool)  # every task-file mistake, before any data is read or model loaded
    data = load_task_data(spec, base, origin)
    if earlier is not None:
        check_same_data(earlier.data, data.summary(), run_dir)
    for o in data.overlaps:  # said now, not only inside report.md
        progress.log(f"[yellow]warning:[/yellow] {len(o.ids)} {o.split_b} examples also appear in {o.split_a}")
    prepared = prepare_trials(spec, trials, data, task_info(spec, data), run_dir, progress, origin, pool)
    if executor is None:  # workers load their own
        load_shared_models(prepared, pool, data.notes)  # once per run, before any trial is timed

    with _open_store(spec, run_dir, task_file, data, earlier, rank) as store:
        todo = []
        for trial, ctx, train in prepared:
            if earlier is not None and trial.name in earlier.done:
                progress.log(f"[bold]{trial.name}[/bold]: kept, it finished before the run stopped")
            else:
                todo.append((trial, ctx, train))
        if executor is not None and store is not None:  # workers adapt; this process stores what they send back
            job = Job(spec, base, run_dir, task_file)
            with progress.bar("trials", len(todo)) as bar:
                for result, predictions in executor(job, [trial.name for trial, _, _ in todo]):
                    store.add_result(result, predictions)
                    progress.log(f"[bold]{result.trial}[/bold]" + _one_line(result))
                    bar.advance()
            return run_dir
        for trial, ctx, train in todo:
            route = METHODS[trial.method].route
            # a prompt learns nothing from train: it may only draw demonstrations from it
            uses = "trains on" if route == "finetune" else "may draw demonstrations from"
            progress.log(
                f"[bold]{trial.name}[/bold] ({route}, {trial.model.name}) {uses} {len(train)} training examples"
            )
            result = run_trial(spec, trial, ctx, train, data, run_dir, store, progress, rank, base=base)
            progress.log(_one_line(result))
    return run_dir


def load_shared_models(prepared: list[tuple[Trial, Context, Split]], pool: ModelPool, notes: list[str]) -> None:
    """Load each distinct model that a method uses frozen (shared) once, before any trial's clock starts. Methods
    that train load their own copy inside adapt (that is part of their cost)."""
    for trial, ctx, _ in prepared:
        if METHODS[trial.method].shares_model:
            t0 = time.perf_counter()
            seen = trial.model.name in pool.load_seconds
            ctx.backend()
            if not seen and trial.model.name in pool.load_seconds:
                notes.append(
                    f"model {trial.model.name} loaded once for the trials that share it in "
                    f"{time.perf_counter() - t0:.1f} s (not counted in any trial's adapt time)"
                )


@contextmanager
def _open_store(
    spec: TaskSpec, run_dir: Path, task_file: str | None, data: TaskData, earlier: Resume | None, rank: int
) -> Iterator[RunStore | None]:
    """Rank 0's store, locked for the run and marked finished, interrupted or failed at the end; None elsewhere."""
    if rank != 0:
        yield None
        return
    make_run_dir(run_dir)
    with run_lock(run_dir):
        store = RunStore(run_dir)
        status = "failed"
        try:
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
            yield store
            status = "finished"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            store.finish_run(status)
            store.close()


def run_trial(
    spec: TaskSpec,
    trial: Trial,
    ctx: Context,
    train: Split,
    data: TaskData,
    run_dir: Path,
    store: RunStore | None,
    progress: Progress,
    rank: int = 0,
    base: Path | None = None,
) -> TrialResult:
    """Adapt one trial and, on rank 0, evaluate, save and store it. Returns its result.

    ``base`` is the task file's folder: saved files meant to be shared name the model relative to it.
    """
    method = METHODS[trial.method]
    result = TrialResult(
        trial=trial.name,
        family=trial.family,
        variant=trial.variant,
        method=trial.method,
        route=method.route,
        status="failed",
        options=trial.options.model_dump(mode="json"),
        model=trial.model.model_dump(mode="json"),
        seed=trial.seed,
        train_size=len(train),
        size=None if trial.size is None else str(trial.size),
        n_train=len(train),
    )
    try:
        result.model_params = ctx.models.parameters(trial.model)
        if rank == 0:
            ctx.workdir.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        with adapting(trial.name), ctx.models.cache_disabled():  # the sealed test split refuses to open in here
            adapted = method.adapt(trial.options, train, data.dev, ctx)
        adapt_seconds = time.perf_counter() - t0
        report = adapted.adapt_report()
        result.details = dict(report.details) or None
        if rank != 0 or store is None:  # the other processes helped adapt; rank 0 evaluates and writes
            result.status = "ok"
            return result
        predictions = _evaluate(spec, trial, adapted, report, data, ctx, progress, result)
        result.adapted_dir, disk = _save(adapted, report, trial, ctx, run_dir, base)
        result.n_train = len(train) if report.examples_used is None else report.examples_used
        result.costs.update(
            adapt_seconds=adapt_seconds,
            trainable_params=int(adapted.trainable_params),
            disk_bytes=disk,
            adapt_flops=result.usage["adapt"]["flops"],
            device=_device(trial),
        )
        if trial.model.price is not None:  # served models: tokens into money, at the task file's price
            result.costs["money"] = money_summary(result.usage, trial.model.price)
        result.status = "ok"
        failed = {s: (getattr(result, s) or {}).get("n_failed", 0) for s in ("dev", "test")}
        if any(failed.values()):  # scored without them, kept, and asked again on --resume
            result.status = "incomplete"
            result.error = "queries failed after every retry: " + ", ".join(
                f"{n} {s} examples" for s, n in failed.items() if n
            )
        store.add_result(result, predictions)
    except KeyboardInterrupt:
        raise
    except MethodError as exc:
        if exc.key == "resume":  # a checkpoint that isn't this run's: stop, rather than retrain unasked
            raise TailorError(f"{trial.name}: {exc.message}") from None
        _failed(result, exc, store, progress)
    except Exception as exc:  # a failing trial is recorded (with tailor's own message, if it is one); the run goes on
        _failed(result, exc, store, progress)
    return result


def _evaluate(
    spec: TaskSpec,
    trial: Trial,
    adapted: Adapted,
    report: AdaptReport,
    data: TaskData,
    ctx: Context,
    progress: Progress,
    result: TrialResult,
) -> dict[str, list]:
    """Dev (untimed, caches allowed) and test (timed cold) predictions, their metrics and usage, into ``result``."""
    labels, kind, names = data.labels, spec.kind, spec.metric_names
    predictions: dict[str, list] = {}
    dev_preds: list = []
    truncated: dict[str, int] = {}
    if data.dev is not None:
        before = adapted.truncated
        dev_preds = predict_dev(adapted, data.dev.examples, report.dev_predictions, progress, f"{trial.name}: dev")
        _count_truncated(truncated, "dev", before, adapted)
        result.dev = score_split(kind, names, labels, data.dev.examples, dev_preds)
        predictions["dev"] = list(zip(data.dev.examples, dev_preds))
    test = data.test.open()
    # Test predictions are timed cold (no cache), for the per-query cost. A curve's trials time a sample of the test
    # split cold and read the rest through the caches: a frozen encoder then embeds each test input once per run,
    # not once per trial (the embeddings, hence the predictions, are the same either way).
    timed = test.examples if trial.size is None else test.examples[:CURVE_TIMING_SAMPLE]
    before = adapted.truncated
    with ctx.models.cache_disabled():
        t0 = time.perf_counter()
        test_preds = predict_all(adapted, timed, progress, f"{trial.name}: test")
        predict_seconds = time.perf_counter() - t0
    if len(timed) < len(test.examples):
        test_preds += predict_all(adapted, test.examples[len(timed) :], progress, f"{trial.name}: test (rest)")
    _count_truncated(truncated, "test", before, adapted)
    if truncated:  # inputs the model read only the start of: a score on them is a score on less than the input
        result.details = {**(result.details or {}), "truncated": truncated}
    ci = (spec.stats.bootstrap, spec.stats.confidence, spec.seed)
    result.test = score_split(kind, names, labels, test.examples, test_preds, ci)
    result.costs["predict_seconds_per_1k"] = 1000 * predict_seconds / max(1, len(timed))
    result.usage = usage_summary(report.total_usage, dev_preds, test_preds)
    predictions["test"] = list(zip(test.examples, test_preds))
    return predictions


def _device(trial: Trial) -> str:
    """Where the trial's model ran, for its price per hour: cpu, cuda or mps; ``served`` behind an endpoint."""
    if trial.model.endpoint is not None:
        return "served"
    return best_device(trial.model.device).split(":")[0]


def _count_truncated(counts: dict[str, int], split: str, before: int | None, adapted: Adapted) -> None:
    """The inputs cut while predicting ``split``: the change of the adapted model's running count (only a difference
    means anything: a shared encoder counts for every trial); nothing when the method doesn't count."""
    after = adapted.truncated
    if before is not None and after is not None:
        counts[split] = after - before


def _save(
    adapted: Adapted, report: AdaptReport, trial: Trial, ctx: Context, run_dir: Path, base: Path | None
) -> tuple[str, int]:
    out_dir = run_dir / "adapted" / safe_name(trial.name)
    shutil.rmtree(out_dir, ignore_errors=True)  # an earlier attempt's files, when resumed
    out_dir.mkdir(parents=True, exist_ok=True)
    save_adapted(adapted, report, out_dir, trial.method, trial.name, trial.options, ctx, run_dir, base)
    return str(out_dir.relative_to(run_dir)), dir_size(out_dir)


def save_adapted(
    adapted: Adapted,
    report: AdaptReport,
    folder: Path,
    method: str,
    name: str,
    options: Any,
    ctx: Context,
    run_dir: Path | None = None,
    base: Path | None = None,
) -> None:
    """Save ``adapted`` (trial ``name`` of ``method`` with ``options``) into the existing, empty ``folder`` with its
    ``adapted.json``, as a run does: a prompt search's winner as the ordinary prompt it is (``report.saved_as``).

    ``base`` is the task file's folder: saved files meant to be shared name the model relative to it (or to the run).
    """
    adapted.save(folder)
    # PEFT records the absolute path it loaded the model from; tailor reloads from adapted.json, not from there
    share_adapter_configs(folder, shown_path(ctx.model.name, base or (run_dir or folder).resolve()))
    if report.saved_as is not None:
        method, options = report.saved_as.method, report.saved_as.options
        ctx = dataclasses.replace(ctx, seed=report.saved_as.seed)
    write_adapted_meta(folder, method, name, options, ctx, run_dir)


def _failed(result: TrialResult, exc: Exception, store: RunStore | None, progress: Progress) -> None:
    result.error = f"{type(exc).__name__}: {exc}"
    if store is not None:
        store.add_result(result)
    progress.log(f"[red]{result.trial} failed:[/red] {result.error}")


def write_adapted_meta(
    path: Path, registered: str, name: str, options: Any, ctx: Context, run_dir: Path | None = None
) -> None:
    """``adapted.json``: what `tailor predict` needs to load the folder on its own (method, options, seed, task, model).

    A model inside or beside ``run_dir`` is named relative to ``path``, so the run and its models move together.
    """
    from .. import __version__  # the package's own version; `tailor/__init__` imports nothing eagerly

    model = ctx.model.model_dump(mode="json")
    if run_dir is not None:
        model["name"] = model_name_for_meta(model["name"], path, run_dir)
    AdaptedFile(
        tailor_version=__version__,
        method=registered,
        name=name,
        options=options.model_dump(mode="json"),
        seed=ctx.seed,
        task=ctx.task.to_dict(),
        model=model,
    ).write(path)


def _one_line(r: TrialResult) -> str:
    if r.status == "ok" and not r.test:
        return "  adapted (rank 0 evaluates)"
    if r.status == "incomplete":
        return f"  [yellow]incomplete[/yellow]: {r.error} (scored without them; --resume asks again)"
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
