"""Export of fine-tuned generative models: the adapter in PEFT's format, the merged model as an ordinary Hugging
Face folder, and `tailor predict` giving the run's own predictions from either."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import dataset_rows, task_doc, write_jsonl
from typer.testing import CliRunner

from tailor.cli.main import app
from tailor.runner.store import RunStore
from tailor.testing import tiny_lm_path

TRAIN = {"max_steps": 6, "batch_size": 8, "eval_every": 3, "eval_examples": 8}


@pytest.fixture(scope="module")
def tuned_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("tuned_run")
    model = tiny_lm_path(tmp_path_factory.getbasetemp() / "tiny-lms", arch="llama")
    write_jsonl(where / "data.jsonl", dataset_rows())
    methods = [
        {"name": "lora", "learning_rate": 3e-3, "export_merged": True, **TRAIN},
        {"name": "full", "learning_rate": 1e-3, **TRAIN},
        {"name": "prompt", "instruction": "Say what the sentence is about."},
    ]
    doc = task_doc(methods=methods, model={"name": str(model)})
    (where / "task.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    result = CliRunner().invoke(app, ["run", str(where / "task.yaml"), "--out", str(where / "run"), "--quiet"])
    assert result.exit_code == 0, result.output
    return where / "run"


def _predict(folder: Path, stored: list[dict], tmp_path: Path) -> dict[str, dict]:
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text("".join(json.dumps({"id": p["example_id"], **p["input"]}) + "\n" for p in stored))
    result = CliRunner().invoke(app, ["predict", str(folder), str(inputs), "--scores"])
    assert result.exit_code == 0, result.output
    return {row["id"]: row for row in map(json.loads, result.stdout.splitlines())}


def _assert_same(got: dict[str, dict], stored: list[dict]) -> None:
    assert set(got) == {p["example_id"] for p in stored}
    for p in stored:
        row = got[p["example_id"]]
        assert row["label"] == p["label"], p["example_id"]
        for label, score in p["scores"].items():
            assert row["scores"][label] == pytest.approx(score, abs=1e-4), (p["example_id"], label)


def test_run_puts_prompting_and_fine_tuning_side_by_side(tuned_run: Path) -> None:
    store = RunStore.open_existing(tuned_run)
    results = {r["trial"]: r for r in store.results()}
    store.close()
    assert {m: r["status"] for m, r in results.items()} == {"lora": "ok", "full": "ok", "prompt": "ok"}
    assert {results[m]["route"] for m in results} == {"finetune", "prompt"}
    report = (tuned_run / "report.md").read_text()
    assert "lora" in report and "full" in report and "prompt" in report


def test_adapter_is_saved_in_peft_format_and_merged_model_is_plain(tuned_run: Path) -> None:
    from peft import PeftConfig
    from transformers import AutoModelForCausalLM

    folder = tuned_run / "adapted" / "lora"
    config = PeftConfig.from_pretrained(str(folder / "adapter"))
    assert config.peft_type == "LORA"
    merged = AutoModelForCausalLM.from_pretrained(str(folder / "merged"))  # an ordinary folder
    assert not any("lora" in name for name, _ in merged.named_parameters())
    assert (folder / "merged" / "tokenizer.json").is_file() or (folder / "merged" / "tokenizer_config.json").is_file()


def test_full_fine_tuning_saves_an_ordinary_model_folder(tuned_run: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tuned_run / "adapted" / "full"
    AutoModelForCausalLM.from_pretrained(str(folder))
    AutoTokenizer.from_pretrained(str(folder))


@pytest.mark.parametrize("which", ["lora", "lora/merged", "full"])
def test_predict_gives_the_runs_predictions(tuned_run: Path, which: str, tmp_path: Path) -> None:
    store = RunStore.open_existing(tuned_run)
    stored = store.predictions(which.split("/")[0], "test")
    store.close()
    assert stored
    _assert_same(_predict(tuned_run / "adapted" / which, stored, tmp_path), stored)
