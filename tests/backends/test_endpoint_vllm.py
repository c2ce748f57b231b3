"""The prompt route through a real vLLM server (CPU, the session's tiny Llama): option log-likelihoods equal to
tailor's local scoring of the same folder, all four classification paths, generation for QA, summarization and
translation, and a generation-only server (`transformers serve`) refusing what it lacks before any example is sent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import dataset_rows, task_doc, write_jsonl

from tailor.backends.local.lm import LanguageModel
from tailor.backends.served.endpoint import KIND as SERVED
from tailor.config.task import ModelSpec, load_task
from tailor.errors import TailorError
from tailor.report.build import build_report
from tailor.runner.run import run_task

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAILOR_CACHE_DIR", str(tmp_path / "cache"))


def _served(server: Any, api: str = "completions", **endpoint: Any) -> dict[str, Any]:
    return {
        "name": server.model,
        "endpoint": {"url": server.url, "api": api, "tokenizer": str(server.folder), **endpoint},
    }


def _task(where: Path, model: dict[str, Any], methods: list[dict[str, Any]], **over: Any) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    rows = over.pop("rows", None) or dataset_rows()
    write_jsonl(where / "data.jsonl", rows)
    (where / "task.yaml").write_text(json.dumps(task_doc(model=model, methods=methods, **over)))
    return where / "task.yaml"


@pytest.mark.parametrize("transport", ["aiohttp", "openai"])
def test_option_loglikelihoods_through_vllm_equal_local_scoring(vllm_server: Any, transport: str) -> None:
    spec = ModelSpec(**_served(vllm_server, transport=transport))
    served = SERVED.connect(spec)
    assert served.capabilities.score_continuations, served.capabilities.source
    local = LanguageModel.from_spec(ModelSpec(name=str(vllm_server.folder), kind="causal"))
    prompts = [f"Review: {r['text']}\nTopic:" for r in dataset_rows()[:12]]
    options = [" cooking", " sports", " weather"]
    remote, here = served.score(prompts, options), local.score(prompts, options)
    assert all(e is None for e in remote.errors)
    np.testing.assert_array_equal(remote.token_counts, here.token_counts)
    assert np.max(np.abs(remote.logprobs - here.logprobs)) < 1e-3
    assert (remote.logprobs.argmax(1) == here.logprobs.argmax(1)).all()


@pytest.mark.parametrize("mode", ["score", "first-token", "choice", "generate"])
def test_each_classification_path_through_vllm(vllm_server: Any, tmp_path: Path, mode: str) -> None:
    api = "chat" if mode == "first-token" else "completions"
    methods = [{"name": "prompt", "mode": mode, "k": 2, "select": "random"}]
    task = _task(tmp_path / "t", _served(vllm_server, api), methods)
    spec, base = load_task(task)
    run_task(spec, base, tmp_path / "run")
    report = build_report(tmp_path / "run")
    row = report["leaderboard"][0]
    assert row["status"] == "ok", row["error"]
    assert row["details"]["endpoint"]["mode"] == mode
    assert row["test"]["n"] == report["data"]["test"]
    if mode in ("score", "first-token", "choice"):
        assert row["test"]["valid_rate"] == 1.0  # a label every time: no free text to misparse
    assert row["usage"]["test"]["input_tokens"] > 0


def test_auto_scores_options_on_vllm_and_matches_the_local_run(vllm_server: Any, tmp_path: Path) -> None:
    methods = [{"name": "prompt"}]
    served = _task(tmp_path / "served", _served(vllm_server), methods)
    local = _task(tmp_path / "local", {"name": str(vllm_server.folder), "kind": "causal"}, methods)
    reports = []
    for name, task in (("served", served), ("local", local)):
        spec, base = load_task(task)
        run_task(spec, base, tmp_path / f"run-{name}")
        reports.append(build_report(tmp_path / f"run-{name}"))
    a, b = (r["leaderboard"][0] for r in reports)
    assert a["details"]["endpoint"]["mode"] == "score"
    assert a["test"]["accuracy"]["value"] == b["test"]["accuracy"]["value"]


@pytest.mark.parametrize("kind", ["qa", "summarization", "translation"])
def test_generation_tasks_through_vllm(vllm_server: Any, tmp_path: Path, kind: str) -> None:
    sentences = [r["text"] for r in dataset_rows()][:40]
    if kind == "qa":
        rows = [
            {"id": f"q{i}", "context": s, "question": "What happened?", "answers": {"text": [s.split()[1]]}}
            for i, s in enumerate(sentences)
        ]
        fields = {"input": ["context", "question"], "target": "answers", "id": "id"}
        methods = [{"name": "prompt", "input": "{{ context }}\nQuestion: {{ question }}", "max_new_tokens": 5}]
    else:
        rows = [{"id": f"g{i}", "source": s, "target": " ".join(s.split()[:4])} for i, s in enumerate(sentences)]
        fields = {"input": "source", "target": "target", "id": "id"}
        methods = [{"name": "prompt", "instruction": "Rewrite.", "max_new_tokens": 6, "k": 1, "select": "random"}]
    task = _task(tmp_path / "t", _served(vllm_server, "chat"), methods, kind=kind, fields=fields, rows=rows)
    spec, base = load_task(task)
    run_task(spec, base, tmp_path / "run")
    row = build_report(tmp_path / "run")["leaderboard"][0]
    assert row["status"] == "ok", row["error"]
    assert row["usage"]["test"]["output_tokens"] > 0


def test_generation_only_server_refuses_scoring_before_sending(transformers_server: Any, tmp_path: Path) -> None:
    model = {"name": transformers_server.model, "endpoint": {"url": transformers_server.url, "api": "completions"}}
    task = _task(tmp_path / "t", model, [{"name": "prompt", "mode": "score"}])
    spec, base = load_task(task)
    with pytest.raises(TailorError) as err:
        run_task(spec, base, tmp_path / "run")
    assert "prompt log-probs: no" in str(err.value) and "score_continuations" in str(err.value)
    assert not (tmp_path / "run" / "run.sqlite").exists()


def test_generation_only_server_generates(transformers_server: Any, tmp_path: Path) -> None:
    model = {"name": transformers_server.model, "endpoint": {"url": transformers_server.url, "api": "chat"}}
    task = _task(tmp_path / "t", model, [{"name": "prompt", "max_new_tokens": 4}])
    spec, base = load_task(task)
    run_task(spec, base, tmp_path / "run")
    row = build_report(tmp_path / "run")["leaderboard"][0]
    assert row["status"] == "ok", row["error"]
    assert row["details"]["endpoint"]["mode"] == "generate"


def test_fine_tuned_exported_then_served_gives_the_runs_own_predictions(
    vllm_venv: Path, tiny_lm_folder: Path, tmp_path: Path
) -> None:
    """The loop back: LoRA-tune the tiny model with tailor, export it merged, serve the merged folder with vLLM, and
    prompt it through the endpoint with the same prompt: the same test predictions (and scores) as the run's own."""
    from servers import start_vllm, stop_server

    from tailor.runner.store import RunStore

    train = {"max_steps": 6, "batch_size": 8, "eval_every": 3, "eval_examples": 8}
    tuned = _task(
        tmp_path / "tune",
        {"name": str(tiny_lm_folder), "kind": "causal"},
        [{"name": "lora", "learning_rate": 3e-3, "export_merged": True, **train}],
    )
    spec, base = load_task(tuned)
    run_task(spec, base, tmp_path / "run-tune")
    store = RunStore.open_existing(tmp_path / "run-tune")
    try:
        own = {p["example_id"]: p for p in store.predictions("lora", "test")}
    finally:
        store.close()
    merged = tmp_path / "run-tune" / "adapted" / "lora" / "merged"
    server = start_vllm(vllm_venv, merged, tmp_path / "served-merged")
    try:
        served = _task(tmp_path / "serve", _served(server), [{"name": "prompt", "mode": "score"}])
        spec, base = load_task(served)
        run_task(spec, base, tmp_path / "run-served")
    finally:
        stop_server(server)
    store = RunStore.open_existing(tmp_path / "run-served")
    try:
        remote = {p["example_id"]: p for p in store.predictions("prompt", "test")}
    finally:
        store.close()
    assert set(remote) == set(own)
    for i, p in own.items():
        assert remote[i]["label"] == p["label"], i
        for label, score in p["scores"].items():
            assert remote[i]["scores"][label] == pytest.approx(score, abs=1e-3), (i, label)


