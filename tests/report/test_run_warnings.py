"""What the reader must know before trusting a leaderboard is said on the console and in every report: test
examples that also appear in train, a winner chosen on too few dev examples."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from conftest import dataset_rows, squash, task_doc, write_jsonl
from typer.testing import CliRunner

from tailor.cli.main import app


def test_a_winner_chosen_on_a_small_dev_split_is_warned_about(finished_run: Path) -> None:
    report = json.loads((finished_run / "report.json").read_text())
    assert 0 < report["data"]["dev"] < 30
    assert any(f"only {report['data']['dev']} dev examples" in w for w in report["warnings"])
    md = (finished_run / "report.md").read_text()
    assert "## Warnings" in md and "the choice is noisy" in md
    assert "the choice is noisy" in (finished_run / "report.html").read_text()


@pytest.mark.slow
def test_test_examples_also_in_train_are_warned_about_on_the_console_and_in_the_report(tmp_path: Path) -> None:
    rows = dataset_rows()
    train, test = rows[:60], rows[60:]
    test = [*test, {**train[0], "id": "copy-of-train"}, {**train[1], "id": "another-copy"}]
    write_jsonl(tmp_path / "train.jsonl", train)
    write_jsonl(tmp_path / "test.jsonl", test)
    doc = task_doc(data={"train": "train.jsonl", "test": "test.jsonl"}, methods=[{"name": "head"}])
    task = tmp_path / "task.yaml"
    task.write_text(yaml.safe_dump(doc, sort_keys=False))
    result = CliRunner().invoke(app, ["run", str(task), "--out", str(tmp_path / "run")], terminal_width=200)
    assert result.exit_code == 0, result.output
    out = squash(result.output)
    # the two copies: in train, or in the dev examples held out of train's file
    said = re.findall(r"warning: (\d+) test examples also appear in (train|dev)", out)
    # said when the data is read, and again under the leaderboard
    assert len(said) % 2 == 0 and sum(int(n) for n, _ in said[: len(said) // 2]) == 2, out
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert sum(int(w.split()[0]) for w in report["warnings"] if "test examples also appear in" in w) == 2
    assert "## Warnings" in (tmp_path / "run" / "report.md").read_text()


@pytest.mark.slow
def test_the_console_does_not_say_a_prompt_trains(make_task) -> None:
    task = make_task(methods=[{"name": "zero-shot"}, {"name": "head"}])
    result = CliRunner().invoke(app, ["run", str(task), "--out", str(task.parent / "run")], terminal_width=200)
    assert result.exit_code == 0, result.output
    out = squash(result.output)
    assert "zero-shot (prompt, all-MiniLM-L6-v2) may draw demonstrations from" in out
    assert "head (finetune, all-MiniLM-L6-v2) trains on" in out
