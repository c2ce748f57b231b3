"""Data sources besides one JSONL file: CSV, Parquet, and a hub dataset id (the hub itself faked)."""

from __future__ import annotations

from pathlib import Path

import datasets
import pytest
from conftest import dataset_rows

from tailor.config.task import TaskSpec
from tailor.data.load import load_task_data


def _spec(**data) -> TaskSpec:
    return TaskSpec(
        name="t", data=data, fields={"input": "text", "target": "label", "id": "id"}, methods=[{"name": "head"}]
    )


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_table_files_load_like_jsonl(tmp_path: Path, fmt: str) -> None:
    rows = dataset_rows()
    ds = datasets.Dataset.from_list(rows)
    path = tmp_path / f"data.{fmt}"
    ds.to_csv(str(path), index=False) if fmt == "csv" else ds.to_parquet(str(path))
    data = load_task_data(_spec(path=str(path)), tmp_path)
    assert data.rows_read == len(rows)
    assert len(data.train) + len(data.dev or ()) + len(data.test) == len(rows)
    assert data.labels == sorted({r["label"] for r in rows})


def test_hub_dataset_id_goes_through_load_dataset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    rows = dataset_rows()
    calls = []

    def fake_load_dataset(name, config=None, split=None):
        calls.append((name, config, split))
        part = {"train": rows[:60], "validation": rows[60:72], "test": rows[72:]}[split]
        return datasets.Dataset.from_list(part)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    spec = _spec(hub="someone/topics", hub_config="default", hub_splits={"dev": "validation"})
    data = load_task_data(spec, tmp_path)
    assert calls == [
        ("someone/topics", "default", "train"),
        ("someone/topics", "default", "validation"),
        ("someone/topics", "default", "test"),
    ]
    assert (len(data.train), len(data.dev), len(data.test)) == (60, 12, 18)
