"""Trustworthy under hostile files and faults (issue 9): a crafted checkpoint runs no code, `tailor predict` runs a
model's code only when its command line says so and refuses a damaged or escaping `adapted.json`, `--out` never
overwrites a folder that isn't a run, a resume notices changed data, and a killed run is reported as stopped."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import dataset_rows, squash, task_doc, write_jsonl
from typer.testing import CliRunner

from tailor.cli.main import app
from tailor.config.task import load_task
from tailor.errors import MethodError, TailorError
from tailor.methods import METHODS
from tailor.paths import shown_path
from tailor.report.build import build_report, write_reports
from tailor.runner.predict import load_adapted
from tailor.runner.run import run_task

# ---------------------------------------------------------------------------------------------- a small real run


@pytest.fixture(scope="module")
def task_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Given train/dev/test files (so changing labels changes no split's size) and one zero-shot run of them."""
    where = tmp_path_factory.mktemp("trust")
    rows = dataset_rows()
    for name, part in (("train", rows[:54]), ("dev", rows[54:66]), ("test", rows[66:])):
        write_jsonl(where / f"{name}.jsonl", part)
    doc = task_doc(data={"train": "train.jsonl", "dev": "dev.jsonl", "test": "test.jsonl"})
    doc.pop("splits")
    (where / "task.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    spec, base = load_task(where / "task.yaml")
    run_task(spec, base, where / "run", task_file=str(where / "task.yaml"))
    return where


def _copy(task_folder: Path, to: Path) -> Path:
    shutil.copytree(task_folder, to)
    return to


# ---------------------------------------------------------------------------------------------- 1. checkpoints


class _RunsCode:
    """Unpickling this runs code: what a crafted checkpoint would carry."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def _tiny_training(tmp_path: Path, evaluate=None, steps: int = 3):
    import torch

    from tailor.tuning.loop import LoopSettings, train

    class Batch:
        def __init__(self, xs: list[float]):
            self.x, self.tokens = torch.tensor(xs)[:, None], len(xs)
            self.input_ids = self.x

    def loss(model: Any, batch: Batch) -> tuple[Any, int]:
        return ((model(batch.x) - 2 * batch.x) ** 2).sum(), len(batch.x)

    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1)
    settings = LoopSettings(max_steps=steps, batch_size=4, checkpoint_every=1, eval_every=1)
    rows = [i / 16 for i in range(16)]
    return train(
        model, rows, Batch, loss, lambda r: 1, settings, evaluate=evaluate, checkpoint_dir=tmp_path, fingerprint=FP
    )


FP = {"model": "abc", "data": "def"}


@pytest.mark.parametrize("with_identity", [False, True], ids=["no-identity-file", "matching-identity-file"])
def test_a_checkpoint_that_would_run_code_is_refused_unread(tmp_path: Path, with_identity: bool) -> None:
    import torch

    from tailor.tuning.checkpoints import CHECKPOINT

    marker = tmp_path / "pwned"
    torch.save({"fingerprint": FP, "per_step": 4, "step": 1, "payload": _RunsCode(marker)}, tmp_path / CHECKPOINT)
    if with_identity:  # even one that knows the run's fingerprint gets no code run
        (tmp_path / "checkpoint.json").write_text(json.dumps({"fingerprint": FP, "per_step": 4}))
    with pytest.raises(MethodError) as info:
        _tiny_training(tmp_path)
    assert not marker.exists(), "loading the checkpoint ran its code"
    assert info.value.key == "resume"
    assert str(tmp_path / CHECKPOINT) in str(info.value) and "refusing" in str(info.value)


def test_a_checkpoint_loads_as_tensors_and_plain_data_and_resumes(tmp_path: Path) -> None:
    import numpy as np
    import torch

    from tailor.tuning.checkpoints import CHECKPOINT

    # A metric as numpy returns it: stored as a plain float so that a weights-only load reads it back.
    first = _tiny_training(tmp_path, evaluate=lambda: np.float64(0.5))
    assert first.resumed_from_step is None
    state = torch.load(tmp_path / CHECKPOINT, map_location="cpu", weights_only=True)
    assert state["step"] == 3 and state["fingerprint"] == FP
    assert json.loads((tmp_path / "checkpoint.json").read_text())["fingerprint"] == FP
    again = _tiny_training(tmp_path, evaluate=lambda: np.float64(0.5))
    assert again.resumed_from_step == 3 and again.best_metric == 0.5


def test_a_checkpoint_of_another_run_is_refused_before_it_is_read(tmp_path: Path) -> None:
    from tailor.tuning.checkpoints import CHECKPOINT

    _tiny_training(tmp_path)
    (tmp_path / CHECKPOINT).write_bytes(b"not even a checkpoint")  # never read: the identity file says no first
    (tmp_path / "checkpoint.json").write_text(json.dumps({"fingerprint": {**FP, "data": "other"}, "per_step": 4}))
    with pytest.raises(MethodError, match="different data than this run's"):
        _tiny_training(tmp_path)


# ---------------------------------------------------------------------------------------------- 2. predict


def _adapted_copy(task_folder: Path, tmp_path: Path, **model: Any) -> Path:
    folder = tmp_path / "adapted"
    shutil.copytree(task_folder / "run" / "adapted" / "zero-shot", folder)
    meta = json.loads((folder / "adapted.json").read_text())
    meta["model"].update(model)
    (folder / "adapted.json").write_text(json.dumps(meta))
    return folder


@pytest.fixture
def seen_models(monkeypatch) -> list[Any]:
    """The ModelSpec each zero-shot load is given (the load itself stops there: no model is read)."""
    seen: list[Any] = []

    def load(options: Any, path: Path, ctx: Any):
        seen.append(ctx.model)
        raise TailorError("stopped by the test after the model spec was checked")

    monkeypatch.setattr(METHODS["zero-shot"], "load", load)
    return seen


def test_predict_runs_model_code_only_when_its_command_line_says_so(
    task_folder: Path, tmp_path: Path, seen_models: list[Any]
) -> None:
    folder = _adapted_copy(task_folder, tmp_path, trust_remote_code=True)
    inputs = write_jsonl(tmp_path / "in.jsonl", [{"text": "Rain tomorrow."}])
    for call in (lambda: load_adapted(folder), lambda: load_adapted(folder, trust_remote_code=True)):
        with pytest.raises(TailorError, match="stopped by the test"):
            call()
    assert [m.trust_remote_code for m in seen_models] == [False, True], "the file's `true` is not obeyed"

    seen_models.clear()
    for flags in ([], ["--trust-remote-code"]):
        result = CliRunner().invoke(app, ["predict", str(folder), str(inputs), *flags])
        assert result.exit_code == 2 and "stopped by the test" in squash(result.output), result.output
    assert [m.trust_remote_code for m in seen_models] == [False, True]


@pytest.mark.parametrize("name", ["../../../elsewhere/model", "/no/such/model/folder", "org/../../x", "a/b/c"])
def test_predict_refuses_a_model_path_the_run_could_not_have_used(
    task_folder: Path, tmp_path: Path, seen_models: list[Any], name: str
) -> None:
    folder = _adapted_copy(task_folder, tmp_path, name=name)
    with pytest.raises(TailorError) as info:
        load_adapted(folder)
    message = str(info.value)
    assert str(folder / "adapted.json") in message and "model.name" in message and name in message
    assert "hub id" in message
    assert not seen_models, "nothing is loaded from such a path"


@pytest.mark.parametrize("name", ["sentence-transformers/all-MiniLM-L6-v2", "gpt2", "LOCAL"])
def test_predict_accepts_a_hub_id_or_an_existing_local_model(
    task_folder: Path, tmp_path: Path, seen_models: list[Any], name: str
) -> None:
    if name == "LOCAL":
        (tmp_path / "local-model").mkdir()
        name = str(tmp_path / "local-model")
    folder = _adapted_copy(task_folder, tmp_path, name=name)
    with pytest.raises(TailorError, match="stopped by the test"):
        load_adapted(folder)
    assert [m.name for m in seen_models] == [name]


def _damage(meta: dict[str, Any], how: str) -> str:
    if how == "not json":
        return '{"method": "zero-shot",'
    if how == "not an object":
        return "[1, 2]"
    if how == "missing method":
        meta.pop("method")
    elif how == "model not an object":
        meta["model"] = "all-MiniLM-L6-v2"
    elif how == "seed a string":
        meta["seed"] = "zero"
    elif how == "task without input fields":
        meta["task"].pop("input_fields")
    elif how == "labels not a list":
        meta["task"]["labels"] = 3
    elif how == "unknown model key":
        meta["model"]["nmae"] = "x"
    return json.dumps(meta)


@pytest.mark.parametrize(
    "how",
    [
        "not json",
        "not an object",
        "missing method",
        "model not an object",
        "seed a string",
        "task without input fields",
        "labels not a list",
        "unknown model key",
    ],
)
def test_predict_names_a_damaged_adapted_json(task_folder: Path, tmp_path: Path, how: str) -> None:
    folder = _adapted_copy(task_folder, tmp_path)
    meta_file = folder / "adapted.json"
    meta_file.write_text(_damage(json.loads(meta_file.read_text()), how))
    inputs = write_jsonl(tmp_path / "in.jsonl", [{"text": "Rain tomorrow."}])
    result = CliRunner().invoke(app, ["predict", str(folder), str(inputs)])
    assert result.exit_code == 2, result.output
    assert str(meta_file) in squash(result.output) and "Traceback" not in result.output


# ---------------------------------------------------------------------------------------------- 3. --out


def test_out_refuses_a_folder_that_is_not_a_run(task_folder: Path, tmp_path: Path) -> None:
    mine = tmp_path / "my-notes"
    mine.mkdir()
    (mine / "report.md").write_text("my own report, not tailor's\n")
    task = _copy(task_folder, tmp_path / "task") / "task.yaml"
    result = CliRunner().invoke(app, ["run", str(task), "--quiet", "--out", str(mine)], terminal_width=200)
    assert result.exit_code == 2, result.output
    assert "is not empty and is not a tailor run; choose another --out" in squash(result.output)
    assert str(mine) in squash(result.output)
    assert (mine / "report.md").read_text() == "my own report, not tailor's\n"
    assert sorted(p.name for p in mine.iterdir()) == ["report.md"], "nothing is written there"


def test_out_refuses_a_file(task_folder: Path, tmp_path: Path) -> None:
    target = tmp_path / "results.txt"
    target.write_text("keep me\n")
    task = _copy(task_folder, tmp_path / "task") / "task.yaml"
    result = CliRunner().invoke(app, ["run", str(task), "--quiet", "--out", str(target)], terminal_width=200)
    assert result.exit_code == 2, result.output
    assert "is a file, not a folder" in squash(result.output) and str(target) in squash(result.output)
    assert target.read_text() == "keep me\n"


# ---------------------------------------------------------------------------------------------- 4. resume, data


def test_resume_with_changed_labels_is_refused_naming_the_split(task_folder: Path, tmp_path: Path) -> None:
    where = _copy(task_folder, tmp_path / "task")
    rows = [json.loads(line) for line in (where / "test.jsonl").read_text().splitlines()]
    labels = [r["label"] for r in rows]
    moved = labels[1:] + labels[:1]  # the same labels, as many of each, on other examples
    assert moved != labels and sorted(moved) == sorted(labels)
    write_jsonl(where / "test.jsonl", [{**r, "label": label} for r, label in zip(rows, moved)])

    spec, base = load_task(where / "task.yaml")
    with pytest.raises(TailorError) as info:
        run_task(spec, base, where / "run", task_file=str(where / "task.yaml"), resume=True)
    message = str(info.value)
    assert "refusing to resume" in message and "test split" in message
    assert "train split" not in message and "dev split" not in message


def test_the_data_summary_holds_a_content_hash_per_split(task_folder: Path) -> None:
    from tailor.runner.store import RunStore

    store = RunStore.open_existing(task_folder / "run")
    try:
        content = store.run()["data"]["content"]
    finally:
        store.close()
    assert set(content) == {"train", "dev", "test"} and len(set(content.values())) == 3


# ---------------------------------------------------------------------------------------------- 5. killed runs


@pytest.mark.slow
def test_a_run_left_running_without_its_lock_is_reported_stopped(task_folder: Path, tmp_path: Path) -> None:
    from tailor.runner.folders import run_is_live, run_lock

    run_dir = _copy(task_folder, tmp_path / "task") / "run"
    with sqlite3.connect(run_dir / "run.sqlite") as db:  # what SIGKILL leaves: no chance to record an end
        db.execute("UPDATE run SET status = 'running', finished_at = NULL WHERE id = 1")

    with run_lock(run_dir):  # a live run holds its lock: it is still running
        assert run_is_live(run_dir)
        assert build_report(run_dir)["status"] == "running"
    assert not run_is_live(run_dir)
    report = build_report(run_dir)
    assert report["status"] == "stopped"
    md = squash(write_reports(run_dir)["md"].read_text())
    assert "run stopped" in md and "stopped before its end; continue it with" in md
    from tailor.runner.store import RunStore

    assert not Path(json.loads((run_dir / "report.json").read_text())["task_file"]).is_absolute()
    store = RunStore.open_existing(run_dir)
    task_folder_then = Path(store.run()["task_file"]).resolve().parent
    store.close()
    assert f"--resume {shown_path(str(run_dir), task_folder_then)}" in md  # a report names no absolute folder
    assert "stopped before its end" in (run_dir / "report.html").read_text()
    result = CliRunner().invoke(app, ["report", str(run_dir)], terminal_width=200)
    assert result.exit_code == 0 and "(stopped)" in squash(result.output), result.output
