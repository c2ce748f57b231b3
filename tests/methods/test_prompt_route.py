"""The prompt route on a generative model, end to end through `run_task`, on a tiny local Llama.

The model has random weights, so only the pipeline is checked here: prompts, demonstrations,
scoring and generation modes, metrics, stored prompts and reports — not the quality.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import MakeTask, dataset_rows, squash, write_jsonl

from tailor.config.task import load_task
from tailor.errors import TaskFileError
from tailor.report.build import build_report, write_reports
from tailor.runner.run import run_task
from tailor.runner.store import RunStore
from tailor.testing import tiny_lm_path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tiny_lm_path(tmp_path_factory.getbasetemp() / "tiny-lms", arch="llama"))


def _run(task: Path, tmp_path: Path, overrides: list[str] | None = None) -> tuple[Path, RunStore]:
    spec, base = load_task(task, overrides or [])
    run_dir = run_task(spec, base, tmp_path / "run", task_file=str(task))
    write_reports(run_dir)
    return run_dir, RunStore.open_existing(run_dir)


@pytest.mark.slow
def test_classification_by_scoring_and_by_generation(make_task: MakeTask, tiny: str, tmp_path: Path) -> None:
    methods = [
        {
            "name": "prompt",
            "label": "zero",
            "instruction": "Topic of the sentence?",
            "variants": {"plain": {}, "formatted": {"output_format": "Answer with sports, cooking or weather."}},
        },
        {"name": "prompt", "label": "few", "k": 3, "select": "balanced", "scoring": "calibrated"},
        {
            "name": "prompt",
            "label": "near",
            "k": 2,
            "select": "nearest",
            "demo_order": "similar_last",
            "chat": "completion",
            "scoring": "mean",
        },
        {"name": "prompt", "label": "gen", "mode": "generate", "max_new_tokens": 4, "k": 2, "select": "mmr"},
    ]
    run_dir, store = _run(make_task(methods=methods, model={"name": tiny}), tmp_path)
    results = {r["trial"]: r for r in store.results()}
    assert set(results) == {"zero/plain", "zero/formatted", "few", "near", "gen"}
    assert all(r["status"] == "ok" for r in results.values()), [r["error"] for r in results.values()]
    assert results["few"]["n_train"] == 3 and results["zero/plain"]["n_train"] == 0

    test_ids = {p["example_id"] for p in store.predictions("few", "test")}
    for name in results:
        for p in store.predictions(name, "test"):
            assert p["prompt"], "the exact prompt is stored beside every prediction"
            assert p["input"]["text"] in p["prompt"]
        if name.startswith(("few", "near", "gen")):
            # Demonstrations come from train only: no other test input appears in any test prompt.
            for p in store.predictions(name, "test"):
                others = [q for q in store.predictions(name, "test") if q["example_id"] != p["example_id"]]
                assert not any(q["input"]["text"] in p["prompt"] for q in others), (name, p["example_id"])
                assert p["prompt"].count(p["input"]["text"]) == 1, "an input is never its own demonstration"
    assert test_ids
    scored = store.predictions("few", "test")
    assert all(p["label"] is not None and set(p["scores"]) == {"cooking", "sports", "weather"} for p in scored)

    report = build_report(run_dir)
    rows = {r["method"]: r for r in report["leaderboard"]}
    assert rows["few"]["test"]["valid_rate"] == 1.0, "option scoring can't produce an invalid output"
    gen = store.predictions("gen", "test")
    valid = sum(p["label"] is not None for p in gen) / len(gen)
    assert rows["gen"]["test"]["valid_rate"] == pytest.approx(valid)
    assert "valid" in (run_dir / "report.md").read_text()
    store.close()


def _generation_task(tmp_path: Path, kind: str, rows: list[dict], fields: dict, model: str, methods: list) -> Path:
    where = tmp_path / kind
    where.mkdir()
    write_jsonl(where / "data.jsonl", rows)
    doc = {
        "name": kind,
        "kind": kind,
        "data": {"path": "data.jsonl"},
        "fields": fields,
        "seed": 0,
        "stats": {"bootstrap": 200},
        "model": {"name": model},
        "methods": methods,
    }
    (where / "task.yaml").write_text(json.dumps(doc))
    return where / "task.yaml"


@pytest.mark.parametrize("kind", ["qa", "summarization", "translation"])
def test_generation_tasks(kind: str, tiny: str, tmp_path: Path) -> None:
    sentences = [r["text"] for r in dataset_rows()][:40]
    if kind == "qa":
        rows = [
            {
                "id": f"q{i}",
                "context": s,
                "question": "What happened?",
                "answers": {"text": [s.split()[1]], "answer_start": [0]},
            }
            for i, s in enumerate(sentences)
        ]
        fields = {"input": ["context", "question"], "target": "answers", "id": "id"}
        methods = [
            {
                "name": "prompt",
                "input": "{{ context }}\nQuestion: {{ question }}",
                "max_new_tokens": 5,
                "k": 1,
                "select": "random",
            }
        ]
    else:
        rows = [{"id": f"g{i}", "source": s, "target": " ".join(s.split()[:4])} for i, s in enumerate(sentences)]
        fields = {"input": "source", "target": "target", "id": "id"}
        methods = [
            {
                "name": "prompt",
                "instruction": "Summarize." if kind == "summarization" else "Translate.",
                "max_new_tokens": 6,
                "k": 1,
                "select": "random",
            }
        ]
    run_dir, store = _run(_generation_task(tmp_path, kind, rows, fields, tiny, methods), tmp_path)
    (result,) = store.results()
    assert result["status"] == "ok", result["error"]
    metrics = {
        "qa": ["exact_match", "f1"],
        "summarization": ["rouge1", "rouge2", "rougeL"],
        "translation": ["chrf", "bleu"],
    }[kind]
    for m in metrics:
        est = result["test"][m]
        assert 0 <= est["ci_low"] <= est["value"] <= est["ci_high"] <= 1
    preds = store.predictions("prompt", "test")
    assert preds and all(p["label"] is None and p["prompt"] for p in preds)
    assert len({len(p["output"]) <= 200 for p in preds}) == 1
    report = build_report(run_dir)
    assert report["primary_metric"] == metrics[0] and report["leaderboard"][0]["test"]["valid_rate"] is not None
    store.close()


def test_template_naming_a_missing_field_fails_before_any_model_call(make_task: MakeTask, tiny: str) -> None:
    task = make_task(
        methods=[{"name": "prompt", "variants": {"a": {}, "b": {"input": "{{ title }}: {{ text }}"}}}],
        model={"name": tiny},
    )
    spec, base = load_task(task)
    with pytest.raises(TaskFileError) as err:
        run_task(spec, base, task.parent / "run", task_file=str(task))
    msg = squash(str(err.value))
    assert "methods[0].variants.b.input" in msg and "'title'" in msg and "available: " in msg
    assert not (task.parent / "run").exists(), "nothing ran"


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"verbalizers": {"sports": "ball", "cooking": "Ball"}}, "share the verbalizer"),
        ({"verbalizers": {"sports": " "}}, "empty verbalizer"),
        ({"verbalizers": {"finance": "money"}}, "verbalizers for unknown labels"),
        ({"variants": {"x": {"wording": "hi"}}}, "not a prompt part"),
        ({"k": 1000}, "k=1000"),
    ],
)
def test_bad_prompt_options(make_task: MakeTask, tiny: str, option: dict, message: str) -> None:
    task = make_task(methods=[{"name": "prompt", **option}], model={"name": tiny})
    spec, base = load_task(task)
    with pytest.raises(TaskFileError) as err:
        run_task(spec, base, task.parent / "run", task_file=str(task))
    assert message in squash(str(err.value)) and "methods[0]" in str(err.value)


@pytest.mark.slow
def test_prompt_longer_than_the_context_is_reported_or_truncated(tiny: str, tmp_path: Path) -> None:
    rows = dataset_rows()
    write_jsonl(tmp_path / "train.jsonl", rows[:60])
    long = {**rows[60], "text": "word " * 3000}  # far beyond the tiny model's 1,024 positions
    write_jsonl(tmp_path / "test.jsonl", [long, *rows[61:70]])
    doc = {
        "name": "long",
        "data": {"train": "train.jsonl", "test": "test.jsonl"},
        "splits": {"train": 0.8, "dev": 0.0, "test": 0.2},
        "fields": {"input": "text", "target": "label", "id": "id"},
        "stats": {"bootstrap": 200},
        "model": {"name": tiny},
        "methods": [{"name": "prompt"}],
    }
    (tmp_path / "task.yaml").write_text(json.dumps(doc))
    run_dir, store = _run(tmp_path / "task.yaml", tmp_path / "a")
    (result,) = store.results()
    assert result["status"] == "failed"
    assert "1 prompts are longer than the model's context" in result["error"] and long["id"] in result["error"]
    run_dir, store = _run(tmp_path / "task.yaml", tmp_path / "b", ["methods.0.truncate=true"])
    (result,) = store.results()
    assert result["status"] == "ok", result["error"]
    stored = {p["example_id"]: p for p in store.predictions("prompt", "test")}
    assert len(stored) == 10 and len(stored[long["id"]]["prompt"]) < len(long["text"])
