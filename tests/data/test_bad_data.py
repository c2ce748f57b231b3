"""Trustworthy under bad input (issue 9): macro-F1 over the classes present, labels that differ only by whitespace
or case, undecodable and ragged rows, empty files, ids repeated across given split files, split fractions that
don't apply, and a run whose trials failed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import MakeTask, dataset_rows, squash, write_jsonl
from sklearn.metrics import f1_score
from typer.testing import CliRunner

from tailor.cli.main import app
from tailor.config.task import load_task
from tailor.data.load import load_task_data
from tailor.errors import DataError, MethodError, TaskFileError
from tailor.methods import METHODS
from tailor.runner.store import RunStore
from tailor.stats.metrics import METRICS, estimate, point

INVALID = "<invalid>"  # None (no valid label) spelled for scikit-learn, which can't mix None and str


def _load(task: Path):
    spec, base = load_task(task)
    return load_task_data(spec, base)


# ---------------------------------------------------------------------------------------------- 1. macro-F1


def _sk_macro_f1(gold, pred) -> float:
    """scikit-learn's default macro-F1 (the labels present in gold or predictions), an invalid output being wrong
    without being a class of its own."""
    sk_pred = [p if p is not None else INVALID for p in pred]
    present = sorted((set(gold) | set(sk_pred)) - {INVALID})
    return float(f1_score(gold, sk_pred, labels=present, average="macro", zero_division=0))


def test_macro_f1_ignores_a_declared_label_absent_from_gold_and_predictions() -> None:
    gold = ["a", "b", "c", "a", "b", "c"]
    prep = METRICS["macro_f1"].prepare(gold, list(gold), ["a", "b", "c", "d"])
    assert point(prep) == pytest.approx(1.0)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.slow
def test_macro_f1_matches_sklearn_on_the_sample_and_on_resamples(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = ["c0", "c1", "c2", "c3", "c4", "unused"]
    n = 30
    # Skewed gold so resamples often miss the rare classes; some predictions invalid, some a class not in gold.
    gold = [str(x) for x in rng.choice(labels[:4], size=n, p=[0.55, 0.3, 0.1, 0.05])]
    pred: list[str | None] = [
        g if (u := rng.random()) < 0.6 else None if u < 0.7 else str(rng.choice(labels[:5])) for g in gold
    ]
    prep = METRICS["macro_f1"].prepare(gold, pred, labels)
    assert point(prep) == pytest.approx(_sk_macro_f1(gold, pred), abs=1e-12)

    idx = rng.integers(0, n, size=(200, n))
    gold_a, pred_a = np.array(gold, dtype=object), np.array(pred, dtype=object)
    expected = [_sk_macro_f1(list(gold_a[row]), list(pred_a[row])) for row in idx]
    assert any(len(set(gold_a[row])) < len(set(gold)) for row in idx), "some resamples must miss a class"
    np.testing.assert_allclose(prep.values(idx), expected, atol=1e-12)


def test_perfect_predictions_give_one_with_a_degenerate_interval() -> None:
    rng = np.random.default_rng(0)
    gold = [str(x) for x in rng.choice(["a", "b", "c"], size=40, p=[0.8, 0.15, 0.05])]
    est = estimate(METRICS["macro_f1"].prepare(gold, list(gold), ["a", "b", "c", "d"]), resamples=500, seed=0)
    assert f"{est.value:.3f} [{est.ci_low:.3f}, {est.ci_high:.3f}]" == "1.000 [1.000, 1.000]"


# ---------------------------------------------------------------------------------------------- 2. labels


def test_labels_are_stripped_of_surrounding_whitespace_and_noted(make_task: MakeTask) -> None:
    rows = dataset_rows()
    for i in (1, 4, 7):  # three sports rows (the rows are interleaved by class: cooking, sports, weather)
        rows[i] = {**rows[i], "label": rows[i]["label"] + " "}
    rows[0] = {**rows[0], "label": "\tcooking"}
    data = _load(make_task(rows=rows))
    assert data.labels == ["cooking", "sports", "weather"]
    notes = " ".join(data.summary()["notes"])
    assert "whitespace" in notes and "4 labels" in notes


def test_task_file_labels_are_stripped(make_task: MakeTask) -> None:
    data = _load(make_task(labels=["cooking ", " sports", "weather"]))
    assert data.labels == ["cooking", "sports", "weather"]
    assert "whitespace" in " ".join(data.notes)


def test_labels_differing_only_in_case_are_refused_naming_both(make_task: MakeTask) -> None:
    rows = dataset_rows()
    rows[4] = {**rows[4], "label": "Sports"}  # line 5; 'sports' first occurs on line 2
    with pytest.raises(DataError) as info:
        _load(make_task(rows=rows))
    msg = str(info.value)
    assert "'Sports'" in msg and "'sports'" in msg and "case" in msg
    assert "data.jsonl:5" in msg and "data.jsonl:2" in msg


def test_task_file_labels_differing_only_in_case_are_refused(make_task: MakeTask) -> None:
    with pytest.raises(TaskFileError) as info:
        load_task(make_task(labels=["Sports", "sports", "cooking"]))
    assert info.value.key == "labels"
    assert "'Sports'" in str(info.value) and "'sports'" in str(info.value)


def test_task_file_label_and_data_label_differing_only_in_case(make_task: MakeTask) -> None:
    with pytest.raises(DataError) as info:
        _load(make_task(labels=["Sports", "cooking", "weather"]))
    msg = str(info.value)
    assert "'Sports'" in msg and "'sports'" in msg and "labels" in msg and "data.jsonl:2" in msg


# ---------------------------------------------------------------------------------------------- 3. unreadable files


def _write_bytes_line(path: Path, line_index: int, raw: bytes) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    lines[line_index] = raw
    path.write_bytes(b"".join(lines))


def test_jsonl_line_not_utf8_names_file_and_line(make_task: MakeTask) -> None:
    task = make_task()
    _write_bytes_line(task.parent / "data.jsonl", 4, b'{"id": "x", "text": "caf\xe9 au lait", "label": "cooking"}\n')
    with pytest.raises(DataError) as info:
        _load(task)
    assert f"{task.parent / 'data.jsonl'}:5" in str(info.value) and "UTF-8" in str(info.value)


def test_jsonl_line_not_utf8_is_skipped_and_counted(make_task: MakeTask) -> None:
    task = make_task(on_bad_rows="skip")
    _write_bytes_line(task.parent / "data.jsonl", 4, b'{"id": "x", "text": "caf\xe9 au lait", "label": "cooking"}\n')
    data = _load(task)
    summary = data.summary()
    assert summary["skipped_by_reason"] == {"not valid UTF-8": 1}
    assert summary["rows_read"] == 90 and summary["train"] + summary["dev"] + summary["test"] == 89


def _csv_task(make_task: MakeTask, lines: list[bytes], **keys) -> Path:
    task = make_task(data={"path": "data.csv"}, **keys)
    header = b"id,text,label\n"
    body = [f'{r["id"]},"{r["text"]}",{r["label"]}\n'.encode() for r in dataset_rows()]
    for i, raw in enumerate(lines):
        body[i] = raw
    (task.parent / "data.csv").write_bytes(header + b"".join(body))
    return task


def test_csv_row_not_utf8(make_task: MakeTask) -> None:
    task = _csv_task(make_task, [b's00,"caf\xe9 au lait",cooking\n'])
    with pytest.raises(DataError) as info:
        _load(task)
    assert f"{task.parent / 'data.csv'}:2" in str(info.value) and "UTF-8" in str(info.value)
    skipped = _load(_csv_task(make_task, [b's00,"caf\xe9 au lait",cooking\n'], on_bad_rows="skip"))
    assert skipped.summary()["skipped_by_reason"] == {"not valid UTF-8": 1}


def test_ragged_csv_row_names_the_line_and_can_be_skipped(make_task: MakeTask) -> None:
    ragged = [b"", b"", b"c01,Too many,sports,extra\n", b"", b"", b"w01,Too few\n"]
    lines = [raw or f'{r["id"]},"{r["text"]}",{r["label"]}\n'.encode() for raw, r in zip(ragged, dataset_rows())]
    with pytest.raises(DataError) as info:
        _load(_csv_task(make_task, lines))
    assert "data.csv:4" in str(info.value) and "4 fields" in str(info.value) and "3" in str(info.value)
    data = _load(_csv_task(make_task, lines, on_bad_rows="skip"))
    assert data.summary()["skipped_by_reason"] == {"wrong number of fields": 2}
    assert data.summary()["rows_read"] == 90


@pytest.mark.parametrize("name, content", [("data.jsonl", ""), ("data.jsonl", "\n  \n"), ("data.csv", "")])
def test_empty_data_file(make_task: MakeTask, name: str, content: str) -> None:
    task = make_task(data={"path": name})
    (task.parent / name).write_text(content)
    with pytest.raises(DataError) as info:
        _load(task)
    assert str(task.parent / name) in str(info.value) and "is empty" in str(info.value)


def test_cli_predict_with_an_empty_input_file(finished_run: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "empty.jsonl"
    inputs.write_text("")
    result = CliRunner().invoke(app, ["predict", str(finished_run / "adapted" / "head"), str(inputs)])
    assert result.exit_code != 0
    out = squash(result.output)
    assert "is empty" in out and str(inputs) in out.replace(" ", "") and "Traceback" not in out


# ---------------------------------------------------------------------------------------------- 4. ids per split


def _glue_files(folder: Path) -> None:
    rows = dataset_rows()
    write_jsonl(folder / "train.jsonl", [{**r, "id": i} for i, r in enumerate(rows[:60])])
    write_jsonl(folder / "test.jsonl", [{**r, "id": i} for i, r in enumerate(rows[60:])])


def test_ids_repeated_across_given_split_files_are_qualified_by_split(make_task: MakeTask) -> None:
    task = make_task(data={"train": "train.jsonl", "test": "test.jsonl"})
    _glue_files(task.parent)
    data = _load(task)
    test_ids = [ex.id for ex in data.test.open().examples]
    assert "test:0" in test_ids and len(set(test_ids)) == 30
    every = [ex.id for ex in (*data.train.examples, *(data.dev.examples if data.dev else ()))] + test_ids
    assert len(every) == len(set(every)) == 90
    assert any("test:0" in note for note in data.notes)


def test_duplicate_id_within_one_given_split_is_still_an_error(make_task: MakeTask) -> None:
    task = make_task(data={"train": "train.jsonl", "test": "test.jsonl"})
    _glue_files(task.parent)
    rows = [json.loads(line) for line in (task.parent / "test.jsonl").read_text().splitlines()]
    rows[5]["id"] = 0
    write_jsonl(task.parent / "test.jsonl", rows)
    with pytest.raises(DataError) as info:
        _load(task)
    assert "duplicate id '0'" in str(info.value) and "test.jsonl:6" in str(info.value)


# ---------------------------------------------------------------------------------------------- 5. split fractions


def test_split_fractions_with_given_files_validate_only_the_dev_fraction(make_task: MakeTask) -> None:
    task = make_task(
        data={"train": "train.jsonl", "test": "test.jsonl"}, splits={"train": 1.0, "dev": 0.0, "test": 0.0}
    )
    _glue_files(task.parent)
    data = _load(task)
    assert data.dev is None and len(data.train) == 60 and len(data.test) == 30
    with pytest.raises(TaskFileError) as info:
        load_task(task, ["splits.dev=1.0"])
    assert info.value.key.startswith("splits")


def test_split_fractions_of_one_file_are_still_checked(make_task: MakeTask) -> None:
    with pytest.raises(TaskFileError) as info:
        load_task(make_task(splits={"train": 1.0, "dev": 0.0, "test": 0.0}))
    assert info.value.key.startswith("splits") and "test" in str(info.value)


# ---------------------------------------------------------------------------------------------- 6. failed trials


def _fail_at_adapt(*args, **kwargs):
    raise MethodError("C=0 leaves the head nothing to fit", key="C")


def test_cli_run_whose_only_method_fails_exits_3(make_task: MakeTask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(METHODS["head"], "adapt", _fail_at_adapt)
    task = make_task(methods=[{"name": "head"}])
    run_dir = task.parent / "run"
    result = CliRunner().invoke(app, ["run", str(task), "--quiet", "--out", str(run_dir)], terminal_width=200)
    assert result.exit_code == 3, result.output
    out = squash(result.output)
    assert "1 of 1 trials failed" in out and "head: MethodError: C=0 leaves the head nothing to fit" in out


@pytest.mark.slow
def test_cli_run_with_one_failed_trial_of_two_exits_3(make_task: MakeTask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(METHODS["head"], "adapt", _fail_at_adapt)
    task = make_task(methods=[{"name": "zero-shot"}, {"name": "head"}])
    run_dir = task.parent / "run"
    result = CliRunner().invoke(app, ["run", str(task), "--quiet", "--out", str(run_dir)], terminal_width=200)
    assert result.exit_code == 3, result.output
    out = squash(result.output)
    assert "1 of 2 trials failed" in out and "head: MethodError: C=0" in out
    assert out.index("winner") < out.index("trials failed"), "the failures are listed after the leaderboard"
    store = RunStore.open_existing(run_dir)
    assert {r["trial"]: r["status"] for r in store.results()} == {"zero-shot": "ok", "head": "failed"}
    store.close()
