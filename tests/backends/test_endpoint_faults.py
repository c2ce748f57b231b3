"""Faults and the response cache against a real vLLM server (CPU, the session's tiny Llama), behind
:class:`~tailor.testing.fault_proxy.FaultProxy`:

- a 500-example run through 10% 429s (``Retry-After: 1``), 2% 503s, 1% timeouts and 1% cut connections loses no
  example, sends nothing before its ``Retry-After`` has passed, and predicts exactly what a fault-free run predicts;
- a re-run of a finished 1,000-example run sends nothing (counted at a fault-free proxy in front of the server),
  and a change of the URL, the model id, a sampling parameter, the seed or the template sends every query again;
- a run killed with SIGKILL half-way, run again, sends only what the first one had not finished, and the cache it
  left opens and is sound.

A fault-free :class:`FaultProxy` is the request counter: ``counts["forwarded"]`` is what the server received.
Every example's text is distinct, so every query is a distinct request (and a distinct cache key).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import LABELS, SENTENCES, task_doc, write_jsonl

from tailor.backends.protocol import GenerationSettings
from tailor.backends.served.cache import ResponseCache
from tailor.backends.served.endpoint import KIND as SERVED
from tailor.config.task import load_task
from tailor.report.build import build_report
from tailor.runner.run import run_task
from tailor.runner.store import RunStore
from tailor.testing.fault_proxy import FaultProxy

pytestmark = pytest.mark.integration

# The fault mix. The endpoint's read timeout (2 s) is shorter than a `timeout` fault's delay (5 s).
FAULT_RATES = {"rate_429": 0.10, "retry_after": 1, "rate_503": 0.02, "rate_timeout": 0.01, "rate_cut": 0.01}
SLOW_SECONDS = 5.0
READ_TIMEOUT = 2.0
# Seed 0's first draw, which falls on the model list (GET /models, the first request of a run), is no fault: a
# fault there is test_a_fault_on_the_model_list_is_retried's subject.
FAULT_SEED = 0
GENERATE = {"name": "prompt", "mode": "generate", "max_new_tokens": 4, "instruction": "Say what the sentence is about."}
CHANGED_SUBSET = 1000  # examples re-sent per change: all of the cached run (a smaller sample saves ~40 s)
TAILOR = [sys.executable, "-m", "tailor"]


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAILOR_CACHE_DIR", str(tmp_path / "cache"))


def _rows(n: int, tag: str) -> list[dict[str, str]]:
    """``n`` rows over the three labels, each text distinct (the sentence plus a numbered tag)."""
    rows = []
    for i in range(n):
        label = LABELS[i % len(LABELS)]
        text = f"{SENTENCES[label][(i // len(LABELS)) % len(SENTENCES[label])]} ({tag} {i})"
        rows.append({"id": f"{tag}{i:04d}", "text": text, "label": label})
    return rows


def _task(
    where: Path,
    server: Any,
    url: str,
    n_test: int,
    *,
    method: dict[str, Any] | None = None,
    name: str | None = None,
    **endpoint: Any,
) -> Path:
    """A classification task over given files (30 train, ``n_test`` test, no dev), generating through ``url``."""
    where.mkdir(parents=True, exist_ok=True)
    write_jsonl(where / "train.jsonl", _rows(30, "train"))
    write_jsonl(where / "test.jsonl", _rows(n_test, "case"))
    model = {
        "name": name or server.model,
        "endpoint": {"url": url, "api": "completions", "tokenizer": str(server.folder), **endpoint},
    }
    doc = task_doc(
        model=model,
        data={"train": "train.jsonl", "test": "test.jsonl"},
        splits={"dev": 0},
        methods=[method or GENERATE],
    )
    (where / "task.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return where / "task.yaml"


def _limited(task: Path, n: int) -> Path:
    """The same task with its test split cut to a deterministic sample of ``n`` (the same prompts, fewer)."""
    doc = yaml.safe_load(task.read_text())
    doc["limit"] = {"test": n}
    task.write_text(yaml.safe_dump(doc, sort_keys=False))
    return task


def _run(task: Path, out: Path) -> dict[str, Any]:
    spec, base = load_task(task)
    run_task(spec, base, out)
    row = build_report(out)["leaderboard"][0]
    assert row["status"] == "ok", row["error"]
    assert "n_failed" not in row["test"], row["test"].get("failures")
    return row


def _answers(run_dir: Path) -> dict[str, tuple[str, str | None]]:
    """Each test example's id -> (raw output, parsed label); every one answered."""
    store = RunStore.open_existing(run_dir)
    try:
        preds = store.predictions("prompt", "test")
    finally:
        store.close()
    assert [p["error"] for p in preds if p["error"] is not None] == []
    return {p["example_id"]: (p["output"], p["label"]) for p in preds}