def test_a_prompt_longer_than_the_served_context_is_named_or_shortened(vllm_server: Any, tmp_path: Path) -> None:
    rows = dataset_rows()
    for i in range(0, 90, 9):  # ten of them, so that some land in dev and test whatever the split
        rows[i] = {**rows[i], "text": f"case {i}: " + " ".join(["word"] * 3000)}  # far beyond 1,024 tokens
    refused = _task(tmp_path / "a", _served(vllm_server), [{"name": "prompt", "mode": "score"}], rows=rows)
    spec, base = load_task(refused)
    run_task(spec, base, tmp_path / "run-a")
    row = build_report(tmp_path / "run-a")["leaderboard"][0]
    assert row["status"] == "failed"  # refused before sending: the server's context is known (max_model_len)
    assert "longer than the model's context (1024 tokens" in row["error"] and "truncate" in row["error"]
    assert any(r["id"] in row["error"] for r in rows[::9])
    shortened = _task(
        tmp_path / "b", _served(vllm_server), [{"name": "prompt", "mode": "score", "truncate": True}], rows=rows
    )
    spec, base = load_task(shortened)
    run_task(spec, base, tmp_path / "run-b")
    row = build_report(tmp_path / "run-b")["leaderboard"][0]
    assert row["status"] == "ok", row["error"]
    assert sum((row["details"] or {}).get("truncated", {}).values()) > 0
