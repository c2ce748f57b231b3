"""Bad input fails early with an error that names where (file and line, or key) and what was expected.

Every case here stops before any model is loaded, except the `on_bad_rows: skip` run at the end.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import MakeTask, dataset_rows, squash, task_doc
from typer.testing import CliRunner

from tailor.cli.main import app
from tailor.config.task import load_task
from tailor.errors import DataError, TailorError, TaskFileError
from tailor.methods import METHODS
from tailor.runner.run import run_task
from tailor.runner.store import RunStore


def _run(task: Path, overrides: list[str] | None = None) -> Path:
    spec, base = load_task(task, overrides)
    return run_task(spec, base, task.parent / "run", task_file=str(task))


def _rows_with(bad_lines: dict[int, str | dict]) -> list[str | dict]:
    """The 90 good rows with some replaced: {index in the file (0-based): raw line or row}."""
    rows: list[str | dict] = list(dataset_rows())
    for i, row in bad_lines.items():
        rows[i] = row
    return rows


# ---------------------------------------------------------------------------------------------- the task file


def test_missing_data_file(make_task: MakeTask) -> None:
    task = make_task(data={"path": "nowhere.jsonl"})
    with pytest.raises(TaskFileError) as info:
        _run(task)
    msg = str(info.value)
    assert info.value.key == "data.path"
    assert "data.path" in msg and "not found" in msg
    assert str(task.parent / "nowhere.jsonl") in msg
    assert str(task) in msg, "the error should name the task file the bad path comes from"


def test_missing_given_split_file(make_task: MakeTask) -> None:
    task = make_task(data={"train": "data.jsonl", "test": "test.jsonl"})
    with pytest.raises(TaskFileError) as info:
        _run(task)
    assert info.value.key == "data.test"
    assert "test.jsonl" in str(info.value) and "not found" in str(info.value)


def test_missing_task_file(tmp_path: Path) -> None:
    with pytest.raises(TaskFileError) as info:
        load_task(tmp_path / "absent.yaml")
    assert "absent.yaml" in str(info.value) and "not found" in str(info.value)


def test_unknown_top_level_key(make_task: MakeTask) -> None:
    task = make_task(seeed=3)
    with pytest.raises(TaskFileError) as info:
        load_task(task)
    assert info.value.file == str(task)
    assert info.value.key == "seeed"
    assert str(info.value).startswith(f"{task}: seeed: unknown key")


def test_unknown_nested_key(make_task: MakeTask) -> None:
    task = make_task(data={"paht": "data.jsonl"})
    with pytest.raises(TaskFileError) as info:
        load_task(task)
    assert info.value.key == "data.paht"
    assert f"{task}: data.paht: unknown key" in str(info.value)


def test_wrong_type_names_key_and_expectation(make_task: MakeTask) -> None:
    task = make_task(seed="three")
    with pytest.raises(TaskFileError) as info:
        load_task(task)
    assert info.value.key == "seed"
    assert "integer" in str(info.value)


def test_task_file_that_is_not_yaml(tmp_path: Path) -> None:
    task = tmp_path / "task.yaml"
    task.write_text("name: x\nmethods: [\n  - {name: head\n")
    with pytest.raises(TaskFileError) as info:
        load_task(task)
    assert str(task) in str(info.value)
    assert re.search(r"line \d+", str(info.value)) and "not valid YAML" in str(info.value)


@pytest.mark.parametrize("key", ["input", "target"])
def test_field_mapping_names_a_missing_column(make_task: MakeTask, key: str) -> None:
    task = make_task(fields={"input": "text", "target": "label", "id": "id", key: "body"})
    with pytest.raises(TaskFileError) as info:
        _run(task)
    msg = str(info.value)
    assert info.value.key == f"fields.{key}"
    assert "'body'" in msg and "data.jsonl" in msg
    assert "columns: id, label, text" in msg, "the error should list the columns the data does have"


# ---------------------------------------------------------------------------------------------- bad rows


def test_line_that_is_not_json(make_task: MakeTask) -> None:
    task = make_task(rows=_rows_with({6: '{"id": "x", "text": "half a row'}))
    with pytest.raises(DataError) as info:
        _run(task)
    assert info.value.where == f"{task.parent / 'data.jsonl'}:7"
    assert "not valid JSON" in str(info.value)


def test_empty_input_text(make_task: MakeTask) -> None:
    task = make_task(rows=_rows_with({11: {"id": "e", "text": "   ", "label": "sports"}}))
    with pytest.raises(DataError) as info:
        _run(task)
    assert str(info.value).startswith(f"{task.parent / 'data.jsonl'}:12: ")
    assert "empty input text" in str(info.value) and "'text'" in str(info.value)


def test_missing_target(make_task: MakeTask) -> None:
    task = make_task(rows=_rows_with({3: {"id": "n", "text": "No label here.", "label": None}}))
    with pytest.raises(DataError) as info:
        _run(task)
    assert str(info.value).startswith(f"{task.parent / 'data.jsonl'}:4: ")
    assert "'label'" in str(info.value)


def test_label_not_in_label_set(make_task: MakeTask) -> None:
    task = make_task(
        rows=_rows_with({20: {"id": "u", "text": "Stocks fell sharply today.", "label": "finance"}}),
        labels=["cooking", "sports", "weather"],
    )
    with pytest.raises(DataError) as info:
        _run(task)
    msg = str(info.value)
    assert msg.startswith(f"{task.parent / 'data.jsonl'}:21: ")
    assert "'finance'" in msg and "cooking, sports, weather" in msg


def test_duplicate_id(make_task: MakeTask) -> None:
    rows = dataset_rows()
    rows[5] = {**rows[5], "id": rows[0]["id"]}
    task = make_task(rows=rows)
    with pytest.raises(DataError) as info:
        _run(task)
    assert str(info.value).startswith(f"{task.parent / 'data.jsonl'}:6: ")
    assert "duplicate id" in str(info.value) and ":1)" in str(info.value)


def test_only_one_class_in_train(make_task: MakeTask) -> None:
    rows = [r for r in dataset_rows() if r["label"] == "sports"]
    task = make_task(rows=rows)
    with pytest.raises(DataError) as info:
        _run(task)
    msg = str(info.value)
    assert "train" in msg and "only one class" in msg and "sports" in msg and "at least two" in msg


# ---------------------------------------------------------------------------------------------- methods


def test_unregistered_method_lists_the_registered_ones(make_task: MakeTask) -> None:
    task = make_task(methods=[{"name": "zero-shot"}, {"name": "lora-magic"}])
    with pytest.raises(TaskFileError) as info:
        _run(task)
    assert info.value.key == "methods[1].name"
    msg = str(info.value)
    assert str(task) in msg and "'lora-magic'" in msg
    for name in METHODS:
        assert name in msg


def test_unknown_method_option(make_task: MakeTask) -> None:
    task = make_task(methods=[{"name": "head", "CC": 2.0}])
    with pytest.raises(TaskFileError) as info:
        _run(task)
    assert info.value.key == "methods[0].CC"
    assert "unknown option" in str(info.value)
    assert "C, max_iter" in str(info.value), "the error should list the method's options"


def test_invalid_method_option_value(make_task: MakeTask) -> None:
    task = make_task(methods=[{"name": "zero-shot"}, {"name": "few-shot", "k": 0}])
    with pytest.raises(TaskFileError) as info:
        _run(task)
    assert info.value.key == "methods[1].k"
    assert "greater than or equal to 1" in str(info.value)


def test_k_larger_than_the_examples_available(make_task: MakeTask) -> None:
    task = make_task(methods=[{"name": "zero-shot"}, {"name": "few-shot", "k": 40}])
    with pytest.raises(TaskFileError) as info:
        _run(task)
    assert info.value.key == "methods[1].k"
    msg = str(info.value)
    assert "k=40" in msg and re.search(r"'sports' has \d+", msg)


def test_k_larger_than_train_for_random_selection(make_task: MakeTask) -> None:
    task = make_task(methods=[{"name": "few-shot", "k": 30, "select": "random"}])
    with pytest.raises(TaskFileError) as info:
        _run(task)
    assert info.value.key == "methods[0].k"
    assert "90 demonstrations" in str(info.value)


def test_template_naming_a_missing_field(make_task: MakeTask) -> None:
    task = make_task(methods=[{"name": "zero-shot", "templates": ["{{ text }}", "{{ title }}: {{ text }}"]}])
    with pytest.raises(TaskFileError) as info:
        _run(task)
    assert info.value.key == "methods[0].templates[1]"
    assert "'title'" in str(info.value) and "available: text" in str(info.value)


@pytest.mark.parametrize(
    "override, key, expected",
    [
        ("seed", "seed", "key=value"),
        ("methods.4.k=2", "methods.4.k", "not an index of a list of 1"),
        ("seed=[1", "seed", "not valid YAML"),
        ("seed=abc", "seed", "integer"),
        ("data.paht=x.jsonl", "data.paht", "unknown key"),
    ],
)
def test_bad_override(make_task: MakeTask, override: str, key: str, expected: str) -> None:
    with pytest.raises(TaskFileError) as info:
        load_task(make_task(), [override])
    assert info.value.key == key
    assert expected in str(info.value)


# ---------------------------------------------------------------------------------------------- the CLI


def test_cli_bad_task_file_exits_2_without_traceback(make_task: MakeTask) -> None:
    task = make_task(data={"paht": "data.jsonl"})
    result = CliRunner().invoke(app, ["run", str(task), "--quiet", "--out", str(task.parent / "run")])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "data.paht: unknown key" in squash(result.output)
    assert not (task.parent / "run").exists(), "a task that failed validation must not leave a run folder"


def test_cli_bad_data_row_exits_2_with_file_and_line(make_task: MakeTask) -> None:
    task = make_task(rows=_rows_with({0: "not json at all"}))
    result = CliRunner().invoke(app, ["run", str(task), "--quiet", "--out", str(task.parent / "run")])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "data.jsonl:1" in squash(result.output).replace(" ", "")


def test_cli_bad_override_exits_2(make_task: MakeTask) -> None:
    result = CliRunner().invoke(app, ["run", str(make_task()), "seed", "--quiet"])
    assert result.exit_code == 2
    assert "key=value" in result.output and "Traceback" not in result.output


def test_errors_are_tailor_errors() -> None:
    # The CLI prints TailorError without a traceback; every user-facing error must be one.
    assert issubclass(TaskFileError, TailorError) and issubclass(DataError, TailorError)


# ---------------------------------------------------------------------------------------------- skipping


def test_skip_bad_rows_counts_and_reports_every_row(make_task: MakeTask) -> None:
    from tailor.report.build import write_reports

    rows = _rows_with(
        {
            2: "this line is not JSON",
            7: '{"id": "broken", "text": ',
            14: {"id": "e1", "text": "", "label": "weather"},
            15: {"id": "e2", "text": "  \t ", "label": "sports"},
            30: {"id": "u1", "text": "Stocks fell sharply today.", "label": "finance"},
            31: {"id": "u2", "text": "Parliament passed the new budget.", "label": "politics"},
            44: {"id": "u3", "text": "The new phone has a faster chip.", "label": "technology"},
        }
    )
    task = make_task(rows=rows, on_bad_rows="skip", labels=["cooking", "sports", "weather"])
    run_dir = _run(task)
    report = json.loads((write_reports(run_dir)["json"]).read_text())

    d = report["data"]
    assert d["skipped_rows"] == 7
    assert d["rows_read"] == 90
    assert d["rows_read"] == d["train"] + d["dev"] + d["test"] + d["skipped_rows"], "every row must be accounted for"
    by_reason = d["skipped_by_reason"]
    assert sum(by_reason.values()) == 7
    assert by_reason == {"not valid JSON": 2, "empty input text": 2, "label not in the label set": 3}

    store = RunStore.open_existing(run_dir)
    bad = store.bad_rows()
    assert store.run()["status"] == "finished"
    store.close()
    data_file = task.parent / "data.jsonl"
    assert sorted(b["location"] for b in bad) == sorted(f"{data_file}:{n}" for n in (3, 8, 15, 16, 31, 32, 45))
    reasons = {b["location"]: b["reason"] for b in bad}
    assert "not valid JSON" in reasons[f"{data_file}:3"]
    assert "empty input text" in reasons[f"{data_file}:15"]
    assert "'finance'" in reasons[f"{data_file}:31"]
    assert report["bad_rows"]["count"] == 7

    md = (run_dir / "report.md").read_text()
    assert "7 rows skipped" in md
    assert "2 × not valid JSON" in md and "2 × empty input text" in md and "3 × label not in the label set" in md
    html = (run_dir / "report.html").read_text()
    assert "7 rows skipped" in html


def test_skip_still_fails_on_task_file_errors(make_task: MakeTask) -> None:
    # Skipping is for rows; a field mapping that names a missing column is still an error.
    task = make_task(on_bad_rows="skip", fields={"input": "body", "target": "label"})
    with pytest.raises(TaskFileError) as info:
        _run(task)
    assert info.value.key == "fields.input"


def test_task_doc_helper_is_valid(make_task: MakeTask) -> None:
    spec, _ = load_task(make_task(doc=task_doc()))
    assert spec.methods[0].name == "zero-shot"


def test_cli_predict_input_without_the_task_fields(finished_run: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "in.jsonl"
    inputs.write_text('{"id": "a", "text": "Rain all day."}\n{"id": "b", "body": "Bake the bread."}\n')
    result = CliRunner().invoke(app, ["predict", str(finished_run / "adapted" / "head"), str(inputs)])
    assert result.exit_code == 2
    assert f"{inputs}:2" in squash(result.output).replace(" ", "")
    assert "'text'" in result.output and "Traceback" not in result.output


def test_cli_predict_missing_input_file(finished_run: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["predict", str(finished_run / "adapted" / "head"), str(tmp_path / "no.jsonl")])
    assert result.exit_code == 2
    assert "not found" in result.output and "Traceback" not in result.output
