"""What `tailor run` and `tailor curve` do once their options are read: load the task, run it (here, in worker
processes or on Ray), write the reports and print what the user looks at first."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:  # the report is built, and its modules imported, only once a run has finished
    from ..report.document import Report
    from ..report.sections.curve import CurveSection


def console(stderr: bool = False):
    from rich.console import Console

    out = Console(stderr=stderr)
    if not out.is_terminal:  # piped or logged: don't squeeze tables into rich's 80-column default
        out = Console(stderr=stderr, width=160)
    return out


def fail(message: str, code: int = 2) -> None:
    from rich.markup import escape

    # escaped: a message quotes the user's text and commands (`pip install 'ray[client]'`), which aren't markup
    console(stderr=True).print(f"[bold red]error:[/bold red] {escape(message)}", markup=True, highlight=False)
    raise typer.Exit(code)


def stop_on_sigterm() -> None:
    """Treat SIGTERM (a job scheduler, `kill`) like Ctrl-C: the run stops cleanly and keeps finished methods."""
    import signal

    def _raise(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _raise)


def executor_for(workers: int, ray: str | None, world: int) -> Any:
    """How trials run: here (None), in ``workers`` local processes, or as Ray actors — checked before anything
    starts (Ray missing or unreachable is an error now, not after the data is read)."""
    from ..errors import TailorError

    if world > 1 and (workers > 1 or ray):
        raise TailorError("--workers and --ray run trials side by side; under torchrun the processes share each trial")
    if ray:
        from ..runner.parallel.workers import connect_ray, ray_workers

        connect_ray(ray)
        return lambda job, names: ray_workers(job, names, workers if workers > 1 else None, ray)
    if workers > 1:
        from ..runner.parallel.workers import local_workers

        return lambda job, names: local_workers(job, names, workers)
    return None


def with_curve(spec: Any, sizes: str | None, seeds: int | None) -> Any:
    """``spec`` with its curve (the task file's, or the default one) and the command line's sizes and seeds."""
    from pydantic import ValidationError

    from ..config.task import CurveSpec

    curve = spec.curve or CurveSpec()
    update: dict[str, Any] = {}
    if sizes is not None:
        items = [s.strip() for s in sizes.split(",") if s.strip()]
        try:
            update["sizes"] = [s if s == "all" else int(s) for s in items]
        except ValueError:
            fail(f"--sizes: expected whole numbers and `all`, separated by commas (e.g. 0,8,16,all); got {sizes!r}")
    if seeds is not None:
        update["seeds"] = seeds
    try:
        curve = CurveSpec.model_validate({**curve.model_dump(), **update})
    except ValidationError as exc:
        err = exc.errors()[0]
        fail(f"--{err['loc'][0] if err['loc'] else 'sizes'}: {err['msg'].removeprefix('Value error, ')}")
    return spec.model_copy(update={"curve": curve})


def execute(
    task_file: Path,
    overrides: list[str],
    out: Path | None,
    runs_root: Path,
    quiet: bool,
    resume: Path | None,
    workers: int = 1,
    ray: str | None = None,
    curve: tuple[str | None, int | None] | None = None,
) -> None:
    """Run a task file (``curve``: as a learning curve, with the command line's sizes and seeds), write its reports,
    print its leaderboard; exit 0, 2, 3 or 130 as `tailor run --help` says."""
    from rich.markup import escape

    from ..config.task import blame_overrides, load_task
    from ..errors import TailorError, TaskFileError
    from ..progress import NULL_PROGRESS, RichProgress
    from ..report.build import build, shown, write
    from ..runner.folders import new_run_dir
    from ..runner.parallel.processes import end_processes, on_rank0, process_rank
    from ..runner.run import run_task
    from ..runner.store import STORE_FILE

    command = "curve" if curve is not None else "run"
    if resume is not None and out is not None and resume.resolve() != out.resolve():
        fail("--resume and --out name different folders; a resumed run stays in its folder (give --resume alone)")
    try:
        spec, base = load_task(task_file, overrides)
    except TaskFileError as exc:
        fail(str(blame_overrides(exc, overrides)))
    except TailorError as exc:
        fail(str(exc))
    if curve is not None:
        spec = with_curve(spec, *curve)
    rank, world = process_rank()
    try:
        executor = executor_for(workers, ray, world)
    except TailorError as exc:
        fail(str(exc))
    try:
        # Every process must write to the same folder: rank 0 names it.
        run_dir = resume or out or on_rank0(lambda: new_run_dir(spec, runs_root), world)
        stop_on_sigterm()
        progress = NULL_PROGRESS if quiet or rank != 0 else RichProgress()
        screen = console()
        interrupted = False
        try:
            run_task(
                spec,
                base,
                run_dir,
                task_file=str(task_file.resolve()),
                progress=progress,
                resume=resume is not None,
                executor=executor,
            )
        except TaskFileError as exc:  # planning found it: blame the command line when an override set that key
            fail(str(blame_overrides(exc, overrides)))
        except TailorError as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            interrupted = True
            if rank == 0:
                screen.print("[yellow]interrupted: the finished trials' results are kept[/yellow]")
        if rank != 0:  # the other processes helped fine-tune; rank 0 writes the reports
            raise typer.Exit(130 if interrupted else 0)
        if not (run_dir / STORE_FILE).exists():
            raise typer.Exit(130 if interrupted else 1)
        report = build(run_dir)  # once: the files and the screen show the same report
        seen = shown(report)
        paths = write(report, seen)
        print_leaderboard(seen, screen)
        screen.print(f"\nrun folder: {run_dir}\nreports: " + ", ".join(str(p) for p in paths.values()))
        # A run whose trials failed must not look like a success to a script or CI job: list them, exit 3.
        failed = [r for r in report.leaderboard if r.status != "ok"]
        if failed:
            screen.print(f"\n[bold red]{len(failed)} of {len(report.leaderboard)} trials failed:[/bold red]")
            for r in failed:
                screen.print(f"  {escape(r.trial)}: {escape(r.error or 'no error recorded')}", highlight=False)
            if any(r.status == "incomplete" for r in failed):
                screen.print(f"ask the failed queries again with: tailor {command} {task_file} --resume {run_dir}")
        if interrupted:
            again = " ".join([str(task_file), *overrides, "--resume", str(run_dir)])
            screen.print(f"continue it with: tailor {command} {again}")
            raise typer.Exit(130)
        if failed:
            raise typer.Exit(3)
    finally:
        end_processes(world)


def print_leaderboard(report: Report, screen) -> None:
    """The leaderboard of a built report (a curve's: mean ± std per method and size), warnings and the verdict or
    winner."""
    from rich.markup import escape
    from rich.table import Table

    from ..report.sections.leaderboard import table_rows

    o = report.overview
    title = f"{o.task}: test {o.primary_metric}"
    if report.curve:
        print_curve(report.curve, screen, title, o.status)
    else:
        table = Table(title=f"{title} with {o.confidence:.0%} CI ({o.status})", title_justify="left")
        columns = ("method", "route", "model", o.primary_metric, "dev", "adapt", "infer/1k", "FLOPs/1k", "params")
        for col in (*columns, "disk", "n train"):
            table.add_column(col, justify="left" if col in ("method", "route", "model") else "right")
        keys = ("method", "route", "model", "quality", "dev", "adapt", "infer", "flops_1k", "params", "disk", "n_train")
        for t in table_rows(report.leaderboard, o.metrics, compact=True):
            table.add_row(*(t[k] for k in keys))
        screen.print(table)
    skipped = o.bad_rows["count"]
    if skipped:  # every row is accounted for: used, or skipped and counted with its reason
        reasons = ", ".join(f"{n} × {why}" for why, n in o.data.get("skipped_by_reason", {}).items())
        screen.print(f"[yellow]{skipped} rows skipped[/yellow] (on_bad_rows: skip): {escape(reasons)}")
    for warning in report.comparisons.warnings:
        screen.print(f"[yellow]warning:[/yellow] {escape(warning)}")
    if report.curve:
        for sentence in report.curve.verdict:
            screen.print(escape(sentence))
        return
    w = report.comparisons.winner
    if w:
        better = (
            f"; significantly better than {', '.join(w['significantly_better_than'])}"
            if w["significantly_better_than"]
            else ""
        )
        screen.print(f"winner (chosen on {w['chosen_on']}): [bold]{w['method']}[/bold] ({w['route']}){better}")


def print_curve(curve: CurveSection, screen, title: str, status: str) -> None:
    """A learning curve as a table: one row per method, one column per size, mean ± std over seeds."""
    from rich.table import Table

    from ..report.sections.curve_text import seeds_text

    table = Table(
        title=f"{title}, mean ± std over {seeds_text(curve)}, by training size ({curve.unit}) ({status})",
        title_justify="left",
    )
    table.add_column("method")
    table.add_column("route")
    for size in curve.sizes:
        table.add_column(size, justify="right")
    for name, m in curve.methods.items():
        cells = []
        for size in curve.sizes:
            p = m["points"].get(size)
            cells.append(f"{p['mean']:.3f} ± {p['std']:.3f}" if p else "")
        table.add_row(name, m["route"], *cells)
    screen.print(table)
