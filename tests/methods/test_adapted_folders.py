"""Adapted folders validated against themselves: one schema per folder (``adapted.json`` and each file its method
saves), strict (unknown keys are errors), one home for each fact, and every disagreement a clear error naming the file,
the key and what was expected — never an internal error, never a prediction the folder doesn't declare."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import squash, write_jsonl
from typer.testing import CliRunner

from tailor.backends.pool import ModelPool
from tailor.cli.main import app
from tailor.config.task import ModelSpec
from tailor.contract import Context, TaskInfo
from tailor.errors import FolderError
from tailor.methods import METHODS
from tailor.runner.predict import load_adapted
from tailor.runner.run import save_adapted
from tailor.types import Example, Split, adapting

LABELS = ("cooking", "sports", "weather")
TASK = TaskInfo("mini", "classification", LABELS, ("text",), ("accuracy",))
TRAIN = Split(
    "train",
    tuple(
        Example(f"{label}{i}", {"text": f"a sentence about {label} number {i}"}, label)
        for label in LABELS
        for i in range(3)
    ),
)


def _copy(finished_run: Path, trial: str, tmp_path: Path) -> Path:
    folder = tmp_path / trial
    shutil.copytree(finished_run / "adapted" / trial, folder)
    return folder


def _edit(folder: Path, file: str, change: Any) -> None:
    data = json.loads((folder / file).read_text())
    change(data)
    (folder / file).write_text(json.dumps(data))


def _refused(folder: Path, tmp_path: Path, *says: str) -> str:
    """``tailor predict`` on ``folder`` stops with a clear error (exit 2, no traceback) that says each of ``says``."""
    inputs = write_jsonl(tmp_path / "in.jsonl", [{"text": "Rain is expected tomorrow."}])
    result = CliRunner().invoke(app, ["predict", str(folder), str(inputs)], terminal_width=400)
    out = squash(result.output)
    assert result.exit_code == 2, result.output
    assert "internal error" not in out and "Traceback" not in out, out
    for text in says:
        assert squash(text) in out, (text, out)
    return out


# ---------------------------------------------------------------------------------------------- adapted.json


def test_a_method_whose_files_the_folder_lacks_is_named_before_anything_loads(finished_run: Path, tmp_path: Path):
    folder = _copy(finished_run, "head", tmp_path)
    _edit(folder, "adapted.json", lambda meta: meta.update(method="lora", options={}))
    out = _refused(folder, tmp_path, f"{folder}: tune.json is missing", "lora saves tune.json and adapter")
    assert "this folder holds adapted.json, head.npz" in out and "the method of its adapted.json (lora)" in out


def test_an_option_of_the_wrong_type_is_named_with_its_key(finished_run: Path, tmp_path: Path) -> None:
    folder = _copy(finished_run, "head", tmp_path)
    _edit(folder, "adapted.json", lambda meta: meta["options"].update(C="abc"))
    _refused(folder, tmp_path, f"{folder / 'adapted.json'}: options.C:", "valid number", '"abc"')


def test_an_unknown_option_is_an_error_listing_the_methods_options(finished_run: Path, tmp_path: Path) -> None:
    folder = _copy(finished_run, "head", tmp_path)
    _edit(folder, "adapted.json", lambda meta: meta["options"].update(regularisation=2))
    _refused(folder, tmp_path, "adapted.json: options.regularisation: unknown key (options of head: ", "max_iter")


def test_an_unknown_key_of_adapted_json_is_an_error(finished_run: Path, tmp_path: Path) -> None:
    folder = _copy(finished_run, "head", tmp_path)
    _edit(folder, "adapted.json", lambda meta: meta.update(labels=["a"]))
    _refused(folder, tmp_path, "adapted.json: labels: unknown key")


# ---------------------------------------------------------------------------------------------- labels


def test_a_head_answering_a_label_adapted_json_lacks_is_refused(finished_run: Path, tmp_path: Path) -> None:
    folder = _copy(finished_run, "head", tmp_path)
    _edit(folder, "adapted.json", lambda meta: meta["task"].update(labels=["cooking", "sports", "rain"]))
    _refused(folder, tmp_path, f"{folder / 'head.npz'}: classes:", "'weather'", "task.labels")


def test_zero_shot_labels_edited_in_adapted_json_disagree_with_its_prompt(finished_run: Path, tmp_path: Path):
    folder = _copy(finished_run, "zero-shot_v1", tmp_path)
    _edit(folder, "adapted.json", lambda meta: meta["task"].update(labels=["cooking", "sports", "rain"]))
    _refused(folder, tmp_path, f"{folder / 'prompt.json'}: labels:", "adapted.json")


def test_few_shot_demonstrations_of_a_label_the_task_lacks_are_refused(finished_run: Path, tmp_path: Path) -> None:
    folder = _copy(finished_run, "few-shot", tmp_path)
    _edit(folder, "adapted.json", lambda meta: meta["task"].update(labels=["cooking", "sports"]))
    _refused(folder, tmp_path, f"{folder / 'prompt.json'}: labels:", "'weather'")


# ---------------------------------------------------------------------------------------------- one home per fact


def test_an_edited_zero_shot_template_in_prompt_json_is_refused(finished_run: Path, tmp_path: Path) -> None:
    folder = _copy(finished_run, "zero-shot_v2", tmp_path)
    _edit(folder, "prompt.json", lambda p: p.update(template="{{ text }} !"))
    _refused(folder, tmp_path, f"{folder / 'prompt.json'}: template:", "'{{ text }} !'", "adapted.json")


def test_damaged_demonstrations_are_named_at_their_key(finished_run: Path, tmp_path: Path) -> None:
    folder = _copy(finished_run, "few-shot", tmp_path)
    rows = json.loads((folder / "demonstrations.json").read_text())
    rows[1]["inputs"] = "not an object"
    (folder / "demonstrations.json").write_text(json.dumps(rows))
    _refused(folder, tmp_path, f"{folder / 'demonstrations.json'}: [1].inputs:")


@pytest.fixture
def prompt_folder(tmp_path: Path) -> Path:
    """A `prompt` trial on the scripted model, saved as a run saves it: demonstrations and a calibration."""
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"scores": {"sports": -1.0, "cooking": -1.5, "weather": -2.0}, "parameters": 10}))
    model = ModelSpec(name=str(script), kind="scripted")
    (tmp_path / "work").mkdir()
    ctx = Context(task=TASK, model=model, seed=3, workdir=tmp_path / "work", models=ModelPool())
    method = METHODS["prompt"]
    options = method.Options(instruction="What is it about?", k=2, scoring="calibrated")
    method.check(options, TRAIN, ctx)
    with adapting("prompt"):
        adapted = method.adapt(options, TRAIN, None, ctx)
    folder = tmp_path / "adapted"
    folder.mkdir()
    save_adapted(adapted, adapted.adapt_report(), folder, "prompt", "prompt", options, ctx)
    return folder


def test_a_prompt_folder_loads_as_it_was_saved(prompt_folder: Path) -> None:
    loaded, meta = load_adapted(prompt_folder)
    used = loaded.adapt_report().details["prompt"]
    assert used["instruction"] == "What is it about?" and used["seed"] == meta["seed"] == 3
    assert used["label_words"] == {label: [label] for label in LABELS} and len(used["calibration"]) == 3
    assert len(loaded.adapt_report().details["demonstrations"]) == 2


def test_an_edited_instruction_in_adapted_json_is_refused_not_ignored(prompt_folder: Path, tmp_path: Path) -> None:
    _edit(prompt_folder, "adapted.json", lambda meta: meta["options"].update(instruction="Name the topic."))
    with pytest.raises(FolderError) as info:
        load_adapted(prompt_folder)
    assert info.value.file == str(prompt_folder / "adapted.json") and info.value.key == "options.instruction"
    _refused(
        prompt_folder,
        tmp_path,
        "adapted.json: options.instruction: 'Name the topic.' makes another prompt",
        "prompt.json: options.instruction: 'What is it about?'",
    )


def test_a_calibration_of_the_wrong_length_is_refused(prompt_folder: Path, tmp_path: Path) -> None:
    _edit(prompt_folder, "prompt.json", lambda p: p.update(calibration=[0.1, 0.2]))
    _refused(prompt_folder, tmp_path, "prompt.json: calibration: expected one number per label")


def test_an_unknown_key_of_prompt_json_is_an_error(prompt_folder: Path, tmp_path: Path) -> None:
    _edit(prompt_folder, "prompt.json", lambda p: p.update(bias=[[0.0, 0.0, 0.0]]))
    _refused(prompt_folder, tmp_path, "prompt.json: bias: unknown key")


def test_the_prompt_record_is_one_schema_for_every_prompt_method(finished_run: Path, prompt_folder: Path) -> None:
    keys = {"method", "options", "seed", "template", "instruction", "labels", "label_words", "calibration"}
    zero = json.loads((finished_run / "adapted" / "zero-shot_v1" / "prompt.json").read_text())
    few = json.loads((finished_run / "adapted" / "few-shot" / "prompt.json").read_text())
    prompt = json.loads((prompt_folder / "prompt.json").read_text())
    assert set(zero) == set(few) == set(prompt) == keys
    # zero-shot's default label descriptions are written out, as used
    assert zero["label_words"] == {label: [label] for label in LABELS} and zero["instruction"] is None
    assert few["labels"] == list(LABELS) and few["template"] is None
    demos = json.loads((finished_run / "adapted" / "few-shot" / "demonstrations.json").read_text())
    assert all(set(d) == {"id", "inputs", "target"} for d in demos)
    assert np.isfinite(prompt["calibration"]).all()
