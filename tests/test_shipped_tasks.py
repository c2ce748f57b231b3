"""Every task file shipped with tailor validates, names only registered methods with valid options,
and (where its data ships too) passes every method's check. The full quickstart run is `slow`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tailor.backends.models import DEFAULT_ENCODER_NAMES
from tailor.backends.pool import ModelPool
from tailor.config.task import load_task
from tailor.data.load import load_task_data
from tailor.methods import METHODS
from tailor.progress import NULL_PROGRESS
from tailor.runner.plan import plan_trials, prepare_trials, task_info

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted([*ROOT.glob("examples/*/*.yaml"), *ROOT.glob("benchmarks/*.yaml"), *ROOT.glob("benchmarks/*/*.yaml")])
QUICKSTART = ROOT / "examples" / "quickstart" / "task.yaml"


def test_there_are_shipped_task_files() -> None:
    assert QUICKSTART in SHIPPED and len(SHIPPED) >= 2


class _Unbuilt(ModelPool):
    """Benchmark and example files for generative models name tiny local LMs that may not be built yet: plan them
    as causal (the default encoder as an encoder) without reading their folders."""

    def kind(self, spec):
        return "encoder" if spec.model_dump()["name"] in DEFAULT_ENCODER_NAMES else "causal"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_task_file_is_valid(path: Path) -> None:
    spec, _ = load_task(path)
    trials = plan_trials(spec, str(path), _Unbuilt())
    assert {t.entry for t in trials} == set(range(len(spec.methods)))
    assert all(t.method in METHODS for t in trials)
    assert len({t.name for t in trials}) == len(trials), "display names are unique"


def test_quickstart_data_passes_every_method_check(tmp_path: Path) -> None:
    spec, base = load_task(QUICKSTART)
    data = load_task_data(spec, base, str(QUICKSTART))
    assert data.rows_read == 420 and not data.bad_rows
    assert len(data.labels) == 6
    pool = ModelPool()
    trials = plan_trials(spec, str(QUICKSTART), pool)
    prepared = prepare_trials(spec, trials, data, task_info(spec, data), tmp_path, NULL_PROGRESS, str(QUICKSTART), pool)
    assert [t.name for t, _, _ in prepared] == [t.name for t in trials]
    assert not pool.loaded(), "checking options loads no model"


@pytest.mark.slow
def test_quickstart_runs_end_to_end(tmp_path: Path) -> None:
    """The README's quickstart, every method at its shipped settings (several minutes on a laptop CPU)."""
    from typer.testing import CliRunner

    from tailor.cli.main import app

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