def _upstream(server: Any) -> str:
    return server.url.removesuffix("/v1")


def _posts(proxy: FaultProxy) -> int:
    """Requests the proxy saw other than the model list (GET /v1/models): the probes and the queries."""
    return sum(r.path != "/v1/models" for r in proxy.records)


# ----------------------------------------------------------------------------------------------------- faults


def test_500_examples_through_faults_are_all_answered_on_time_and_as_without_faults(
    vllm_server: Any, tmp_path: Path
) -> None:
    with FaultProxy(_upstream(vllm_server), seed=FAULT_SEED, slow_seconds=SLOW_SECONDS, **FAULT_RATES) as proxy:
        task = _task(tmp_path / "faulty", vllm_server, proxy.url + "/v1", 500, cache=False, timeout=READ_TIMEOUT)
        faulty = _run(task, tmp_path / "run-faulty")
    assert faulty["test"]["n"] == 500
    assert proxy.violations == []  # nothing was sent again before its Retry-After had passed
    injected = {f: proxy.counts[f] for f in ("429", "503", "timeout", "cut")}
    assert all(n > 0 for n in injected.values()), injected
    assert proxy.counts["forwarded"] >= 500  # the cache was off: every query really went to the server
    retried = {r.body_hash for r in proxy.records if r.fault == "429"}
    answered = {r.body_hash for r in proxy.records if r.fault is None and r.status == 200}
    assert retried <= answered  # each request answered 429 was sent again, later, and answered

    clean = _task(tmp_path / "clean", vllm_server, vllm_server.url, 500, cache=False)
    _run(clean, tmp_path / "run-clean")
    assert _answers(tmp_path / "run-faulty") == _answers(tmp_path / "run-clean")


def test_a_fault_on_the_model_list_is_retried(vllm_server: Any, tmp_path: Path) -> None:
    """Every distinct request's first attempt is answered 429 (Retry-After: 1), the model list's too: a client that
    retries every request must retry that one as well, rather than stop the run at the probe."""
    with FaultProxy(_upstream(vllm_server), rate_429=1.0, retry_after=1, max_faults_per_body=1) as proxy:
        task = _task(tmp_path / "t", vllm_server, proxy.url + "/v1", 20, cache=False)
        row = _run(task, tmp_path / "run")
    assert row["test"]["n"] == 20
    assert proxy.violations == []
    assert proxy.counts["429"] == len({r.body_hash for r in proxy.records})  # each request was faulted once


# ----------------------------------------------------------------------------------------------------- the cache


