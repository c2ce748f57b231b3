"""Trials: a model per method (two generative models of different sizes and an encoder in one run), training size
and seed per trial, usage in the store and the reports, the store's schema version, and the task-file mistakes
around them — each an error naming its key before any model is loaded."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from conftest import squash, write_jsonl
from typer.testing import CliRunner

from tailor.backends.pool import ModelPool
from tailor.cli.main import app
from tailor.config.task import load_task
from tailor.errors import TailorError, TaskFileError
from tailor.paths import shown_path
from tailor.report.build import build_report, write_reports
from tailor.runner.run import run_task
from tailor.runner.store import SCHEMA_VERSION, OldStoreError, RunStore
from tailor.testing import tiny_lm_path


@pytest.fixture(scope="module")
def two_lms(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    cache = tmp_path_factory.mktemp("two-lms")
    large = tiny_lm_path(cache, hidden_size=96, num_layers=3)
    small = tiny_lm_path(cache, hidden_size=32, num_layers=1)
    return large, small


class _Counting(ModelPool):
    """A pool that counts how often each model is loaded."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[str] = []

    def get(self, spec):
        key_before = spec.name in self.load_seconds
        backend = super().get(spec)
        if not key_before and spec.name in self.load_seconds:
            self.loads.append(spec.name)
        return backend


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory: pytest.TempPathFactory, two_lms) -> tuple[Path, _Counting]:
    from conftest import dataset_rows, task_doc

    large, small = two_lms
    where = tmp_path_factory.mktemp("mixed")
    write_jsonl(where / "data.jsonl", dataset_rows())
    methods = [
        {"name": "prompt", "label": "zero", "model": {"name": str(large)}, "k": 0},
        {"name": "prompt", "label": "few", "model": {"name": str(large)}, "k": 2, "train_size": 20},
        {"name": "lora", "model": {"name": str(small)}, "max_steps": 2, "batch_size": 4, "train_per_class": 3},
        {"name": "head", "seed": 7},
    ]
    task = where / "task.yaml"
    import yaml

    task.write_text(yaml.safe_dump(task_doc(methods=methods), sort_keys=False))
    spec, base = load_task(task)
    pool = _Counting()
    run_dir = run_task(spec, base, where / "run", task_file=str(task), models=pool)
    write_reports(run_dir)
    return run_dir, pool


def test_a_run_prompts_one_model_tunes_a_smaller_one_and_runs_an_encoder(mixed_run, two_lms) -> None:
    run_dir, pool = mixed_run
    large, small = two_lms
    store = RunStore.open_existing(run_dir)
    rows = {r["trial"]: r for r in store.results()}
    store.close()
    assert all(r["status"] == "ok" for r in rows.values()), {k: r["error"] for k, r in rows.items()}
    assert rows["zero"]["model"] == rows["few"]["model"] == str(large)
    assert rows["lora"]["model"] == str(small)
    assert rows["head"]["model"] == "all-MiniLM-L6-v2"
    assert rows["zero"]["model_params"] > rows["lora"]["model_params"] > 0
    assert rows["head"]["model_params"] > rows["zero"]["model_params"]  # MiniLM's 22M against tiny random LMs
    # each shared model loaded once, however many trials use it; the tuned one is the method's own copy
    assert pool.loads.count(str(large)) == 1 and str(small) not in pool.loads
    # training size and seed per trial
    assert rows["few"]["train_size"] == 20 and rows["lora"]["train_size"] == 9
    assert rows["head"]["seed"] == 7 and rows["zero"]["seed"] == 0


def test_every_trial_has_usage_in_the_store_and_the_reports(mixed_run) -> None:
    run_dir, _ = mixed_run
    store = RunStore.open_existing(run_dir)
    for r in store.results():
        usage = r["usage"]
        assert usage["reported"] == usage["n_test"] > 0, r["trial"]
        assert usage["test"]["calls"] == usage["n_test"]
        assert usage["test"]["input_tokens"] > 0 and usage["test"]["flops"] > 0
        preds = store.predictions(r["trial"], "test")
        assert all(p["usage"] is not None and p["usage"].flops > 0 for p in preds)
        assert sum(p["usage"].input_tokens for p in preds) == usage["test"]["input_tokens"]
    rows = {r["trial"]: r for r in store.results()}
    store.close()
    # demonstrations are paid for on every query; training is paid for once
    assert rows["few"]["usage"]["test_per_1k"]["input_tokens"] > rows["zero"]["usage"]["test_per_1k"]["input_tokens"]
    assert rows["lora"]["costs"]["adapt_flops"] > 0 and rows["zero"]["costs"]["adapt_flops"] == 0
    report = json.loads((run_dir / "report.json").read_text())
    # the report shows local models relative to the task file's folder (the run's parent here)
    assert {m["name"] for m in report["models"]} == {shown_path(r["model"], run_dir.parent) for r in rows.values()}
    for row in report["leaderboard"]:
        assert row["usage"]["test_per_1k"]["flops"] > 0 and row["model"]
    md = (run_dir / "report.md").read_text()
    assert "tokens / 1k" in md and "FLOPs / 1k" in md and "adapt FLOPs" in md
    for name in ("zero", "few", "lora", "head"):
        line = next(x for x in md.splitlines() if x.startswith(f"| {name} |"))
        assert Path(rows[name]["model"]).name in line, line


def test_the_cli_leaderboard_shows_each_rows_model(mixed_run, two_lms) -> None:
    from rich.console import Console

    from tailor.cli.main import print_leaderboard
    from tailor.report.build import build, shown

    run_dir, _ = mixed_run
    console = Console(width=250, record=True)
    print_leaderboard(shown(build(run_dir)), console)
    text = console.export_text()
    for line_start, model in (("│ zero", two_lms[0].name), ("│ lora", two_lms[1].name), ("│ head", "all-MiniLM")):
        line = next(x for x in text.splitlines() if x.startswith(line_start))
        assert model in line, line


