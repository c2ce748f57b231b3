"""Every task file shipped with tailor validates, names only registered methods with valid options,
and (where its data ships too) passes every method's check. The full quickstart run is `slow`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tailor.backends.models import DEFAULT_ENCODER_NAMES
from tailor.config import load_task
from tailor.contract import Context, TaskInfo
from tailor.data import load_task_data
from tailor.methods import METHODS
from tailor.run import plan_methods, sample_per_class

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted([*ROOT.glob("examples/*/*.yaml"), *ROOT.glob("benchmarks/*.yaml")])
QUICKSTART = ROOT / "examples" / "quickstart" / "task.yaml"


def test_there_are_shipped_task_files() -> None:
    assert QUICKSTART in SHIPPED and len(SHIPPED) >= 2


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_task_file_is_valid(path: Path) -> None:
    spec, _ = load_task(path)
    # Benchmark files for generative models name a tiny local LM that may not be built yet: plan them as causal.
    kind = "encoder" if spec.model.name in DEFAULT_ENCODER_NAMES else "causal"
    planned = plan_methods(spec, str(path), kind)
    assert len(planned) == len(spec.methods)
    assert all(p.registered in METHODS for p in planned)
    assert len({p.family for p in planned}) == len(planned), "display names are unique"


def test_quickstart_data_passes_every_method_check(tmp_path: Path) -> None:
    spec, base = load_task(QUICKSTART)
    data = load_task_data(spec, base, str(QUICKSTART))
    assert data.rows_read == 420 and not data.bad_rows
    assert len(data.labels) == 6
    task = TaskInfo(spec.name, spec.kind, tuple(data.labels), tuple(spec.fields.inputs), tuple(spec.metric_names))
    for plan in plan_methods(spec, str(QUICKSTART), "encoder"):
        ctx = Context(task=task, model=spec.model, seed=spec.seed, workdir=tmp_path)
        train = sample_per_class(data.train, plan.options.train_per_class, spec.seed)
        METHODS[plan.registered].check(plan.options, train, ctx)


@pytest.mark.slow
def test_quickstart_runs_end_to_end(tmp_path: Path) -> None:
    """The README's quickstart, every method at its shipped settings (several minutes on a laptop CPU)."""
    from typer.testing import CliRunner

    from tailor.cli import app

    run_dir = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", str(QUICKSTART), "--quiet", "--out", str(run_dir)])
    assert result.exit_code == 0, result.output
    report = json.loads((run_dir / "report.json").read_text())
    assert report["status"] == "finished"
    rows = report["leaderboard"]
    assert all(r["status"] == "ok" for r in rows), [(r["method"], r["error"]) for r in rows]
    assert {r["registered"] for r in rows} == {entry.name for entry in load_task(QUICKSTART)[0].methods}
    best = max(r["test"]["accuracy"]["value"] for r in rows)
    assert best >= 0.7, f"the best method reached only {best:.2f} accuracy on the quickstart"
