"""prompt-search on a served model: a real vLLM server (CPU, the session's tiny Llama) scores the candidates and, as
the proposer, writes instructions. Requests are counted at the server (vLLM's own Prometheus counter): the budget
in calls holds, tailor's count equals the server's, a search killed at half its budget and resumed sends no request
twice, and the same seed gives the same prompt."""

from __future__ import annotations

import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import LABELS, dataset_rows

from tailor.backends.pool import ModelPool
from tailor.config.task import ModelSpec
from tailor.contract import Context, TaskInfo
from tailor.methods import METHODS
from tailor.progress import NULL_PROGRESS
from tailor.types import Example, Split, adapting

pytestmark = pytest.mark.integration

BUDGET = 120
BATCH_REQUESTS = 4 * len(LABELS)  # one minibatch of 4 examples, a request per label


def served_requests(url: str) -> int:
    """Completion requests the server has answered, whatever the status, by its own HTTP counter (read until it stops
    moving)."""
    base = url.rsplit("/v1", 1)[0]
    last = -1
    for _ in range(20):
        text = urllib.request.urlopen(f"{base}/metrics", timeout=10).read().decode()
        n = sum(
            int(float(line.rsplit(" ", 1)[1]))
            for line in text.splitlines()
            if line.startswith("http_requests_total") and "completions" in line
        )
        if n == last:
            return n
        last = n
        time.sleep(0.5)
    return last


class _KillAt:
    """A progress whose search bar raises once ``limit`` units (calls) were advanced: the search dies between two
    scorings. Other bars (the model's own) only count nothing."""

    def __init__(self, limit: int) -> None:
        self.limit, self.seen = limit, 0

    @contextmanager
    def bar(self, description: str, total: int | None):
        outer = self

        class Bar:
            def advance(self, n: int = 1) -> None:
                if not description.startswith("prompt search"):
                    return
                outer.seen += n
                if outer.seen >= outer.limit:
                    raise KeyboardInterrupt

        yield Bar()

    def log(self, message: str) -> None:
        pass


def _split(name: str, rows: list[dict[str, Any]]) -> Split:
    return Split(name, tuple(Example(r["id"], {"text": r["text"]}, r["label"]) for r in rows))


def test_prompt_search_on_vllm(vllm_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAILOR_CACHE_DIR", str(tmp_path / "cache"))
    served = {
        "name": vllm_server.model,
        "endpoint": {
            "url": vllm_server.url,
            "api": "completions",
            "tokenizer": str(vllm_server.folder),
            "cache": False,
        },
    }
    model = ModelSpec(**served)
    pool = ModelPool()
    pool.get(model)  # connected and probed before anything is counted
    rows = dataset_rows()
    train, dev = _split("train", rows[:30]), _split("dev", rows[30:54])
    task = TaskInfo("mini", "classification", tuple(LABELS), ("text",), ("accuracy", "macro_f1"))
    method = METHODS["prompt-search"]
    options = method.Options(
        budget={"calls": BUDGET},
        minibatch=4,
        finalists=2,
        edits=3,
        leader_every=5,
        instructions=["Say what the sentence is about."],
        prompt={"k": 0},
        proposer=served,
        proposals=2,
    )

    def search(workdir: Path, progress: Any = NULL_PROGRESS) -> Any:
        workdir.mkdir(exist_ok=True)
        ctx = Context(task=task, model=model, seed=0, workdir=workdir, progress=progress, models=pool)
        with adapting("prompt-search"):
            return method.adapt(options, train, dev, ctx)

    n0 = served_requests(vllm_server.url)
    first = search(tmp_path / "a")
    n1 = served_requests(vllm_server.url)
    spent = first.details["search"]["spent"]["calls"]
    assert n1 - n0 == spent, "tailor's count of calls is the server's (demonstrations chosen locally are not calls)"
    assert spent <= BUDGET + BATCH_REQUESTS, f"{spent} calls for a budget of {BUDGET}"
    assert spent >= BUDGET - 3 * BATCH_REQUESTS, "the budget is spent, not left over"

    again = search(tmp_path / "b")
    n2 = served_requests(vllm_server.url)
    assert again.saved_as == first.saved_as, "the same seed gives the same prompt"
    assert n2 - n1 == n1 - n0

    with pytest.raises(KeyboardInterrupt):
        search(tmp_path / "c", _KillAt(BUDGET // 2))
    n3 = served_requests(vllm_server.url)
    assert 0 < n3 - n2 < n1 - n0, "killed part-way"
    resumed = search(tmp_path / "c")
    n4 = served_requests(vllm_server.url)
    assert (n3 - n2) + (n4 - n3) == n1 - n0, "killed and resumed, the search sent what one uninterrupted search sends"
    assert resumed.saved_as == first.saved_as
