"""A fine-tuning run killed mid-training (SIGKILL) and continued with `tailor run --resume` ends where an
uninterrupted run ends; a resume that doesn't fit its run is refused, saying why.

The runs are real `tailor run` processes on a random-weight tiny Llama. The task names its model `model`, a path
resolved against the working directory, so the same task file (the same configuration) can be pointed at a
different model to check that a checkpoint from another model is refused.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import dataset_rows, squash, task_doc, write_jsonl

from tailor.runner.store import RunStore
from tailor.testing import tiny_lm_path

pytestmark = pytest.mark.integration

TAILOR = [sys.executable, "-m", "tailor"]
# One thread per process: the two runs of the fixture share the machine (and other tests run beside them); the
# step results don't depend on it, the wall time very much does.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
STEPS = 600
KILL_AFTER = 40  # the checkpoint step (at least) the run is killed after
LORA: dict[str, Any] = {
    "name": "lora",
    "dropout": 0.0,  # nothing random in a step: a resumed run can repeat the steps exactly
    "max_steps": STEPS,
    "batch_size": 8,
    "learning_rate": 2e-3,
    "max_length": 64,
    "eval_every": 100,
    "eval_examples": 16,
    "patience": None,
    "checkpoint_every": 2,
}
METHODS = [{"name": "prompt", "k": 0, "instruction": "Say what the sentence is about."}, LORA]
CHECKPOINT = Path("work/lora/checkpoint/checkpoint.pt")


def _tailor(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*TAILOR, *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout, check=False
    )


def _checkpoint_step(path: Path) -> int:
    import torch

    return int(torch.load(path, map_location="cpu", weights_only=False)["step"])


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The task file, in a folder whose `model` is the tiny Llama (runs are started with that folder as cwd)."""
    where = tmp_path_factory.mktemp("resume_task")
    write_jsonl(where / "data.jsonl", dataset_rows())
    (where / "task.yaml").write_text(
        yaml.safe_dump(task_doc(model={"name": "model"}, methods=METHODS), sort_keys=False)
    )
    (where / "model").symlink_to(tiny_lm_path(tmp_path_factory.getbasetemp() / "tiny-lms", arch="llama"))
    return where / "task.yaml"


