"""The prompt route on served models, against fake OpenAI-compatible servers that answer like vLLM, OpenAI,
llama.cpp's server or a generation-only server (``tailor.testing.fake_server``): the probes choose the
classification path each can serve, a path it can't is refused before any example is sent, the response cache
sends nothing twice (and misses on any change), money is counted, failed queries are counted and never scored,
and the API key is written nowhere.

The same paths against a real vLLM server, with log-likelihoods equal to local scoring, are in
``test_endpoint_vllm.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import dataset_rows, task_doc, write_jsonl

from tailor.config.task import load_task
from tailor.errors import MethodError, TailorError
from tailor.report.build import build_report
from tailor.runner.run import run_task
from tailor.runner.store import RunStore
from tailor.testing.fake_server import PRESETS, FakeServer

KEY = "sk-test-RECOGNISABLE-7f3a9c2e11"


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test its own response cache, so one test's answers are never another's."""
    monkeypatch.setenv("TAILOR_CACHE_DIR", str(tmp_path / "cache"))


def _model(url: str, **endpoint: Any) -> dict[str, Any]:
    return {"name": "fake-model", "endpoint": {"url": url + "/v1", **endpoint}}


def _task(where: Path, model: dict[str, Any], methods: list[dict[str, Any]] | None = None, **over: Any) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    write_jsonl(where / "data.jsonl", dataset_rows())
    doc = task_doc(model=model, methods=methods or [{"name": "prompt"}], **over)
    (where / "task.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return where / "task.yaml"


def _run(task: Path, out: Path) -> dict[str, Any]:
    spec, base = load_task(task)
    run_task(spec, base, out)
    return build_report(out)


def _trial(report: dict[str, Any], name: str = "prompt") -> dict[str, Any]:
    return next(r for r in report["leaderboard"] if r["method"] == name)


@pytest.mark.parametrize(
    ("preset", "mode"),
    [("vllm", "score"), ("openai", "first-token"), ("llamacpp", "first-token"), ("generate-only", "generate")],
)
def test_auto_takes_the_best_path_the_server_offers(tmp_path: Path, preset: str, mode: str, tiny_lm_folder) -> None:
    with FakeServer("fake-model", **PRESETS[preset]) as srv:
        # option scoring needs the served model's tokenizer here; the fake answers for any token ids
        model = _model(srv.url, tokenizer=str(tiny_lm_folder))
        report = _run(_task(tmp_path / "t", model), tmp_path / "run")
    row = _trial(report)
    assert row["status"] == "ok", row["error"]
    assert row["details"]["endpoint"]["mode"] == mode
    assert row["test"]["n"] == report["data"]["test"]  # every test example scored


def test_a_path_the_server_lacks_is_refused_before_any_example_is_sent(tmp_path: Path) -> None:
    with FakeServer("fake-model", **PRESETS["generate-only"]) as srv:
        task = _task(tmp_path / "t", _model(srv.url), [{"name": "prompt", "mode": "first-token"}])
        spec, base = load_task(task)
        with pytest.raises(TailorError) as err:
            run_task(spec, base, tmp_path / "run")
        sent = sum(srv.counts.values())
    message = str(err.value)
    assert "mode" in message and "top_logprobs" in message and "probes found" in message
    assert sent <= 8  # the probes and nothing else


def test_scoring_needs_a_tokenizer_and_says_so(tmp_path: Path) -> None:
    with FakeServer("fake-model", **PRESETS["vllm"]) as srv:
        task = _task(tmp_path / "t", _model(srv.url), [{"name": "prompt", "mode": "score"}])
        spec, base = load_task(task)
        with pytest.raises(TailorError, match="endpoint.tokenizer"):
            run_task(spec, base, tmp_path / "run")


def test_first_token_refuses_labels_that_begin_alike(tmp_path: Path) -> None:
    with FakeServer("fake-model", **PRESETS["openai"]) as srv:
        methods = [{"name": "prompt", "verbalizers": {"cooking": "very tasty", "sports": "very fast"}}]
        report = _run(_task(tmp_path / "t", _model(srv.url), methods), tmp_path / "run")
    row = _trial(report)
    assert row["status"] == "failed" and "begin alike" in row["error"] and "cooking" in row["error"]


def test_choice_path_answers_only_labels(tmp_path: Path) -> None:
    with FakeServer("fake-model", **PRESETS["vllm"]) as srv:
        report = _run(_task(tmp_path / "t", _model(srv.url), [{"name": "prompt", "mode": "choice"}]), tmp_path / "r")
    row = _trial(report)
    assert row["status"] == "ok" and row["test"]["valid_rate"] == 1.0


def test_a_rerun_sends_nothing_and_any_change_sends_everything_again(tmp_path: Path) -> None:
    with FakeServer("fake-model", **PRESETS["generate-only"]) as srv:
        methods = [{"name": "prompt", "mode": "generate"}]
        _run(_task(tmp_path / "a", _model(srv.url), methods), tmp_path / "run1")
        first = sum(srv.counts.values())
        srv.reset()
        again = _run(_task(tmp_path / "a", _model(srv.url), methods), tmp_path / "run2")
        assert sum(srv.counts.values()) == 0  # probes included: everything came from the cache
        usage = _trial(again)["usage"]["test"]
        assert usage["cached_calls"] == usage["calls"] > 0 and usage["input_tokens"] > 0  # tokens still counted
        for i, change in enumerate(
            ({"temperature": 0.7, "do_sample": True}, {"max_new_tokens": 7}, {"instruction": "Label it."})
        ):
            srv.reset()
            _run(_task(tmp_path / f"b{i}", _model(srv.url), [{**methods[0], **change}]), tmp_path / f"run-{i}")
            chat = srv.counts.get("/v1/chat/completions", 0)
            assert chat >= first - 8, change  # every example asked again (probes may still hit)
    with FakeServer("other-model", **PRESETS["generate-only"]) as other:  # another URL and model id
        model = {"name": "other-model", "endpoint": {"url": other.url + "/v1"}}
        _run(_task(tmp_path / "c", model, methods), tmp_path / "run-other")
        assert sum(other.counts.values()) >= first


def test_cache_off_sends_every_time(tmp_path: Path) -> None:
    with FakeServer("fake-model", **PRESETS["generate-only"]) as srv:
        task = _task(tmp_path / "t", _model(srv.url, cache=False), [{"name": "prompt", "mode": "generate"}])
        report = _run(task, tmp_path / "r1")
        first = srv.counts.get("/v1/chat/completions", 0)
        _run(task, tmp_path / "r2")
        asked = report["data"]["dev"] + report["data"]["test"]
        assert srv.counts.get("/v1/chat/completions", 0) - first == asked  # every example asked again
    assert not (tmp_path / "cache").exists()


def test_money_per_thousand_queries_from_the_task_files_price(tmp_path: Path) -> None:
    with FakeServer("fake-model", **PRESETS["generate-only"]) as srv:
        model = {**_model(srv.url), "price": {"input": 2.0, "output": 8.0}}
        report = _run(_task(tmp_path / "t", model, [{"name": "prompt", "mode": "generate"}]), tmp_path / "run")
    row = _trial(report)
    u, money = row["usage"]["test_per_1k"], row["costs"]["money"]
    assert money["test_per_1k"] == pytest.approx((u["input_tokens"] * 2.0 + u["output_tokens"] * 8.0) / 1e6)
    assert money["currency"] == "USD" and money["total"] > 0
    md = (tmp_path / "run" / "report.md").read_text() if (tmp_path / "run" / "report.md").exists() else ""
    from tailor.report.build import build
    from tailor.report.page import markdown

    md = markdown(build(tmp_path / "run"))
    assert "per 1,000 queries" in md and "USD" in md


def test_failed_queries_are_counted_not_scored_and_resume_asks_only_them(tmp_path: Path) -> None:
    failing = {"n": 0}

    def answer(body: dict[str, Any]) -> str:
        return "positive"

    with FakeServer("fake-model", **PRESETS["generate-only"], answer_fn=answer) as srv:
        # the server is stopped half-way through: what was asked stays cached, the rest fails after retries
        model = _model(srv.url, max_retries=1, timeout=2)
        task = _task(tmp_path / "t", model, [{"name": "prompt", "mode": "generate"}])
        spec, base = load_task(task)
        srv.fail_after = 25  # answers 25 requests (the probes among them), then 503 for the rest
        run_task(spec, base, tmp_path / "run")
        failing["n"] = sum(srv.counts.values())
        report = build_report(tmp_path / "run")
        row = _trial(report)
        assert row["status"] == "incomplete"
        n_failed = (row["test"] or {}).get("n_failed", 0) + (row["dev"] or {}).get("n_failed", 0)
        assert n_failed > 0 and row["test"]["n"] + row["test"].get("n_failed", 0) == report["data"]["test"]
        store = RunStore.open_existing(tmp_path / "run")
        try:
            errors = [p for p in store.predictions("prompt", "test") if p["error"]]
        finally:
            store.close()
        assert errors and all(p["label"] is None for p in errors)
        srv.fail_after = None
        srv.reset()
        run_task(spec, base, tmp_path / "run", resume=True)
        resent = srv.counts.get("/v1/chat/completions", 0)
    assert resent == n_failed  # only the failed ones were asked again
    assert _trial(build_report(tmp_path / "run"))["status"] == "ok"


@pytest.mark.parametrize("transport", ["aiohttp", "openai"])
@pytest.mark.slow
def test_the_key_is_written_nowhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, transport: str) -> None:
    monkeypatch.setenv("FAKE_API_KEY", KEY)
    with FakeServer("fake-model", **PRESETS["generate-only"]) as srv:
        model = _model(srv.url, api_key_env="FAKE_API_KEY", transport=transport)
        task = _task(tmp_path / "t", model, [{"name": "prompt", "mode": "generate"}])
        from typer.testing import CliRunner

        from tailor.cli.main import app

        result = CliRunner().invoke(app, ["run", str(task), "--out", str(tmp_path / "run")])
        assert result.exit_code == 0, result.output
        assert KEY not in result.output
        seen = srv.bodies
    assert seen  # the server was asked
    for path in [*(tmp_path / "run").rglob("*"), *(tmp_path / "cache").rglob("*")]:
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
    adapted = json.loads(next((tmp_path / "run" / "adapted").rglob("adapted.json")).read_text())
    assert adapted["model"]["endpoint"]["api_key_env"] == "FAKE_API_KEY"


