"""The `tailor` command line: a thin layer over the library (run, predict, report, methods)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

EXIT_CODES = {
    0: "done (every trial finished)",
    1: "an unexpected error inside tailor (rerun with --debug for its traceback, and please report it), or a run "
    "that stopped before storing anything",
    2: "a mistake in the task file, the command line, the data or a run folder (the message names where)",
    3: "the run finished but some trials failed (listed after the leaderboard)",
    130: "interrupted (Ctrl-C or SIGTERM); finished trials are kept, continue with --resume",
}

app = typer.Typer(
    help="Adapt a pretrained language model to your task by prompting and by fine-tuning, and measure which wins.\n\n"
    "Exit codes: " + "; ".join(f"{code} {what}" for code, what in EXIT_CODES.items()) + ". "
    "`tailor --debug COMMAND ...` shows the traceback of an unexpected error.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


from .execute import console as _console  # noqa: E402  (light: imports nothing heavy)
from .execute import fail as _fail  # noqa: E402

OutOption = Annotated[
    Path | None, typer.Option("--out", "-o", help="Run folder to write; default: RUNS_ROOT/TASK-TIMESTAMP.")
]
RunsRootOption = Annotated[Path, typer.Option(help="Where new run folders are made when --out is not given.")]
WorkersOption = Annotated[
    int,
    typer.Option(
        "--workers",
        "-w",
        min=1,
        help="Run trials side by side in this many local processes (one GPU each where there are GPUs; at most one "
        "per CPU core); each loads a model once and reuses it. With --ray: the number of Ray actors (default: one "
        "per GPU of the cluster, else one per CPU).",
    ),
]
RayOption = Annotated[
    str | None,
    typer.Option(
        "--ray",
        help="Run trials as Ray actors on a Ray cluster: `auto` (the one started on this machine with `ray start "
        "--head`) or its address (HOST:PORT, ray://HOST:10001). The run folder must be the same path on every node "
        "(shared storage).",
    ),
]


@app.command()
def run(
    task_file: Annotated[Path, typer.Argument(help="The task file (YAML): data, fields, model and methods.")],
    overrides: Annotated[
        list[str] | None,
        typer.Argument(
            help="key=value overrides on top of the task file, dotted for nesting: "
            "seed=3 methods.1.k=4 limit.test=200.",
            show_default=False,
        ),
    ] = None,
    out: OutOption = None,
    runs_root: RunsRootOption = Path("runs"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or per-method lines.")] = False,
    resume: Annotated[
        Path | None,
        typer.Option(
            "--resume",
            help="Continue the run in this folder (stopped by Ctrl-C, a crash or a kill) with the same task file and "
            "overrides: finished methods are kept, the others rerun, fine-tuning continues from its last checkpoint.",
        ),
    ] = None,
    workers: WorkersOption = 1,
    ray: RayOption = None,
) -> None:
    """Run every method of TASK_FILE on the same splits, evaluate on the held-out test set, store and report.

    A task file with a `curve:` section runs its learning curve (see `tailor curve`).

    Under `torchrun --nproc_per_node N -m tailor run ...` the N processes fine-tune together; rank 0 evaluates and
    writes the run folder.

    Exit codes: 0 every trial finished; 2 a bad task file, data or option (nothing run); 3 at least one trial
    failed (the failed trials and their errors are listed after the leaderboard; the others' results are kept);
    130 interrupted (continue with --resume); 1 the run stopped before storing anything, or an unexpected error
    (`tailor --debug run ...` shows its traceback).
    """
    from .execute import execute

    _check_workers(workers, ray)
    with _full_disk_named(resume or out, runs_root, task_file, "run"):
        execute(task_file, overrides or [], out, runs_root, quiet, resume, workers, ray)


@app.command()
def curve(
    task_file: Annotated[Path, typer.Argument(help="The task file (YAML): data, fields, model, methods, `curve:`.")],
    overrides: Annotated[
        list[str] | None,
        typer.Argument(help="key=value overrides on top of the task file, as for `tailor run`.", show_default=False),
    ] = None,
    sizes: Annotated[
        str | None,
        typer.Option(
            help="Training sizes, comma-separated and increasing: per class for classification, in all otherwise; "
            "`all` (last) is the whole training split. Default: the task's `curve.sizes`, else 0,4,8,16,32,64,128,all.",
        ),
    ] = None,
    seeds: Annotated[
        int | None,
        typer.Option(
            min=2,
            help="Seeds per size (the task's seed and the next ones); default: the task's `curve.seeds`, else 5.",
        ),
    ] = None,
    out: OutOption = None,
    runs_root: RunsRootOption = Path("runs"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or per-trial lines.")] = False,
    resume: Annotated[
        Path | None,
        typer.Option(
            "--resume",
            help="Continue the curve in this folder with the same task file, sizes, seeds and overrides: finished "
            "trials are kept, the others run.",
        ),
    ] = None,
    workers: WorkersOption = 1,
    ray: RayOption = None,
) -> None:
    """Learning curves: every method of TASK_FILE at several training sizes and seeds, one trial each, then where
    fine-tuning overtakes prompting (n*, with its interval), what the best prompt is worth in labelled examples,
    and the break-even query volume, in report.html/.md/.json.

    For each seed the training samples are nested (the size-8 draw is inside the size-16 draw) and the same for
    every method; dev and test are the same for every trial. Methods that use no examples (zero-shot) run at size
    0 only, the others at every size above 0; a method entry's own `curve: {sizes: [...], seeds: N}` runs it at
    some of them only (see `tailor keys`). A killed curve continues with --resume, keeping finished trials.
    """
    from .execute import execute

    _check_workers(workers, ray)
    with _full_disk_named(resume or out, runs_root, task_file, "curve"):
        execute(task_file, overrides or [], out, runs_root, quiet, resume, workers, ray, curve=(sizes, seeds))


@contextmanager
def _full_disk_named(run_dir: Path | None, runs_root: Path, task_file: Path, command: str) -> Iterator[None]:
    """A disk that fills during a run is one message naming the run folder and the space left, whatever was being
    written (the store: SQLite says "database or disk is full"; a report; a model), not an internal error."""
    import sqlite3

    from ..backends.files import disk_full, write_failure

    folder = run_dir or runs_root
    try:
        yield
    except (OSError, sqlite3.OperationalError) as exc:  # not RuntimeError: typer's Exit is one
        if not disk_full(folder, exc):
            raise
        what = Path(exc.filename).name if isinstance(exc, OSError) and exc.filename else "the run store"
        _fail(
            f"can't write {what} in {folder}: {write_failure(folder, exc)}. Free some space, then continue with "
            f"`tailor {command} {task_file} --resume {run_dir or 'RUN_DIR'}` (finished trials are kept)"
        )


def _check_workers(workers: int, ray: str | None) -> None:
    """Local workers are limited by this machine's cores (Ray actors by the cluster's, which Ray knows)."""
    from ..errors import TailorError
    from ..runner.parallel.workers import check_local_workers

    if ray is None and workers > 1:
        try:
            check_local_workers(workers)
        except TailorError as exc:
            _fail(str(exc))


@app.command()
def predict(
    adapted_dir: Annotated[Path, typer.Argument(help="A saved method folder: RUN_DIR/adapted/METHOD.")],
    input_file: Annotated[
        Path, typer.Argument(help="Examples to predict (JSONL/CSV/Parquet) with the task's input fields.")
    ],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write predictions (JSONL) here instead of standard output.")
    ] = None,
    scores: Annotated[bool, typer.Option(help="Include per-label scores in the output.")] = False,
    trust_remote_code: Annotated[
        bool,
        typer.Option(
            "--trust-remote-code",
            help="Let code shipped with the model run (only if you trust its author). Off unless given here, "
            "whatever the folder's adapted.json says: the folder may come from someone else.",
        ),
    ] = False,
    endpoint: Annotated[
        str | None,
        typer.Option(
            help="For a prompt on a served model: the server's URL (…/v1). Needed to confirm the folder's own server "
            "(a folder from someone else must not send your inputs and key to theirs), or to send to another server "
            "of the same model. The API key still comes from the variable the folder names.",
        ),
    ] = None,
) -> None:
    """Predict with an adapted model saved by a run; gives the same predictions as during the run."""
    from ..errors import TailorError
    from ..progress import RichProgress
    from ..runner.predict import predict_file

    try:
        progress = RichProgress() if output else _silent()
        pairs = predict_file(adapted_dir, input_file, progress, trust_remote_code=trust_remote_code, endpoint=endpoint)
        sink = None  # opened at the first prediction: a refused folder or input leaves no empty output file
        for ex, pred in pairs:
            if sink is None:
                sink = output.open("w", encoding="utf-8") if output else sys.stdout
            row = {"id": ex.id, "output": pred.output, "label": pred.label}
            if scores and pred.scores is not None:
                row["scores"] = dict(pred.scores)
            sink.write(json.dumps(row, ensure_ascii=False) + "\n")
        if output and sink is not None:
            sink.close()
            _console(stderr=True).print(f"predictions written to {output}")
    except TailorError as exc:
        _fail(str(exc))


def _silent():
    from ..progress import NULL_PROGRESS

    return NULL_PROGRESS


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by `tailor run`.")],
) -> None:
    """Rebuild report.md, report.json and report.html from a run's store, and print the leaderboard."""
    from ..errors import TailorError
    from ..report.build import build, shown, write

    try:
        built = build(run_dir)  # once: the files and the screen show the same report
    except TailorError as exc:
        _fail(str(exc))
    seen = shown(built)
    paths = write(built, seen)
    console = _console()
    print_leaderboard(seen, console)
    console.print("reports: " + ", ".join(str(p) for p in paths.values()))