@pytest.fixture(scope="module")
def runs(task: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """An uninterrupted run, and a run of the same task killed with SIGKILL mid-training (kept pristine: tests
    resume copies of it). Both start together."""
    where = tmp_path_factory.mktemp("resume_runs")
    reference, killed = where / "reference", where / "killed"
    ref = subprocess.Popen(
        [*TAILOR, "run", str(task), "--out", str(reference), "-q"],
        cwd=task.parent,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    victim = subprocess.Popen(
        [*TAILOR, "run", str(task), "--out", str(killed), "-q"],
        cwd=task.parent,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert victim.poll() is None, "the run ended before it could be killed: train for more steps"
            assert time.monotonic() < deadline, "no checkpoint appeared in time"
            if (killed / CHECKPOINT).is_file() and _checkpoint_step(killed / CHECKPOINT) >= KILL_AFTER:
                break
            time.sleep(0.05)
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(timeout=10) == -signal.SIGKILL
        out, _ = ref.communicate(timeout=120)
        assert ref.returncode == 0, out
    finally:
        for proc in (ref, victim):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return {"reference": reference, "killed": killed, "killed_at": _checkpoint_step(killed / CHECKPOINT)}


def _copy(run: Path, to: Path) -> Path:
    shutil.copytree(run, to, symlinks=True)
    return to


def _store(run_dir: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]], RunStore]:
    store = RunStore.open_existing(run_dir)
    return store.run(), {r["trial"]: r for r in store.results()}, store


def test_killed_run_is_left_running_with_a_checkpoint(runs: dict[str, Any]) -> None:
    run, results, store = _store(runs["killed"])
    store.close()
    assert run["status"] == "running" and run["finished_at"] is None, "SIGKILL leaves no chance to record an end"
    assert set(results) == {"prompt"} and results["prompt"]["status"] == "ok", "the finished method is stored"
    assert KILL_AFTER <= runs["killed_at"] < STEPS


def test_resumed_run_ends_where_an_uninterrupted_run_ends(runs: dict[str, Any], task: Path, tmp_path: Path) -> None:
    run_dir = _copy(runs["killed"], tmp_path / "run")
    _, before, store = _store(run_dir)
    store.close()

    done = _tailor("run", str(task), "--resume", str(run_dir), cwd=task.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    log = squash(done.stdout + done.stderr)
    assert "prompt: kept, it finished before the run stopped" in log
    assert f"resuming from the checkpoint at step {runs['killed_at']} of {STEPS}" in log
    assert f"training resumed from step {runs['killed_at']}" in log

    run, results, store = _store(run_dir)
    ref_run, ref_results, ref_store = _store(runs["reference"])
    try:
        assert run["status"] == "finished" and run["resumed_at"] is not None
        assert results["prompt"]["created_at"] == before["prompt"]["created_at"], "a finished method is not rerun"
        lora, ref = results["lora"], ref_results["lora"]
        assert lora["status"] == "ok", lora["error"]
        training, ref_training = lora["details"]["training"], ref["details"]["training"]
        assert training["resumed_from_step"] == runs["killed_at"] and ref_training["resumed_from_step"] is None
        assert training["steps"] == ref_training["steps"] == STEPS
        assert training["examples"] == ref_training["examples"]
        assert [e["step"] for e in training["evals"]] == [e["step"] for e in ref_training["evals"]]
        for mine, theirs in zip(training["evals"], ref_training["evals"]):
            assert mine["metric"] == pytest.approx(theirs["metric"], abs=1e-9), (training["evals"], ref_training)
        assert training["best_step"] == ref_training["best_step"]
        assert set(lora["details"]["audits"]) == {"answer_mask", "template", "packing", "merge"}

        for metric, value in ref["test"].items():
            theirs = value["value"] if isinstance(value, dict) else value
            mine = lora["test"][metric]["value"] if isinstance(value, dict) else lora["test"][metric]
            assert mine == pytest.approx(theirs, abs=1e-4), metric
        preds, ref_preds = store.predictions("lora", "test"), ref_store.predictions("lora", "test")
        assert [p["example_id"] for p in preds] == [p["example_id"] for p in ref_preds]
        assert [p["label"] for p in preds] == [p["label"] for p in ref_preds]
        for p, q in zip(preds, ref_preds):
            assert set(p["scores"]) == set(q["scores"])
            for label in p["scores"]:
                assert p["scores"][label] == pytest.approx(q["scores"][label], abs=1e-4), (p["example_id"], label)
    finally:
        store.close()
        ref_store.close()
    assert not (run_dir / CHECKPOINT).exists(), "a finished method's checkpoint is removed"
    assert "resumed from step" in (run_dir / "report.md").read_text()
    assert (run_dir / "adapted" / "lora" / "adapter").is_dir()


def test_resume_with_a_changed_config_is_refused(runs: dict[str, Any], task: Path, tmp_path: Path) -> None:
    run_dir = _copy(runs["killed"], tmp_path / "run")
    done = _tailor(
        "run", str(task), "methods.1.rank=4", "methods.1.learning_rate=0.001", "--resume", str(run_dir), cwd=task.parent
    )
    assert done.returncode == 2, done.stdout + done.stderr
    message = squash(done.stderr)
    assert "refusing to resume" in message
    assert "methods[1].rank: not set in the run, 4 now" in message
    assert "methods[1].learning_rate: 0.002 in the run, 0.001 now" in message
    assert "Traceback" not in done.stderr
    run, results, store = _store(run_dir)
    store.close()
    assert run["status"] == "running" and set(results) == {"prompt"}, "a refused resume leaves the run as it was"
    assert _checkpoint_step(run_dir / CHECKPOINT) == runs["killed_at"]

    # A new run into the folder is refused too: it would pick the checkpoint up unasked.
    again = _tailor("run", str(task), "--out", str(run_dir), cwd=task.parent)
    assert again.returncode == 2
    assert "already holds a run" in squash(again.stderr) and "--resume" in again.stderr


def test_checkpoint_from_another_model_is_refused(
    runs: dict[str, Any], task: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    run_dir = _copy(runs["killed"], tmp_path / "run")
    # Same task file, same configuration (model: "model"), but `model` is now a narrower Llama.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    other = tiny_lm_path(tmp_path_factory.getbasetemp() / "tiny-lms", arch="llama", hidden_size=32)
    (elsewhere / "model").symlink_to(other)
    done = _tailor("run", str(task), "--resume", str(run_dir), cwd=elsewhere)
    assert done.returncode == 2, done.stdout + done.stderr
    message = squash(done.stderr)
    assert "lora: refusing to resume from" in message and "different model than this run's" in message
    assert "Traceback" not in done.stderr
    run, results, store = _store(run_dir)
    store.close()
    assert run["status"] == "failed" and set(results) == {"prompt"}, "nothing is stored for the refused method"
    assert _checkpoint_step(run_dir / CHECKPOINT) == runs["killed_at"], "the checkpoint is left for the user"


def test_checkpoint_with_another_step_size_is_refused(tmp_path: Path) -> None:
    """A step is batch_size × gradient_accumulation × processes examples: a checkpoint whose steps covered another
    number (e.g. resumed with more processes) would mislabel every step after it."""
    import torch

    from tailor.errors import MethodError
    from tailor.tuning.loop import LoopSettings, train

    class Batch:
        def __init__(self, xs: list[float]):
            self.x, self.tokens = torch.tensor(xs)[:, None], len(xs)
            self.input_ids = self.x  # what the loop counts as positions computed

    def loss(model: Any, batch: Batch) -> tuple[Any, int]:
        return ((model(batch.x) - 2 * batch.x) ** 2).sum(), len(batch.x)

    model = torch.nn.Linear(1, 1)
    rows = [i / 16 for i in range(16)]

    def run(batch_size: int):
        settings = LoopSettings(max_steps=3, batch_size=batch_size, checkpoint_every=1)
        return train(model, rows, Batch, loss, lambda r: 1, settings, checkpoint_dir=tmp_path, fingerprint={"x": "1"})

    assert run(4).resumed_from_step is None
    assert run(4).resumed_from_step == 3, "the same settings pick the checkpoint up"
    with pytest.raises(MethodError, match=r"its steps cover 4 examples, this run's 8 \(batch_size 8") as info:
        run(8)
    assert info.value.key == "resume"