def test_a_missing_key_variable_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    task = _task(tmp_path / "t", _model("http://127.0.0.1:9", api_key_env="NO_SUCH_KEY_VAR"))
    spec, base = load_task(task)
    with pytest.raises(TailorError, match="NO_SUCH_KEY_VAR"):
        run_task(spec, base, tmp_path / "run")


def test_an_unreachable_endpoint_names_the_url(tmp_path: Path) -> None:
    task = _task(tmp_path / "t", _model("http://127.0.0.1:9", connect_timeout=1, max_retries=0))
    spec, base = load_task(task)
    with pytest.raises(TailorError, match=r"127\.0\.0\.1:9"):
        run_task(spec, base, tmp_path / "run")


def test_a_model_the_server_does_not_serve_lists_what_it_does(tmp_path: Path) -> None:
    with FakeServer("served-one", **PRESETS["vllm"]) as srv:
        task = _task(tmp_path / "t", _model(srv.url))
        spec, base = load_task(task)
        with pytest.raises(TailorError, match="served-one"):
            run_task(spec, base, tmp_path / "run")


def test_a_parameter_the_server_rejects_names_the_option(tmp_path: Path) -> None:
    with FakeServer("fake-model", **PRESETS["openai"], reject_fields={"top_p"}) as srv:
        methods = [{"name": "prompt", "mode": "generate", "do_sample": True, "top_p": 0.5}]
        report = _run(_task(tmp_path / "t", _model(srv.url), methods), tmp_path / "run")
    row = _trial(report)
    assert row["status"] == "failed" and "top_p" in row["error"]


