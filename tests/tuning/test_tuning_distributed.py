"""Fine-tuning on two processes (`torchrun`, gloo on CPU) computes what one process computes with the same
global batch: a step covers batch_size × gradient_accumulation × processes examples, so one process with
gradient_accumulation 2 and two processes with 1 take the same steps; and rank 0 alone writes the run folder.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import dataset_rows, task_doc, write_jsonl

from tailor.runner.store import RunStore
from tailor.testing import tiny_lm_path

pytestmark = pytest.mark.integration

TORCHRUN = Path(sys.executable).with_name("torchrun")
# One thread per process: two processes on two cores (the steps' results don't depend on it, the time does).
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
STEPS = 60
LORA: dict[str, Any] = {
    "name": "lora",
    "dropout": 0.0,
    "max_steps": STEPS,
    "batch_size": 8,
    "gradient_accumulation": 2,  # one process; two processes run with 1
    "learning_rate": 3e-3,
    "max_length": 64,
    "eval_every": 10,
    "patience": None,
}


def _run(cmd: list[str], cwd: Path, timeout: float = 150) -> subprocess.CompletedProcess:
    """Run ``cmd``; if it overstays, stop it with SIGTERM, which torchrun passes on to its workers (they run in
    sessions of their own, out of reach of a signal to torchrun's process group), then SIGKILL."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        pytest.fail(f"{cmd[0]} took over {timeout} s:\n{out}\n{err}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _lora(run_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    store = RunStore.open_existing(run_dir)
    try:
        (result,) = store.results()
        return result, store.predictions("lora", "test"), store.run()
    finally:
        store.close()


def test_two_processes_match_one_with_the_same_global_batch(tmp_path: Path, tmp_path_factory) -> None:
    write_jsonl(tmp_path / "data.jsonl", dataset_rows())
    model = tiny_lm_path(tmp_path_factory.getbasetemp() / "tiny-lms", arch="llama")
    # A larger dev split than the default, so the dev metric moves from one evaluation to the next.
    doc = task_doc(model={"name": str(model)}, splits={"train": 0.45, "dev": 0.3, "test": 0.25}, methods=[LORA])
    task = tmp_path / "task.yaml"
    task.write_text(yaml.safe_dump(doc, sort_keys=False))

    one = _run([sys.executable, "-m", "tailor", "run", str(task), "--out", str(tmp_path / "one"), "-q"], tmp_path)
    assert one.returncode == 0, one.stdout + one.stderr
    two = _run(
        [
            str(TORCHRUN),
            "--standalone",  # a free port on localhost for the rendezvous
            "--nproc_per_node",
            "2",
            "-m",
            "tailor",
            "run",
            str(task),
            "methods.0.gradient_accumulation=1",
            "--out",
            str(tmp_path / "two"),
        ],
        tmp_path,
    )
    assert two.returncode == 0, two.stdout + two.stderr

    single, single_preds, _ = _lora(tmp_path / "one")
    multi, multi_preds, run = _lora(tmp_path / "two")
    assert run["status"] == "finished"
    assert multi["status"] == "ok", multi["error"]
    t1, t2 = single["details"]["training"], multi["details"]["training"]
    assert t1["processes"] == 1 and t2["processes"] == 2
    assert t1["steps"] == t2["steps"] == STEPS and t1["examples"] == t2["examples"]
    # The dev metric at every evaluation (rank 0 evaluates, the others receive it), and the step kept.
    assert [e["step"] for e in t2["evals"]] == [e["step"] for e in t1["evals"]] == list(range(10, STEPS + 1, 10))
    assert [e["metric"] for e in t2["evals"]] == pytest.approx([e["metric"] for e in t1["evals"]], abs=1e-9)
    assert len({e["metric"] for e in t1["evals"]}) > 2, "the dev metric should move, or the comparison is weak"
    # the training loss of every step, the two processes' halves summed in the gradient all-reduce
    assert len(t1["losses"]) == len(t2["losses"]) == STEPS
    assert t2["losses"] == pytest.approx(t1["losses"], rel=1e-4)
    assert t1["losses"][-1] < t1["losses"][0], "the loss should go down"
    assert t2["best_step"] == t1["best_step"]
    # the real tokens trained, every process's summed exactly, and so the training FLOPs
    assert t2["tokens"] == t1["tokens"] and t2["flops"] == t1["flops"] > 0
    # Test scores of every example, and the metrics made of them.
    assert [p["example_id"] for p in multi_preds] == [p["example_id"] for p in single_preds]
    assert [p["label"] for p in multi_preds] == [p["label"] for p in single_preds]
    for p, q in zip(multi_preds, single_preds):
        for label, score in q["scores"].items():
            assert p["scores"][label] == pytest.approx(score, abs=1e-4), (p["example_id"], label)
    for metric in ("accuracy", "macro_f1"):
        assert multi["test"][metric]["value"] == pytest.approx(single["test"][metric]["value"], abs=1e-4)

    # Rank 0 alone reported and wrote: one leaderboard on the output, one adapted model, reports.
    assert two.stdout.count("winner (chosen on dev)") == 1, two.stdout
    assert two.stderr.count("lora (finetune") == 1, "the other process's progress is quiet"
    assert (tmp_path / "two" / "adapted" / "lora" / "adapter").is_dir()
    assert (tmp_path / "two" / "report.md").is_file()
    assert "2 processes" in (tmp_path / "two" / "report.md").read_text()
    assert not (tmp_path / "two" / "work" / "lora" / "checkpoint").exists()
