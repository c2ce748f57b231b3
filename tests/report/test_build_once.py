"""A report is built once per command: `tailor run` and `tailor report` write report.json, report.md and report.html
and print the leaderboard from one built report (the paired bootstrap tests run once), and the run store is opened
only where the flow needs it: once by the run that writes it, once by the report that reads it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import MakeTask
from typer.testing import CliRunner

import tailor.report.build as report_build
from tailor.cli.main import app
from tailor.runner import store as store_module


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Path]]:
    """Every report build and every opening of a run store, counted."""
    calls: dict[str, list[Path]] = {"builds": [], "opens": []}
    build, open_store = report_build.build, store_module.RunStore.__init__

    def counting_build(run_dir: Path):
        calls["builds"].append(run_dir)
        return build(run_dir)

    def counting_open(self, path) -> None:
        calls["opens"].append(Path(path))
        open_store(self, path)

    monkeypatch.setattr(report_build, "build", counting_build)
    monkeypatch.setattr(store_module.RunStore, "__init__", counting_open)
    return calls


def test_tailor_run_builds_its_report_once(make_task: MakeTask, counted: dict[str, list[Path]]) -> None:
    task = make_task(methods=[{"name": "zero-shot"}, {"name": "few-shot", "k": 2}])
    run_dir = task.parent / "run"
    result = CliRunner().invoke(app, ["run", str(task), "--quiet", "--out", str(run_dir)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert counted["builds"] == [run_dir], "one build for the files and the leaderboard printed"
    assert len(counted["opens"]) == 2, "the run writes the store, the report reads it: nothing opens it again"
    report = json.loads((run_dir / "report.json").read_text())
    assert report["winner"]["method"] in result.output and "report.html" in result.output


def test_tailor_report_builds_once(finished_run: Path, tmp_path: Path, counted: dict[str, list[Path]]) -> None:
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    result = CliRunner().invoke(app, ["report", str(copy)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert counted["builds"] == [copy] and len(counted["opens"]) == 1