def test_endpoint_keys_are_checked_in_the_task_file(tmp_path: Path) -> None:
    with pytest.raises(TailorError, match="http"):
        load_task(_task(tmp_path / "a", {"name": "m", "endpoint": "localhost:8000"}))
    with pytest.raises(TailorError, match="kind"):
        load_task(_task(tmp_path / "b", {"name": "m", "kind": "causal", "endpoint": "http://x/v1"}))
    with pytest.raises(TailorError, match="max_concurrency"):
        load_task(_task(tmp_path / "c", {"name": "m", "endpoint": {"url": "http://x/v1", "max_concurrency": 0}}))
    assert MethodError  # imported for the module's readers: refusals are MethodErrors inside a trial


def test_predict_sends_through_the_endpoint_only_when_the_user_names_it(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tailor.cli.main import app

    with FakeServer("fake-model", **PRESETS["generate-only"]) as srv:
        task = _task(tmp_path / "t", _model(srv.url), [{"name": "prompt", "mode": "generate"}])
        _run(task, tmp_path / "run")
        store = RunStore.open_existing(tmp_path / "run")
        try:
            stored = store.predictions("prompt", "test")
        finally:
            store.close()
        inputs = tmp_path / "inputs.jsonl"
        inputs.write_text("".join(json.dumps({"id": p["example_id"], **p["input"]}) + "\n" for p in stored))
        folder = tmp_path / "run" / "adapted" / "prompt"
        refused = CliRunner().invoke(app, ["predict", str(folder), str(inputs)])
        assert refused.exit_code == 2 and "--endpoint" in refused.output and srv.url in refused.output
        srv.reset()
        ok = CliRunner().invoke(app, ["predict", str(folder), str(inputs), "--endpoint", srv.url + "/v1"])
        assert ok.exit_code == 0, ok.output
        assert sum(srv.counts.values()) == 0  # the run's answers, from the cache
    got = {row["id"]: row for row in map(json.loads, ok.stdout.splitlines())}
    assert {i: r["label"] for i, r in got.items()} == {p["example_id"]: p["label"] for p in stored}


def test_a_server_that_reports_no_usage_has_its_tokens_counted_here(tmp_path: Path, tiny_lm_folder) -> None:
    with FakeServer("fake-model", **PRESETS["generate-only"], no_usage=True) as srv:
        model = _model(srv.url, tokenizer=str(tiny_lm_folder))
        report = _run(_task(tmp_path / "t", model, [{"name": "prompt", "mode": "generate"}]), tmp_path / "run")
    usage = _trial(report)["usage"]["test"]
    assert usage["calls"] == report["data"]["test"] and usage["input_tokens"] > usage["calls"]
