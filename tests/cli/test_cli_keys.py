"""The task file's keys are documented and reachable from the CLI (`tailor keys`)."""

from __future__ import annotations

from typer.testing import CliRunner

from tailor.cli.main import app
from tailor.config.task import DataSpec, FieldsSpec, ModelSpec, SplitSpec, StatsSpec, TaskSpec, task_keys


def test_every_task_key_has_a_docstring() -> None:
    for key, _kind, _default, meaning in task_keys():
        assert meaning, f"task-file key {key} has no docstring"


def test_keys_cover_every_nested_model() -> None:
    listed = {row[0] for row in task_keys()}
    for prefix, model in (
        ("", TaskSpec),
        ("data.", DataSpec),
        ("fields.", FieldsSpec),
        ("splits.", SplitSpec),
        ("model.", ModelSpec),
        ("stats.", StatsSpec),
    ):
        for name in model.model_fields:
            assert f"{prefix}{name}" in listed


def test_cli_keys_lists_them() -> None:
    result = CliRunner().invoke(app, ["keys"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    for key in ("data.path", "fields.input", "splits.dev", "model.name", "on_bad_rows", "stats.bootstrap", "limit"):
        assert key in result.output