@app.command()
def methods(
    name: Annotated[str | None, typer.Argument(help="Show only this method.")] = None,
) -> None:
    """List the registered methods, their route and every option with its default and meaning."""
    from pydantic import BaseModel
    from rich.markup import escape
    from rich.table import Table

    from ..errors import TailorError
    from ..methods import METHODS, get_method

    console = _console()
    try:
        chosen = {name: get_method(name)} if name else METHODS
    except TailorError as exc:
        _fail(str(exc))
    for key, method in chosen.items():
        table = Table(
            title=f"{key}  ({method.route} route) — {method.summary}",
            title_justify="left",
            show_lines=False,
            expand=False,
        )
        table.add_column("option")
        table.add_column("default")
        table.add_column("meaning")
        for field, info in method.Options.model_fields.items():
            value = None if info.is_required() else info.get_default(call_default_factory=True)
            if info.is_required():
                default = "—"
            elif isinstance(value, BaseModel):  # nested options: what differs from their own defaults
                default = str(value.model_dump(exclude_defaults=True) or {})
            else:
                default = repr(value)
            table.add_row(escape(field), escape(default), escape((info.description or "").replace("\n", " ")))
        console.print(table)
        console.print(
            f"  tasks: {', '.join(sorted(method.task_kinds))}; models: {', '.join(sorted(method.model_kinds))}\n"
        )


