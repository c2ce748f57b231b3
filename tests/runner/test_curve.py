"""Learning curves end to end: nested draws, the plan of trials, the task-file and command-line mistakes, a real
curve run and its report, a curve killed mid-way and resumed, and the same numbers from 2 worker processes and from
a local Ray cluster as from one process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import dataset_rows, task_doc, write_jsonl

from tailor.backends.pool import ModelPool
from tailor.config.task import CurveSpec, parse_task
from tailor.errors import TaskFileError
from tailor.runner.plan import check_curve_sizes, plan_trials, sample_per_class, sample_size
from tailor.runner.store import RunStore
from tailor.types import Example, Split

TAILOR = [sys.executable, "-m", "tailor"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
METHODS = [
    {"name": "zero-shot", "templates": ["{{ text }}", "This is about: {{ text }}"]},
    {"name": "few-shot", "k": "all"},
    {"name": "head"},
]
CURVE = {"sizes": [0, 2, 4, 8], "seeds": 2}


def _split(n_per_class: dict[str, int]) -> Split:
    examples = [
        Example(f"{label}-{i}", {"text": f"{label} text {i}"}, label)
        for label, n in n_per_class.items()
        for i in range(n)
    ]
    return Split("train", tuple(examples))


def test_draws_are_nested_across_sizes_and_differ_across_seeds() -> None:
    train = _split({"a": 40, "b": 25, "c": 31})
    for seed in (0, 1, 7):
        ids = [{ex.id for ex in sample_per_class(train, n, seed)} for n in (1, 2, 4, 8, 16, 25)]
        assert all(small <= big for small, big in zip(ids, ids[1:])), seed
        assert [len(i) for i in ids] == [3, 6, 12, 24, 48, 75]
        flat = [{ex.id for ex in sample_size(train, n, seed)} for n in (5, 10, 50)]
        assert flat[0] <= flat[1] <= flat[2]
    assert {ex.id for ex in sample_per_class(train, 4, 0)} != {ex.id for ex in sample_per_class(train, 4, 1)}
    # fixed by the seed alone: the same in every process (workers redraw them)
    script = (
        "from tailor.runner.plan import sample_per_class; from tailor.types import Example, Split;"
        "t = Split('train', tuple(Example(f'{c}-{i}', {'text': 'x'}, c) for c in 'abc' for i in range(30)));"
        "print(sorted(e.id for e in sample_per_class(t, 5, 3)))"
    )
    other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=ENV, check=True)
    here = Split("train", tuple(Example(f"{c}-{i}", {"text": "x"}, c) for c in "abc" for i in range(30)))
    assert other.stdout.strip() == str(sorted(e.id for e in sample_per_class(here, 5, 3)))


def _plan(doc: dict[str, Any]) -> list:
    return plan_trials(parse_task(doc, "task.yaml"), "task.yaml", ModelPool())


def test_plan_runs_zero_shot_at_size_0_only_and_the_others_above_it() -> None:
    trials = _plan(task_doc(methods=METHODS, curve=CURVE))
    by_method: dict[str, set] = {}
    for t in trials:
        by_method.setdefault(t.family, set()).add((t.size, t.seed))
    assert by_method["zero-shot"] == {(0, 0), (0, 1)}
    assert by_method["few-shot"] == by_method["head"] == {(s, seed) for s in (2, 4, 8) for seed in (0, 1)}
    assert len(trials) == 2 * 2 + 2 * 3 * 2  # zero-shot's two wordings are variants
    assert "head@4:s1" in {t.name for t in trials} and "zero-shot/v2@0:s0" in {t.name for t in trials}


@pytest.mark.parametrize(
    ("curve", "says"),
    [
        ({"sizes": [0, 8, 4]}, "sizes must increase; they don't at 8 then 4"),
        ({"sizes": [0, "all", 8]}, "`all` can only be the last size"),
        ({"seeds": 1}, "at least 2 seeds"),
        ({"seeds": [3]}, "at least 2 seeds"),
        ({"seeds": [3, 3]}, "at least 2 seeds"),
    ],
)
def test_bad_curves_are_refused_naming_the_key(curve: dict, says: str) -> None:
    with pytest.raises(TaskFileError) as info:
        parse_task(task_doc(curve=curve), "task.yaml")
    assert "curve." in str(info.value) and says in str(info.value)


def test_methods_that_cannot_take_the_sizes_are_refused() -> None:
    with pytest.raises(TaskFileError) as info:
        _plan(task_doc(methods=METHODS, curve={"sizes": [2, 4]}))
    assert "methods[0].name" in str(info.value) and "takes only size 0" in str(info.value)
    with pytest.raises(TaskFileError) as info:
        _plan(task_doc(methods=[{"name": "head"}], curve={"sizes": [0]}))
    assert "needs training examples" in str(info.value)
    with pytest.raises(TaskFileError) as info:
        _plan(task_doc(methods=[{"name": "head", "train_per_class": 4}], curve=CURVE))
    assert "methods[0].train_per_class" in str(info.value) and "the curve sets" in str(info.value)


NARROW = {"sizes": [0, 2, 4, 8], "seeds": 3}


def test_a_method_curve_runs_that_method_at_its_own_sizes_and_seeds_only() -> None:
    methods = [
        {"name": "zero-shot", "curve": {"seeds": 2}},
        {"name": "few-shot", "k": "all"},
        {"name": "head", "curve": {"sizes": [2, 8], "seeds": [0, 2]}},
        {"name": "contrastive", "curve": {"sizes": [4, 8], "seeds": 2}},  # a count: the first 2 of the curve's
    ]
    by_method: dict[str, set] = {}
    for t in _plan(task_doc(methods=methods, curve=NARROW)):
        by_method.setdefault(t.family, set()).add((t.size, t.seed))
    assert by_method["zero-shot"] == {(0, 0), (0, 1)}
    assert by_method["few-shot"] == {(s, seed) for s in (2, 4, 8) for seed in (0, 1, 2)}
    assert by_method["head"] == {(2, 0), (2, 2), (8, 0), (8, 2)}
    assert by_method["contrastive"] == {(4, 0), (4, 1), (8, 0), (8, 1)}
    # seeds count from the task's seed, as the curve's own do
    shifted = _plan(task_doc(methods=[{"name": "head", "curve": {"seeds": 2}}], curve=NARROW, seed=5))
    assert {t.seed for t in shifted} == {5, 6}


@pytest.mark.parametrize(
    ("doc", "key", "says"),
    [
        (
            {"curve": NARROW, "m": {"sizes": [2, 16]}},
            "methods[0].curve.sizes",
            "16 is not one of curve.sizes (0, 2, 4, 8)",
        ),
        ({"curve": NARROW, "m": {"sizes": [16, 32]}}, "methods[0].curve.sizes", "16, 32 are not among curve.sizes"),
        (
            {"curve": NARROW, "m": {"seeds": 4}},
            "methods[0].curve.seeds",
            "4 seeds, but the task's curve has 3 (0, 1, 2)",
        ),
        ({"curve": NARROW, "m": {"seeds": [0, 7]}}, "methods[0].curve.seeds", "7 is not one of the task curve's seeds"),
        ({"curve": NARROW, "m": {"seeds": 1}}, "methods[0].curve.seeds", "at least 2 seeds"),
        ({"curve": NARROW, "m": {"sizes": [8, 2]}}, "methods[0].curve.sizes", "8 then 2"),
        ({"curve": NARROW, "m": {"size": [8]}}, "methods[0].curve.size", "unknown key"),
        ({"m": {"sizes": [8]}}, "methods[0].curve", "add a top-level `curve:`"),
    ],
)
def test_bad_method_curves_are_refused_naming_the_key(doc: dict, key: str, says: str) -> None:
    task = task_doc(
        methods=[{"name": "head", "curve": doc["m"]}], **({"curve": doc["curve"]} if "curve" in doc else {})
    )
    with pytest.raises(TaskFileError) as info:
        parse_task(task, "task.yaml")
    assert f"{key}:" in str(info.value) and says in str(info.value)


def test_method_curve_sizes_the_method_cannot_take_are_refused() -> None:
    with pytest.raises(TaskFileError) as info:
        _plan(task_doc(methods=[{"name": "head", "curve": {"sizes": [0, 4]}}], curve=NARROW))
    assert "methods[0].curve.sizes" in str(info.value) and "head needs training examples" in str(info.value)
    with pytest.raises(TaskFileError) as info:
        _plan(task_doc(methods=[{"name": "zero-shot", "curve": {"sizes": [4]}}], curve=NARROW))
    assert "methods[0].curve.sizes" in str(info.value) and "takes only size 0" in str(info.value)
    # `tailor curve --sizes/--seeds` replaces the task's curve after the file was read: the planner checks again
    spec = parse_task(task_doc(methods=[{"name": "head", "curve": {"sizes": [8], "seeds": 3}}], curve=NARROW), "t")
    for curve, key in ((CurveSpec(sizes=[0, 2, 4], seeds=3), "sizes"), (CurveSpec(sizes=[0, 8], seeds=2), "seeds")):
        with pytest.raises(TaskFileError) as info:
            plan_trials(spec.model_copy(update={"curve": curve}), "task.yaml", ModelPool())
        assert f"methods[0].curve.{key}" in str(info.value)


def test_sizes_beyond_the_training_data_name_the_largest_available() -> None:
    spec = parse_task(task_doc(curve={"sizes": [0, 8, 30, 64, "all"]}), "task.yaml")
    with pytest.raises(TaskFileError) as info:
        check_curve_sizes(spec, _split({"a": 40, "b": 25}), "task.yaml")
    message = str(info.value)
    assert "curve.sizes" in message and "30, 64 exceed the training data" in message
    assert "largest size available is 25" in message and "'b'" in message
    check_curve_sizes(spec.model_copy(update={"curve": CurveSpec(sizes=[0, 8, 25])}), _split({"a": 40, "b": 25}), "t")


@pytest.fixture(scope="module")
def curve_task(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("curve")
    write_jsonl(where / "data.jsonl", dataset_rows())
    task = where / "task.yaml"
    doc = task_doc(methods=METHODS, curve=CURVE, costs={"cpu_hour": 0.1})
    task.write_text(yaml.safe_dump(doc, sort_keys=False))
    return task


def _tailor(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([*TAILOR, *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)


def _numbers(run_dir: Path) -> dict[str, Any]:
    """What must not depend on how the trials were run: each trial's status, metrics and test predictions."""
    store = RunStore.open_existing(run_dir)
    try:
        out = {}
        for r in store.results():
            preds = store.predictions(r["trial"], "test")
            out[r["trial"]] = {
                "status": r["status"],
                "size": r["size"],
                "seed": r["seed"],
                "train_size": r["train_size"],
                "test": {k: v for k, v in (r["test"] or {}).items() if isinstance(v, dict)},
                "predictions": [(p["example_id"], p["label"]) for p in preds],
            }
        return out
    finally:
        store.close()