def _generation_rows(n: int = 40) -> list[dict[str, str]]:
    return [
        {"id": f"g{i}", "text": f"say {w} twice", "label": f"{w} {w}"} for i, w in enumerate(f"w{i}" for i in range(n))
    ]


@pytest.mark.parametrize("kind", ["classification", "qa", "summarization", "translation"])
def test_train_size_works_on_every_task_kind(make_task, kind: str) -> None:
    from conftest import dataset_rows

    rows = dataset_rows() if kind == "classification" else _generation_rows()
    folder = make_task(rows=rows, folder=kind).parent
    (folder / "script.json").write_text(json.dumps({"default_answer": "w1 w1", "scores": {}, "default_score": -1.0}))
    task = make_task(
        rows=rows,
        folder=kind,
        kind=kind,
        model={"name": "script.json", "kind": "scripted"},
        methods=[{"name": "prompt", "k": 3, "select": "random", "train_size": 7}, {"name": "prompt", "k": 3}],
    )
    spec, base = load_task(task)
    run_dir = run_task(spec, base, folder / "run")
    store = RunStore.open_existing(run_dir)
    sampled, whole = store.results()
    store.close()
    assert sampled["status"] == whole["status"] == "ok", (sampled["error"], whole["error"])
    assert sampled["train_size"] == 7 and whole["train_size"] > 7
    assert sampled["seed"] == whole["seed"] == 0


def test_train_size_works_on_a_generation_task_and_train_per_class_is_refused(make_task, two_lms) -> None:
    rows = _generation_rows()
    methods = [{"name": "prompt", "k": 2, "train_size": 5, "select": "random"}]
    task = make_task(rows=rows, kind="qa", model={"name": str(two_lms[1])}, methods=methods, metrics=["exact_match"])
    spec, base = load_task(task)
    run_dir = run_task(spec, base, task.parent / "run")
    store = RunStore.open_existing(run_dir)
    (row,) = store.results()
    store.close()
    assert row["status"] == "ok" and row["train_size"] == 5
    bad = make_task(
        rows=rows,
        folder="bad",
        kind="qa",
        model={"name": str(two_lms[1])},
        methods=[{"name": "prompt", "train_per_class": 2}],
    )
    spec, base = load_task(bad)
    with pytest.raises(TaskFileError) as info:
        run_task(spec, base, bad.parent / "run")
    assert info.value.key == "methods[0].train_per_class" and "train_size" in info.value.message
    assert not (bad.parent / "run").exists(), "refused at plan time, before anything is written"


@pytest.mark.parametrize(
    ("entry", "key", "words"),
    [
        ({"name": "head", "train_size": 5, "train_per_class": 2}, "methods[0].train_size", "not both"),
        ({"name": "head", "train_size": 10_000}, "methods[0].train_size", "larger than the training split"),
        ({"name": "head", "model": {"name": "./no/such/folder"}}, "methods[0].model.name", "no such model folder"),
        ({"name": "head", "model": {"name": "x", "kind": "telepathic"}}, "methods[0].model.kind", "input should be"),
    ],
)
def test_sampling_and_model_mistakes_are_errors_naming_the_key(make_task, entry, key, words) -> None:
    task = make_task(methods=[entry])
    with pytest.raises(TaskFileError) as info:
        spec, base = load_task(task)
        pool = ModelPool()
        run_task(spec, base, task.parent / "run", models=pool)
    assert info.value.key == key, str(info.value)
    assert words in squash(str(info.value)).lower() or words in str(info.value)


def test_a_model_kind_the_method_cannot_handle_lists_the_methods_that_can(make_task, two_lms) -> None:
    task = make_task(methods=[{"name": "zero-shot"}, {"name": "head", "model": {"name": str(two_lms[1])}}])
    spec, base = load_task(task)
    pool = ModelPool()
    with pytest.raises(TaskFileError) as info:
        run_task(spec, base, task.parent / "run", models=pool)
    assert info.value.key == "methods[1].model"
    assert "causal" in info.value.message and "prompt" in info.value.message and "lora" in info.value.message
    assert not pool.loaded(), "nothing is loaded before the task file is known good"


def test_an_old_store_is_refused_by_report_and_resume(make_task, tmp_path: Path) -> None:
    old = tmp_path / "old-run"
    old.mkdir()
    db = sqlite3.connect(old / "run.sqlite")
    db.executescript(
        "CREATE TABLE run (id INTEGER PRIMARY KEY, task TEXT); CREATE TABLE result (method TEXT PRIMARY KEY);"
    )
    db.close()
    with pytest.raises(OldStoreError) as info:
        build_report(old)
    assert "older tailor" in str(info.value) and f"schema {SCHEMA_VERSION}" in str(info.value)
    task = make_task()
    result = CliRunner().invoke(app, ["run", str(task), "--resume", str(old), "--quiet"])
    assert result.exit_code != 0 and "older tailor" in squash(result.output)
    result = CliRunner().invoke(app, ["report", str(old)])
    assert result.exit_code != 0 and "older tailor" in squash(result.output)
    assert isinstance(info.value, TailorError)


def test_make_tiny_lm_builds_a_learnable_model_on_request(tmp_path: Path) -> None:
    for flag, std in (([], 0.02), (["--learnable"], 0.125)):
        out = tmp_path / f"m{len(flag)}"
        result = CliRunner().invoke(app, ["make-tiny-lm", str(out), "--hidden-size", "32", "--layers", "1", *flag])
        assert result.exit_code == 0, result.output
        assert json.loads((out / "config.json").read_text())["initializer_range"] == pytest.approx(std)