def test_a_rerun_sends_nothing_and_each_change_sends_every_query_again(vllm_server: Any, tmp_path: Path) -> None:
    cache = tmp_path / "responses.sqlite"
    upstream = _upstream(vllm_server)
    with FaultProxy(upstream) as counter, FaultProxy(upstream) as other:
        url = counter.url + "/v1"
        first_task = _task(tmp_path / "first", vllm_server, url, 1000, cache=str(cache))
        first = _run(first_task, tmp_path / "run-first")
        assert first["test"]["n"] == 1000
        assert first["usage"]["test"]["cached_calls"] == 0
        sent = counter.counts["forwarded"]
        with ResponseCache(cache) as stored:
            assert len(stored) == sent  # every request sent was distinct, and its answer is kept
        probes = _posts(counter) - 1000  # the capability probes, sent before the queries

        # Another endpoint setting (not part of any request) makes a new connection here: the model list and
        # the probes come from the cache too, not from this process's memory of the first run.
        again = _run(_task(tmp_path / "again", vllm_server, url, 1000, cache=str(cache), max_concurrency=17),
                     tmp_path / "run-again")  # fmt: skip
        assert counter.counts["forwarded"] == sent and len(counter.records) == sent  # the server saw nothing
        assert again["usage"]["test"]["cached_calls"] == again["usage"]["test"]["calls"] == 1000
        assert again["usage"]["test"]["input_tokens"] == first["usage"]["test"]["input_tokens"]

        n = CHANGED_SUBSET
        before = _posts(counter)
        row = _run(_limited(_task(tmp_path / "url", vllm_server, other.url + "/v1", 1000, cache=str(cache)), n),
                   tmp_path / "run-url")  # fmt: skip
        assert (_posts(counter) - before, _posts(other)) == (0, probes + n)  # another URL: all asked there
        assert row["usage"]["test"]["cached_calls"] == 0

        changes: dict[str, dict[str, Any]] = {
            "model id": {"name": "tiny"},  # the same weights under vLLM's other served name
            "sampling": {"method": {**GENERATE, "do_sample": True, "temperature": 0.7}},
            "max_new_tokens": {"method": {**GENERATE, "max_new_tokens": 5}},
            "template": {"method": {**GENERATE, "instruction": "Name the topic of the sentence."}},
        }
        for what, change in changes.items():
            before = _posts(counter)
            task = _limited(_task(tmp_path / what.replace(" ", "-"), vllm_server, url, 1000, cache=str(cache),
                                  **change), n)  # fmt: skip
            row = _run(task, tmp_path / f"run-{what.replace(' ', '-')}")
            expected = n + (probes if what == "model id" else 0)  # a new model id is probed again too
            assert _posts(counter) - before == expected, what
            assert row["test"]["n"] == n and row["usage"]["test"]["cached_calls"] == 0, what  # no stale hit

        # The seed: the prompt method has no generation seed of its own (its predictor always sends seed 0; a
        # method's `seed:` chooses demonstrations, and with given files the task's `seed:` changes no split), so
        # the seed is changed where it enters each request: the backend's GenerationSettings.seed.
        spec, _ = load_task(first_task)
        lm = SERVED.connect(spec.model)
        store = RunStore.open_existing(tmp_path / "run-first")
        try:
            prompts = [p["prompt"] for p in store.predictions("prompt", "test")][:n]
        finally:
            store.close()
        settings = GenerationSettings(max_new_tokens=GENERATE["max_new_tokens"], stop=("\n",), seed=0)
        before = _posts(counter)
        assert all(a.error is None for a in lm.generate(prompts, settings))
        assert _posts(counter) == before  # the first run's own requests, rebuilt exactly: all cached
        assert all(a.error is None for a in lm.generate(prompts, dataclasses.replace(settings, seed=1)))
        assert _posts(counter) - before == n


def test_a_run_killed_mid_way_is_not_sent_again_when_run_again(vllm_server: Any, tmp_path: Path) -> None:
    cache = tmp_path / "responses.sqlite"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    with FaultProxy(_upstream(vllm_server)) as counter:
        task = _task(tmp_path / "t", vllm_server, counter.url + "/v1", 1000, cache=str(cache))
        command = [*TAILOR, "run", str(task), "--quiet", "--out"]
        log = tmp_path / "killed.log"
        with log.open("wb") as out:
            first = subprocess.Popen(
                [*command, str(tmp_path / "run-killed")], cwd=tmp_path, env=env, start_new_session=True,
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:  # killed once the queries are under way (the model list and 6 probes come first), before the end
            deadline = time.monotonic() + 300
            while counter.counts["forwarded"] < 300 and first.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            os.killpg(first.pid, signal.SIGKILL)
        finally:
            first.wait(30)
        assert first.returncode == -signal.SIGKILL, log.read_text()[-3000:]  # killed, not finished or failed
        sent_first = counter.counts["forwarded"]

        with ResponseCache(cache) as stored:  # the killed run's cache opens, sound, with what it finished
            finished = len(stored)
        with closing(sqlite3.connect(cache)) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert 0 < finished <= sent_first

        second = subprocess.run(
            [*command, str(tmp_path / "run-again")], cwd=tmp_path, env=env, capture_output=True, text=True,
            timeout=600, start_new_session=True,
        )  # fmt: skip
        assert second.returncode == 0, second.stderr[-3000:]
        sent_second = counter.counts["forwarded"] - sent_first
    row = build_report(tmp_path / "run-again")["leaderboard"][0]
    assert row["status"] == "ok" and row["test"]["n"] == 1000 and "n_failed" not in row["test"]
    cached = row["usage"]["test"]["cached_calls"]
    assert 0 < cached < 1000  # the queries the killed run had finished...
    assert sent_second == 1000 - cached  # ...were not sent again; all else was (the probes came from the cache)
    with ResponseCache(cache) as stored:
        assert len(stored) - finished == sent_second  # and each of those was new to the cache