@app.command()
def keys() -> None:
    """List every key a task file accepts, with its type, default and meaning."""
    from rich.table import Table

    from ..config.task import task_keys

    table = Table(title="task file keys (method options: see `tailor methods`)", title_justify="left")
    for col in ("key", "type", "default", "meaning"):
        table.add_column(col)
    for key, kind, default, meaning in task_keys():
        table.add_row(key, kind, default, meaning)
    _console().print(table)


@app.command("make-tiny-lm")
def make_tiny_lm(
    out: Annotated[Path, typer.Argument(help="Folder to write the model to (an ordinary Hugging Face folder).")],
    arch: Annotated[str, typer.Option(help="Model family: llama or qwen2 (causal), t5 (encoder-decoder).")] = "llama",
    hidden_size: Annotated[int, typer.Option(help="Width of the model.")] = 64,
    layers: Annotated[int, typer.Option(help="Decoder layers.")] = 2,
    heads: Annotated[int, typer.Option(help="Attention heads (hidden size must divide by it).")] = 4,
    vocab_size: Annotated[int, typer.Option(help="Tokenizer vocabulary to train.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seeds the tokenizer corpus and the weights.")] = 0,
    learnable: Annotated[
        bool,
        typer.Option(
            help="Initialize so that a narrow random model learns quickly when fine-tuned (larger initial weights and "
            "output scale, as the tests use); default: transformers' own initialization."
        ),
    ] = False,
) -> None:
    """Build a random-weight causal LM with a locally trained tokenizer: a stand-in for tests and offline examples."""
    from ..testing import LEARNABLE, build_tiny_lm

    if arch not in ("llama", "qwen2", "t5"):
        _fail(f"--arch: expected llama, qwen2 or t5, got {arch!r}")
    path = build_tiny_lm(
        out,
        arch=arch,
        hidden_size=hidden_size,
        num_layers=layers,
        num_heads=heads,  # type: ignore[arg-type]
        vocab_size=vocab_size,
        seed=seed,
        **(LEARNABLE if learnable else {}),
    )
    _console().print(f"tiny {arch} model written to {path}")


def print_leaderboard(report, console) -> None:
    from .execute import print_leaderboard as show

    show(report, console)


def main(argv: list[str] | None = None) -> None:
    """The console script: tailor's own errors are printed without a traceback (exit 2) by the commands; anything
    unexpected is one line and exit 1, unless ``--debug`` (anywhere on the command line) asks for the traceback."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    try:
        app(args=args, prog_name="tailor")
    except SystemExit:
        raise
    except Exception as exc:
        if debug:
            raise
        _console(stderr=True).print(
            f"[bold red]internal error:[/bold red] {type(exc).__name__}: {exc}\n"
            "rerun with --debug for the traceback, and please report it",
            markup=True,
            highlight=False,
        )
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
