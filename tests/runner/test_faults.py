"""Faults from issue 9: inputs cut to fit the model, counted; a missing model folder named plainly; a full or
read-only disk failing with one message; and transformers' own generation warnings kept from the user."""

from __future__ import annotations

import errno
import json
import warnings
from pathlib import Path

import pytest
import yaml
from conftest import dataset_rows, squash, task_doc, write_jsonl
from typer.testing import CliRunner

from tailor.cli.main import app
from tailor.config.task import ModelSpec, load_task
from tailor.errors import TailorError


def _split_task(where: Path, test_rows: list[dict], methods: list[dict]) -> Path:
    """A task with given train, dev and test files (so the big input is surely in the test split)."""
    rows = dataset_rows()
    where.mkdir(parents=True, exist_ok=True)
    write_jsonl(where / "train.jsonl", rows[:60])
    write_jsonl(where / "dev.jsonl", rows[60:75])
    write_jsonl(where / "test.jsonl", test_rows)
    doc = task_doc(data={"train": "train.jsonl", "dev": "dev.jsonl", "test": "test.jsonl"}, methods=methods)
    del doc["splits"]
    task = where / "task.yaml"
    task.write_text(yaml.safe_dump(doc, sort_keys=False))
    return task


def _report_rows(task: Path, run_dir: Path) -> list[dict]:
    from tailor.report.build import write_reports
    from tailor.runner.run import run_task

    spec, base = load_task(task)
    run_task(spec, base, run_dir, task_file=str(task))
    write_reports(run_dir)
    report = json.loads((run_dir / "report.json").read_text())
    return report["leaderboard"]


@pytest.mark.parametrize("method", ["zero-shot", "head"])
@pytest.mark.slow
def test_an_input_cut_to_fit_the_encoder_is_counted_in_the_report(tmp_path: Path, method: str) -> None:
    rows = dataset_rows()[75:]
    big = {**rows[0], "text": "The striker scored twice in the final. " * 26_000}  # about 1 MB
    assert len(big["text"]) > 1_000_000
    task = _split_task(tmp_path / "big", [big, *rows[1:]], [{"name": method}])
    (row,) = _report_rows(task, tmp_path / "big-run")
    assert row["details"]["truncated"]["test"] == 1

    task = _split_task(tmp_path / "normal", rows, [{"name": method}])
    (row,) = _report_rows(task, tmp_path / "normal-run")
    assert row["details"]["truncated"]["test"] == 0


@pytest.mark.parametrize("name", ["models/x/y", "my_models/large"])
def test_a_missing_model_folder_without_dot_slash_is_named_plainly(tmp_path: Path, monkeypatch, name: str) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # as the tests run: no network
    monkeypatch.chdir(tmp_path)
    where = tmp_path / "task"
    where.mkdir()
    write_jsonl(where / "data.jsonl", dataset_rows())
    for doc, key in (
        (task_doc(model={"name": name}), "model.name"),
        (task_doc(methods=[{"name": "head", "model": {"name": name}}]), "methods[0].model.name"),
    ):
        (where / "task.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        result = CliRunner().invoke(app, ["run", str(where / "task.yaml"), "--out", str(tmp_path / "run")])
        out = squash(result.output)
        assert result.exit_code == 2, out
        assert key in out and "no model folder" in out and name in out, out
        assert "Repo id must be" not in out and "can't read the configuration" not in out, out


def test_an_explicit_kind_on_a_folder_without_a_model_says_what_files_were_expected(tmp_path: Path) -> None:
    from tailor.backends.models import model_kind

    folder = tmp_path / "empty-model"
    folder.mkdir()
    (folder / "weights.txt").write_text("not a model")
    for kind in ("auto", "encoder", "causal"):
        with pytest.raises(TailorError) as info:
            model_kind(ModelSpec(name=str(folder), kind=kind))
        message = str(info.value)
        assert message.startswith("model.name:") and "config.json" in message and "modules.json" in message
        assert "weights.txt" in message


def test_a_full_disk_while_checkpointing_is_one_message_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    import torch

    from tailor.tuning.checkpoints import save_checkpoint

    def full(obj, f, *args, **kwargs):
        f.write(b"partial")  # what a real write leaves before the disk fills
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    path = tmp_path / "work" / "checkpoint.pt"
    with pytest.raises(TailorError) as info:
        save_checkpoint(path, {"fingerprint": {"a": "b"}, "per_step": 1, "step": 3})
    assert "the disk is full" in str(info.value) and str(path) in str(info.value)
    assert not list(path.parent.glob("*.tmp")), list(path.parent.iterdir())


def test_an_out_folder_that_cannot_be_made_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    where = tmp_path / "task"
    where.mkdir()
    write_jsonl(where / "data.jsonl", dataset_rows())
    (where / "task.yaml").write_text(yaml.safe_dump(task_doc(), sort_keys=False))
    out_dir = tmp_path / "readonly" / "run"
    real_mkdir = Path.mkdir

    def refuse(self: Path, *args, **kwargs):
        if self == out_dir or out_dir.is_relative_to(self) and self != tmp_path and tmp_path in self.parents:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", refuse)
    result = CliRunner().invoke(app, ["run", str(where / "task.yaml"), "--out", str(out_dir)])
    out = squash(result.output)
    assert result.exit_code == 2, out
    assert "Traceback" not in out and str(out_dir) in squash(result.output) and "Permission denied" in out, out


def test_t5_generation_shows_no_past_key_values_warning(tmp_path_factory, monkeypatch) -> None:
    from tailor.backends.local.lm import LanguageModel
    from tailor.testing import tiny_lm_path

    path = tiny_lm_path(tmp_path_factory.getbasetemp() / "tiny-lms", arch="t5")
    lm = LanguageModel.from_spec(ModelSpec(name=str(path)), "seq2seq")
    real = lm.model.generate

    def noisy(*args, **kwargs):
        # What some transformers versions print from inside T5's generate; the installed one may not.
        warnings.warn("Both `past_key_values` and `cache` are set; `cache` will be used.", FutureWarning, stacklevel=2)
        warnings.warn("a FutureWarning of someone else's", FutureWarning, stacklevel=2)
        return real(*args, **kwargs)

    monkeypatch.setattr(lm.model, "generate", noisy)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = lm.generate_texts(["good film.", "The food was awful."], max_new_tokens=4)
    assert len(out) == 2
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if "past_key_values" in m], messages
    assert "a FutureWarning of someone else's" in messages  # only that warning is hidden
