"""Files meant to be shared (reports, the summary, PEFT's adapter_config.json) hold no absolute path of the user's
folders: the task file, data and models are shown relative to the task file's folder (issue 9)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import dataset_rows, fast_options, task_doc, write_jsonl
from typer.testing import CliRunner

from tailor.cli.main import app
from tailor.paths import shown_path
from tailor.runner.store import RunStore
from tailor.testing import tiny_lm_path

SHARED = ("report.json", "report.md", "report.html")


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of a zero-shot method on the default encoder and two PEFT methods on a model in ./models/x."""
    where = tmp_path_factory.mktemp("shared_task")
    shutil.copytree(tiny_lm_path(tmp_path_factory.getbasetemp() / "tiny-lms", arch="llama"), where / "models" / "x")
    write_jsonl(where / "data.jsonl", dataset_rows())
    own = {"name": "./models/x"}
    methods = [
        {"name": "zero-shot"},
        {"name": "lora", "model": own, **fast_options("lora", "causal")},
        {"name": "seq-cls", "model": own, **fast_options("seq-cls", "causal")},
    ]
    doc = task_doc(methods=methods, summary="out/summary.json")
    (where / "task.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    result = CliRunner().invoke(app, ["run", str(where / "task.yaml"), "--out", str(where / "run"), "--quiet"])
    assert result.exit_code == 0, result.output
    return where / "run"


def test_reports_and_summary_hold_no_path_of_the_task_folder(shared_run: Path) -> None:
    task_folder = shared_run.parent
    for name in SHARED:
        assert str(task_folder) not in (shared_run / name).read_text(), name
    summary_text = (task_folder / "out" / "summary.json").read_text()
    assert str(task_folder) not in summary_text
    report = json.loads((shared_run / "report.json").read_text())
    assert report["task_file"] == "./task.yaml"
    assert {m["name"] for m in report["models"]} == {"all-MiniLM-L6-v2", "./models/x"}
    assert {row["model"] for row in report["leaderboard"]} == {"all-MiniLM-L6-v2", "./models/x"}
    assert any("./data.jsonl" in note for note in report["data"]["notes"])
    summary = json.loads(summary_text)
    assert summary["run_dir"] == "../run"  # relative to the summary file
    assert summary["methods"]["lora"]["model"] == "./models/x"


def test_the_store_keeps_what_resume_compares(shared_run: Path) -> None:
    store = RunStore.open_existing(shared_run)
    config = store.run()["config"]
    store.close()
    assert config["methods"][1]["model"]["name"] == str((shared_run.parent / "models" / "x").resolve())


@pytest.mark.parametrize(("method", "adapter"), [("lora", "adapter"), ("seq-cls", "model")])
def test_adapter_config_names_the_model_as_the_task_file_gave_it(shared_run: Path, method: str, adapter: str) -> None:
    folder = shared_run / "adapted" / method
    config = json.loads((folder / adapter / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "./models/x"
    assert str(shared_run.parent) not in (folder / adapter / "README.md").read_text()
    # the model lies beside the run: adapted.json names it relative to its own folder, so both move together
    meta = json.loads((folder / "adapted.json").read_text())
    assert meta["model"]["name"] == "../../../models/x"


@pytest.mark.parametrize("method", ["lora", "seq-cls"])
def test_predict_still_loads_the_adapted_folder_from_anywhere(
    shared_run: Path, method: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = RunStore.open_existing(shared_run)
    stored = store.predictions(method, "test")
    store.close()
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text("".join(json.dumps({"id": p["example_id"], **p["input"]}) + "\n" for p in stored))
    monkeypatch.chdir(tmp_path)  # neither the task folder nor the run's: the relative names must not need either
    result = CliRunner().invoke(app, ["predict", str(shared_run / "adapted" / method), str(inputs)])
    assert result.exit_code == 0, result.output
    got = {row["id"]: row["label"] for row in map(json.loads, result.stdout.splitlines())}
    assert got == {p["example_id"]: p["label"] for p in stored}


def test_shown_path_keeps_hub_ids_and_far_paths(tmp_path: Path) -> None:
    base = tmp_path / "work" / "task"
    assert shown_path("all-MiniLM-L6-v2", base) == "all-MiniLM-L6-v2"
    assert shown_path("Qwen/Qwen2.5-0.5B", base) == "Qwen/Qwen2.5-0.5B"
    assert shown_path(str(base / "data.jsonl"), base) == "./data.jsonl"
    assert shown_path(str(tmp_path / "work" / "models" / "large"), base) == "../models/large"
    far = "/" + "elsewhere-not-near" + "/models/large"
    assert shown_path(far, base) == far  # only the root in common: climbing to it says no less


@pytest.mark.slow
def test_a_summary_inside_a_repository_names_paths_relative_to_the_repository(make_task) -> None:
    from tailor.config.task import load_task
    from tailor.report.build import write_reports
    from tailor.runner.run import run_task

    task = make_task(folder="repo/benchmarks", methods=[{"name": "zero-shot"}], summary="results/mini.json")
    repo = task.parent.parent
    (repo / ".git").mkdir()
    spec, base = load_task(task)
    run_dir = run_task(spec, base, task.parent / "runs" / "r1", task_file=str(task))
    summary_file = write_reports(run_dir)["summary"]
    summary = json.loads(summary_file.read_text())
    assert summary["run_dir"] == "./benchmarks/runs/r1"
    assert str(repo) not in summary_file.read_text()