@pytest.fixture(scope="module")
def one_worker(curve_task: Path) -> Path:
    run_dir = curve_task.parent / "one"
    done = _tailor(["curve", str(curve_task), "--out", str(run_dir), "--quiet"], curve_task.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    return run_dir


@pytest.mark.slow
def test_a_curve_run_reports_its_curve(one_worker: Path) -> None:
    numbers = _numbers(one_worker)
    assert len(numbers) == 16 and all(t["status"] == "ok" for t in numbers.values())
    # nested draws, the same for every method: head and few-shot at one size and seed trained on as many examples
    assert numbers["head@4:s0"]["train_size"] == numbers["few-shot@4:s0"]["train_size"] == 12
    report = json.loads((one_worker / "report.json").read_text())
    curve = report["curve"]
    assert curve["sizes"] == ["0", "2", "4", "8"] and curve["seeds"] == [0, 1] and curve["unit"] == "per class"
    head = curve["methods"]["head"]["points"]
    assert set(head) == {"2", "4", "8"} and head["8"]["n_seeds"] == 2
    values = [numbers[f"head@8:s{s}"]["test"]["accuracy"]["value"] for s in (0, 1)]
    assert head["8"]["mean"] == pytest.approx(sum(values) / 2)
    assert curve["crossover"] is not None and curve["data_advantage"] is not None
    assert curve["verdict"] and any("overtakes" in v or "stays ahead" in v for v in curve["verdict"])
    # paired tests compare each method at its largest size and first seed, not 16 trials with each other
    assert set(report["compared"]) == {"zero-shot/v1@0:s0", "zero-shot/v2@0:s0", "few-shot@8:s0", "head@8:s0"}
    assert report["costs"]["trials"]["head@8:s0"]["adapt"]["money"] is not None
    summary = report["curve"]["methods"]
    assert set(summary) == {"zero-shot/v1", "zero-shot/v2", "few-shot", "head"}
    md = (one_worker / "report.md").read_text()
    assert "n*" in md or "overtakes" in md or "stays ahead" in md


@pytest.fixture(scope="module")
def narrow_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A curve whose head runs only at 4 and 8 per class and the first 2 of the curve's 3 seeds (its own `curve:`)."""
    where = tmp_path_factory.mktemp("narrow")
    write_jsonl(where / "data.jsonl", dataset_rows())
    methods = [
        {"name": "zero-shot"},
        {"name": "few-shot", "k": "all"},
        {"name": "head", "curve": {"sizes": [4, 8], "seeds": 2}},
    ]
    task = where / "task.yaml"
    task.write_text(yaml.safe_dump(task_doc(methods=methods, curve=NARROW, costs={"cpu_hour": 0.1}), sort_keys=False))
    done = _tailor(["curve", str(task), "--out", str(where / "run"), "--quiet"], where)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 seeds (fewer for head: 2)" in done.stdout
    return where / "run"


@pytest.mark.slow
def test_a_curve_with_a_method_curve_reports_each_method_at_its_own_points(narrow_run: Path) -> None:
    from tailor.report.build import build
    from tailor.report.summary import summarize_curve

    numbers = _numbers(narrow_run)
    assert len(numbers) == 3 + 3 * 3 + 2 * 2 and all(t["status"] == "ok" for t in numbers.values())
    assert {n for n in numbers if n.startswith("head")} == {"head@4:s0", "head@4:s1", "head@8:s0", "head@8:s1"}
    # the same draw for every method at a size and seed, whatever points each method runs
    assert numbers["head@8:s1"]["train_size"] == numbers["few-shot@8:s1"]["train_size"] == 24
    report = json.loads((narrow_run / "report.json").read_text())
    curve = report["curve"]
    assert curve["seeds"] == [0, 1, 2]
    head, few = curve["methods"]["head"]["points"], curve["methods"]["few-shot"]["points"]
    assert set(head) == {"4", "8"} and head["8"]["n_seeds"] == 2 and head["8"]["seeds"] == [0, 1]
    assert set(few) == {"2", "4", "8"} and few["8"]["n_seeds"] == 3
    # statistics that pair seeds across the routes use the seeds both ran, and say so
    finetune = curve["routes"]["finetune"]
    assert list(finetune) == ["4", "8"] and finetune["8"]["compared_seeds"] == [0, 1]
    assert curve["crossover"]["seeds"] == 2 and curve["crossover"]["seed_list"] == [0, 1]
    assert curve["data_advantage"]["seeds"] == 2
    assert any("the crossover pairs seeds across the routes" in n and "head@8 (2)" in n for n in curve["notes"])
    prompt = curve["routes"]["prompt"]
    for entry in curve["break_even"]:
        f, p = finetune[entry["size"]]["by_seed"], prompt[entry["size"]]["by_seed"]
        paired = sum(f[s] - p[s] for s in ("0", "1")) / 2
        assert entry["quality_seeds"] == 2 and entry["quality_difference"] == pytest.approx(paired)
    assert curve["break_even"], "break-even at the sizes both routes reach"
    summary = summarize_curve(build(narrow_run))
    assert summary["methods"]["head"] == {
        size: {"mean": head[size]["mean"], "std": head[size]["std"], "n_seeds": 2} for size in ("4", "8")
    }
    assert summary["methods"]["few-shot"]["2"]["n_seeds"] == 3 and summary["crossover"]["seeds"] == 2
    html = (narrow_run / "report.html").read_text()
    assert "over 3 seeds (fewer for head: 2)" in html and 'id="plot-curve"' in html
    md = (narrow_run / "report.md").read_text()
    head_row = next(line for line in md.splitlines() if line.startswith("| head |"))
    assert head_row.count("(2)") == 2 and "| – |" in head_row  # no cell at 2, where head did not run


@pytest.mark.integration
def test_curve_command_line_mistakes_are_clear(curve_task: Path, tmp_path: Path) -> None:
    bad = _tailor(["curve", str(curve_task), "--sizes", "0,8,4", "--out", str(tmp_path / "x")], tmp_path)
    assert bad.returncode == 2 and "--sizes" in bad.stderr and "8 then 4" in bad.stderr
    bad = _tailor(["curve", str(curve_task), "--sizes", "0,2,500", "--out", str(tmp_path / "y")], tmp_path)
    assert bad.returncode == 2 and "500 exceed the training data" in bad.stderr
    assert "largest size available" in bad.stderr
    bad = _tailor(["curve", str(curve_task), "--seeds", "1", "--out", str(tmp_path / "z")], tmp_path)
    assert bad.returncode == 2 and "--seeds" in bad.stderr
    assert not any((tmp_path / d).exists() for d in ("x", "y", "z"))  # nothing started


@pytest.mark.integration
def test_a_killed_curve_resumes_without_redoing_finished_trials(curve_task: Path, one_worker: Path, tmp_path):
    run_dir = tmp_path / "killed"
    proc = subprocess.Popen(
        [*TAILOR, "curve", str(curve_task), "--out", str(run_dir), "--quiet"],
        cwd=tmp_path,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    kept: dict[str, str] = {}
    while time.monotonic() < deadline and proc.poll() is None:
        kept = _stored(run_dir)
        if len(kept) >= 5:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the curve finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    kept = _stored(run_dir)
    assert 5 <= len(kept) < 16
    done = _tailor(["curve", str(curve_task), "--resume", str(run_dir), "--quiet"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    after = _stored(run_dir)
    assert {name: after[name] for name in kept} == kept  # the finished trials were kept, not run again
    assert _numbers(run_dir) == _numbers(one_worker)


def _stored(run_dir: Path) -> dict[str, str]:
    """Each stored trial's name and the time it was written (a rerun trial is written again)."""
    path = run_dir / "run.sqlite"
    if not path.exists():
        return {}
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            rows = db.execute("SELECT trial, created_at || '/' || rowid FROM trial WHERE status = 'ok'").fetchall()
        finally:
            db.close()
    except sqlite3.OperationalError:  # the store's tables are being made
        return {}
    return dict(rows)


@pytest.mark.integration
def test_two_workers_give_the_numbers_of_one(curve_task: Path, one_worker: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "two"
    done = _tailor(["curve", str(curve_task), "--out", str(run_dir), "--workers", "2", "--quiet"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert _numbers(run_dir) == _numbers(one_worker)


@pytest.mark.integration
def test_ray_missing_cluster_is_a_clear_error_and_nothing_starts(curve_task: Path, tmp_path: Path) -> None:
    bad = _tailor(["curve", str(curve_task), "--out", str(tmp_path / "r"), "--ray", "127.0.0.1:1"], tmp_path, 120)
    assert bad.returncode == 2 and "--ray 127.0.0.1:1" in bad.stderr and "ray start --head" in bad.stderr
    assert "Traceback" not in bad.stderr and not (tmp_path / "r").exists()


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory):
    ray = shutil.which("ray", path=str(Path(sys.executable).parent))
    assert ray, "Ray is part of the test extra: pip install -e '.[test]'"
    temp = tmp_path_factory.mktemp("ray")
    env = {**ENV, "RAY_USAGE_STATS_ENABLED": "0"}
    started = subprocess.run(
        [ray, "start", "--head", "--num-cpus", "2", "--include-dashboard", "false", "--temp-dir", str(temp)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        yield env
    finally:
        subprocess.run([ray, "stop", "--force"], env=env, capture_output=True, timeout=120)


@pytest.mark.integration
def test_a_local_ray_cluster_gives_the_numbers_of_one_worker(curve_task, one_worker, ray_cluster, tmp_path) -> None:
    run_dir = tmp_path / "ray"
    done = subprocess.run(
        [*TAILOR, "curve", str(curve_task), "--out", str(run_dir), "--ray", "auto", "--quiet"],
        cwd=tmp_path,
        env=ray_cluster,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert _numbers(run_dir) == _numbers(one_worker)


def test_ray_not_installed_is_a_clear_error() -> None:
    script = (
        "import sys; sys.modules['ray'] = None\n"
        "from tailor.runner.parallel.workers import connect_ray\n"
        "from tailor.errors import TailorError\n"
        "try:\n    connect_ray('auto')\nexcept TailorError as e:\n    print(e)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=ENV, timeout=60)
    assert "--ray needs Ray, which is not installed" in done.stdout, done.stdout + done.stderr


@pytest.mark.integration
def test_resume_of_a_run_killed_before_it_was_recorded_starts_it_again(curve_task: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "empty"
    run_dir.mkdir()
    RunStore(run_dir).close()  # the store's tables made, the run not yet recorded: what a kill there leaves
    done = _tailor(["run", str(curve_task), "--resume", str(run_dir), "--quiet", "curve.sizes=[0,2]"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert RunStore.open_existing(run_dir).run()["status"] == "finished"
