"""kill -9 at random points of a run — loading, embedding, adapting, predicting, writing the store or the reports —
twelve times: every rerun with `--resume` completes, and the final store equals an uninterrupted run's.

Each run is a real `tailor run` process (its own session, killed with SIGKILL as a crash or an out-of-memory kill
would); the kill times are stratified over the length of an uninterrupted run, measured first: one random time
(fixed seed) in each of twelve equal slices, so every phase is hit with fewer runs than uniform draws need (each
kill costs two `tailor` processes, and this was the suite's slowest test at twenty uniform kills).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import dataset_rows, task_doc, write_jsonl

from tailor.runner.store import RunStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KILLS = 12
TAILOR = [sys.executable, "-m", "tailor"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def _final_state(run_dir: Path) -> dict[str, Any]:
    """What must not depend on interruptions: each trial's status, metrics and test predictions (timings aside)."""
    store = RunStore.open_existing(run_dir)
    try:
        out = {"status": store.run()["status"], "trials": {}}
        for r in store.results():
            preds = store.predictions(r["trial"], "test")
            out["trials"][r["trial"]] = {
                "status": r["status"],
                "test": {k: v for k, v in (r["test"] or {}).items() if isinstance(v, dict)},
                "n_train": r["n_train"],
                "usage_test": r["usage"]["test"] if r["usage"] else None,
                "predictions": [
                    (p["example_id"], p["label"], {k: round(v, 5) for k, v in (p["scores"] or {}).items()})
                    for p in preds
                ],
            }
        return out
    finally:
        store.close()


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*TAILOR, *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("kill")
    write_jsonl(where / "data.jsonl", dataset_rows())
    methods = [
        {"name": "zero-shot", "templates": ["{{ text }}", "This is about: {{ text }}"]},
        {"name": "few-shot", "k": 3},
        {"name": "head"},
    ]
    task = where / "task.yaml"
    task.write_text(yaml.safe_dump(task_doc(methods=methods), sort_keys=False))
    return task


def test_kill_9_anywhere_then_resume_gives_the_uninterrupted_result(task: Path, tmp_path: Path) -> None:
    # the first run pays cold caches (imports, files); a second, warm one measures how long a run really takes,
    # and two uninterrupted runs must agree with each other before interrupted ones are compared with them
    lengths = []
    for name in ("reference", "warm"):
        t0 = time.monotonic()
        done = _run(["run", str(task), "--out", str(tmp_path / name), "--quiet"], tmp_path)
        lengths.append(time.monotonic() - t0)
        assert done.returncode == 0, done.stderr
    reference = _final_state(tmp_path / "reference")
    assert reference["status"] == "finished" and len(reference["trials"]) == 4
    assert _final_state(tmp_path / "warm") == reference
    length = min(lengths)

    rng = random.Random(0)
    outcomes = []
    for i in range(KILLS):
        run_dir = tmp_path / f"run{i}"
        # slice i of [0.1, 1.05] x the run's length: from start-up to the last report written
        at = (0.1 + 0.95 * (i + rng.random()) / KILLS) * length
        started = time.monotonic()
        proc = subprocess.Popen(
            [*TAILOR, "run", str(task), "--out", str(run_dir), "--quiet"],
            cwd=tmp_path,
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=at)
            killed = False
            # it finished sooner than the kill: later kills aim inside the shorter run
            length = min(length, time.monotonic() - started)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            killed = True
        stored = (run_dir / "run.sqlite").exists()
        # killed before the store existed, there is nothing to resume: the same command is run again
        again = ["--resume", str(run_dir)] if stored else ["--out", str(run_dir)]
        rerun = _run(["run", str(task), *again, "--quiet"], tmp_path)
        assert rerun.returncode == 0, f"kill {i} at {at:.1f} s (stored: {stored}): {rerun.stdout}{rerun.stderr}"
        assert "Traceback" not in rerun.stderr
        assert _final_state(run_dir) == reference, f"kill {i} at {at:.1f} s"
        report = json.loads((run_dir / "report.json").read_text())
        assert report["status"] == "finished"
        outcomes.append((round(at, 1), killed, stored))
    assert sum(killed for _, killed, _ in outcomes) >= KILLS * 3 // 4, outcomes  # most runs really were killed
    assert any(stored for _, killed, stored in outcomes if killed), "some kills hit a run that had started storing"
