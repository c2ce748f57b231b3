"""Splits are fixed by content, given splits are kept, leaks are reported, and the test split stays sealed."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from conftest import MakeTask, dataset_rows, task_doc, write_jsonl

from tailor.config.task import load_task
from tailor.contract import AdaptReport, Context, MethodOptions
from tailor.data.load import content_hash, hash_split, load_task_data
from tailor.report.build import write_reports
from tailor.runner.run import run_task
from tailor.runner.store import RunStore

# Imported under another name so pytest does not take the error class for a test class.
from tailor.types import Example, Prediction, SealedSplit, Split, adapting
from tailor.types import TestSplitAccessError as SplitAccessError


def _load(task: Path, overrides: list[str] | None = None):
    spec, base = load_task(task, overrides)
    return spec, load_task_data(spec, base)


def _membership(data) -> dict[str, set[str]]:
    """Split membership by content (text and label), independent of ids and line numbers."""
    out = {"train": {ex.text for ex in data.train}, "test": {ex.text for ex in data.test.open()}}
    out["dev"] = {ex.text for ex in data.dev} if data.dev is not None else set()
    return out


# ---------------------------------------------------------------------------------------------- hash split


def test_hash_split_is_deterministic_and_independent_of_file_order(make_task: MakeTask) -> None:
    rows = dataset_rows()
    first = _membership(_load(make_task(rows=rows, folder="a"))[1])
    again = _membership(_load(make_task(rows=rows, folder="b"))[1])
    shuffled = rows[:]
    random.Random(7).shuffle(shuffled)
    assert shuffled != rows
    reordered = _membership(_load(make_task(rows=shuffled, folder="c"))[1])

    assert first == again
    assert first == reordered
    assert all(first[s] for s in ("train", "dev", "test")), "the 90 rows should fill all three splits"
    assert first["train"].isdisjoint(first["test"]) and first["dev"].isdisjoint(first["test"])
    assert sum(len(v) for v in first.values()) == 90


def test_same_content_lands_in_the_same_split_whatever_else_is_in_the_file() -> None:
    rows = dataset_rows()
    examples = [Example(id=r["id"], inputs={"text": r["text"]}, target=r["label"]) for r in rows]
    fractions = {"train": 0.6, "dev": 0.15, "test": 0.25}
    whole = hash_split(examples, fractions)
    where = {ex.text: name for name, exs in whole.items() for ex in exs}
    # A third of the file, with other ids: every example keeps its split.
    part = [Example(id=f"other-{i}", inputs=ex.inputs, target=ex.target) for i, ex in enumerate(examples[::3])]
    for name, exs in hash_split(part, fractions).items():
        for ex in exs:
            assert where[ex.text] == name
    # The hash is of content, not of id or source.
    a, b = examples[0], Example(id="zzz", inputs=examples[0].inputs, target=examples[0].target, source="x:9")
    assert content_hash(a) == content_hash(b)
    assert content_hash(a) != content_hash(Example(id=a.id, inputs={"text": a.text + "!"}, target=a.target))


def test_split_fractions_are_roughly_respected() -> None:
    examples = [Example(id=str(i), inputs={"text": f"sentence number {i}"}, target="a") for i in range(4000)]
    parts = hash_split(examples, {"train": 0.7, "dev": 0.1, "test": 0.2})
    assert abs(len(parts["train"]) / 4000 - 0.7) < 0.03
    assert abs(len(parts["dev"]) / 4000 - 0.1) < 0.02
    assert abs(len(parts["test"]) / 4000 - 0.2) < 0.03


def test_given_splits_are_used_as_they_are(tmp_path: Path) -> None:
    rows = dataset_rows()
    files = {"train": rows[:60], "dev": rows[60:72], "test": rows[72:]}
    for split, part in files.items():
        write_jsonl(tmp_path / f"{split}.jsonl", part)
    task = tmp_path / "task.yaml"
    task.write_text(yaml.safe_dump(task_doc(data={s: f"{s}.jsonl" for s in files})))
    _, data = _load(task)
    assert data.train.ids() == [r["id"] for r in files["train"]], "given train kept in file order"
    assert data.dev is not None and data.dev.ids() == [r["id"] for r in files["dev"]]
    assert data.test.open().ids() == [r["id"] for r in files["test"]]
    assert not data.overlaps


def test_missing_dev_file_is_carved_from_train_only(tmp_path: Path) -> None:
    rows = dataset_rows()
    write_jsonl(tmp_path / "train.jsonl", rows[:66])
    write_jsonl(tmp_path / "test.jsonl", rows[66:])
    (tmp_path / "task.yaml").write_text(yaml.safe_dump(task_doc(data={"train": "train.jsonl", "test": "test.jsonl"})))
    _, data = _load(tmp_path / "task.yaml")
    assert data.test.open().ids() == [r["id"] for r in rows[66:]]
    assert data.dev is not None and len(data.dev) > 0
    assert set(data.train.ids()) | set(data.dev.ids()) == {r["id"] for r in rows[:66]}
    assert any("held out as dev" in note for note in data.notes)


# ---------------------------------------------------------------------------------------------- overlaps


@pytest.mark.slow
def test_train_test_overlap_is_detected_and_reported(tmp_path: Path) -> None:
    rows = dataset_rows()
    train, test = rows[:66], rows[66:]
    # Three test sentences leak into train, changed only in case and spacing.
    leaked = [
        {"id": f"leak{i}", "text": "  " + r["text"].upper().replace(" ", "   "), "label": r["label"]}
        for i, r in enumerate(test[:3])
    ]
    write_jsonl(tmp_path / "train.jsonl", train + leaked)
    write_jsonl(tmp_path / "test.jsonl", test)
    task = tmp_path / "task.yaml"
    task.write_text(
        yaml.safe_dump(
            task_doc(
                data={"train": "train.jsonl", "test": "test.jsonl"}, splits={"train": 0.8, "dev": 0.0, "test": 0.2}
            )
        )
    )
    spec, base = load_task(task)
    data = load_task_data(spec, base)
    assert len(data.overlaps) == 1
    overlap = data.overlaps[0]
    assert (overlap.split_a, overlap.split_b) == ("train", "test")
    assert sorted(overlap.ids) == sorted((f"leak{i}", r["id"]) for i, r in enumerate(test[:3]))

    run_dir = run_task(spec, base, tmp_path / "run", task_file=str(task))
    report = json.loads(write_reports(run_dir)["json"].read_text())
    assert report["data"]["overlaps"] == [{"splits": ["train", "test"], "count": 3}]
    assert "3 test examples also appear in train" in (run_dir / "report.md").read_text()


# ---------------------------------------------------------------------------------------------- the sealed test split


def test_sealed_split_refuses_to_open_while_adapting() -> None:
    split = Split("test", (Example("a", {"text": "x"}, "l"),))
    sealed = SealedSplit(split)
    assert sealed.open() is split
    with adapting("sneaky"):
        with pytest.raises(SplitAccessError, match="'sneaky' tried to read the test split"):
            sealed.open()
        assert len(sealed) == 1  # its size is not a secret
    assert sealed.open() is split, "the seal lifts when adapting ends"


class _PeekOptions(MethodOptions):
    pass


class _Peek:
    """A malicious method: it got hold of the sealed test split and tries to train on it."""

    name: ClassVar[str] = "peek"
    route: ClassVar[str] = "prompt"
    summary: ClassVar[str] = "Reads the test split while adapting (must be refused)."
    Options: ClassVar[type] = _PeekOptions
    task_kinds: ClassVar[frozenset[str]] = frozenset({"classification"})
    model_kinds: ClassVar[frozenset[str]] = frozenset({"encoder"})
    shares_model: ClassVar[bool] = True
    files: ClassVar[tuple[str, ...]] = ()
    sealed: SealedSplit | None = None
    attempts: list[str] = []

    def uses_examples(self, options: Any) -> bool:
        return True

    def check(self, options: Any, train: Split, ctx: Context) -> None:
        pass

    def variants(self, options: Any) -> dict[str, Any]:
        return {"": options}

    def adapt(self, options: Any, train: Split, dev: Split | None, ctx: Context) -> Any:
        assert self.sealed is not None
        self.attempts.append("adapt")
        test = self.sealed.open()  # must raise
        raise AssertionError(f"the test split opened inside adapt ({len(test)} examples)")

    def load(self, options: Any, path: Path, ctx: Context) -> Any:
        raise NotImplementedError


class _Honest:
    name: ClassVar[str] = "constant"
    route: ClassVar[str] = "prompt"
    summary: ClassVar[str] = "Always says the first label."
    Options: ClassVar[type] = _PeekOptions
    task_kinds: ClassVar[frozenset[str]] = frozenset({"classification"})
    model_kinds: ClassVar[frozenset[str]] = frozenset({"encoder"})
    shares_model: ClassVar[bool] = True
    files: ClassVar[tuple[str, ...]] = ("label.txt",)

    def uses_examples(self, options):
        return False

    def check(self, options, train, ctx):
        pass

    def variants(self, options):
        return {"": options}

    def adapt(self, options, train, dev, ctx):
        label = ctx.task.labels[0]

        class _Const:
            trainable_params = 0
            truncated = None

            def adapt_report(self):
                return AdaptReport()

            def predict(self, examples):
                return [Prediction(ex.id, label, label) for ex in examples]

            def save(self, path):
                (path / "label.txt").write_text(label)

        return _Const()

    def load(self, options, path, ctx):
        raise NotImplementedError


def test_method_reading_test_split_during_adapt_is_refused(make_task: MakeTask, monkeypatch) -> None:
    import tailor.methods
    import tailor.runner.run

    peek = _Peek()
    monkeypatch.setattr(_Peek, "attempts", [])
    monkeypatch.setitem(tailor.methods.METHODS, "peek", peek)
    monkeypatch.setitem(tailor.methods.METHODS, "constant", _Honest())
    assert tailor.runner.run.METHODS is tailor.methods.METHODS, "the runner must use the one registry"

    real_load = tailor.runner.run.load_task_data

    def spy(*args, **kwargs):  # hand the malicious method a reference to the sealed split
        data = real_load(*args, **kwargs)
        peek.sealed = data.test
        return data

    monkeypatch.setattr(tailor.runner.run, "load_task_data", spy)
    task = make_task(methods=[{"name": "peek"}, {"name": "constant"}])
    spec, base = load_task(task)
    run_dir = run_task(spec, base, task.parent / "run", task_file=str(task))

    assert peek.attempts == ["adapt"]
    store = RunStore.open_existing(run_dir)
    results = {r["trial"]: r for r in store.results()}
    assert results["peek"]["status"] == "failed"
    assert results["peek"]["error"].startswith("TestSplitAccessError:")
    assert "'peek' tried to read the test split" in results["peek"]["error"]
    assert store.predictions("peek", "test") == []
    # The run goes on: the next method is evaluated on the (now open) test split.
    assert results["constant"]["status"] == "ok"
    assert len(store.predictions("constant", "test")) == len(peek.sealed)
    assert store.run()["status"] == "finished"
    store.close()


# ---------------------------------------------------------------------------------------------- overrides


def test_overrides_apply(make_task: MakeTask) -> None:
    task = make_task(methods=[{"name": "few-shot", "k": 4}, {"name": "head"}])
    spec, data = _load(task, ["seed=3", "methods.0.k=2", "limit.test=10", "methods.1.C=0.5", "model.batch_size=8"])
    assert spec.seed == 3
    assert spec.methods[0].options() == {"k": 2}
    assert spec.methods[1].options() == {"C": 0.5}
    assert spec.limit == {"test": 10}
    assert spec.model.batch_size == 8
    assert len(data.test) == 10
    assert any("limit: kept 10 of" in note for note in data.notes)
    summary = data.summary()
    assert summary["left_out_by_limit"] == {"test": len(_load(task)[1].test) - 10}
    left_out = sum(summary["left_out_by_limit"].values())
    assert summary["rows_read"] == summary["train"] + summary["dev"] + summary["test"] + left_out, (
        "every row accounted for"
    )

    base_spec, base_data = _load(task)
    assert base_spec.seed == 0 and base_spec.methods[0].options() == {"k": 4}
    assert len(base_data.test) > 10
    kept = set(data.test.open().ids())
    assert kept < set(base_data.test.open().ids()), "the limited test split is a sample of the full one"
    # The sample is deterministic.
    assert set(_load(task, ["seed=3", "limit.test=10"])[1].test.open().ids()) == kept


def test_override_adds_a_new_nested_key(make_task: MakeTask) -> None:
    overrides = ["methods.0.templates=['{{ text }}', 'About: {{ text }}']", "labels=[cooking, sports, weather]"]
    spec, _ = load_task(make_task(), overrides)
    assert spec.methods[0].options()["templates"] == ["{{ text }}", "About: {{ text }}"]
    assert spec.labels == ["cooking", "sports", "weather"]
