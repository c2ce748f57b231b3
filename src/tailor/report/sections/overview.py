"""The report's overview: what was run (task, models, seed, versions), how it ended, the data it read and the rows it
skipped — the first lines of every report and its closing Data section."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...config.packaged import is_packaged
from ...config.packaged import parse as parse_packaged
from ...errors import TailorError
from ...formats import fmt_count
from ..records import Records


@dataclass(frozen=True)
class Overview:
    """The run's facts, as report.json gives them at its top level (see :meth:`to_json`).

    Attributes:
        status: finished, interrupted, failed, running, or stopped (a run killed with no chance to say so).
        resume_hint: For a run that stopped before its end, how to continue it.
        model: The task's model; ``models`` every model of the run with its parameters and the trials that used it.
        metrics: The metrics scored, the primary one first.
        data: The data's summary as the run recorded it (split sizes, labels, notes, overlaps, skipped rows).
        bad_rows: ``count`` and ``rows`` (split, location, reason) of the rows the data skipped.
        config: The run's resolved task spec.
    """

    task: str
    kind: str
    status: str
    resume_hint: str | None
    started_at: str
    finished_at: str | None
    resumed_at: str | None
    seed: int
    git_rev: str | None
    task_file: str | None
    model: str
    models: list[dict[str, Any]]
    metrics: list[str]
    confidence: float
    data: dict[str, Any]
    bad_rows: dict[str, Any]
    versions: dict[str, Any]
    config: dict[str, Any]

    @property
    def primary_metric(self) -> str:
        return self.metrics[0]

    def head_json(self) -> dict[str, Any]:
        """The keys report.json opens with."""
        return {
            "task": self.task,
            "kind": self.kind,
            "status": self.status,
            "resume_hint": self.resume_hint,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "resumed_at": self.resumed_at,
            "seed": self.seed,
            "git_rev": self.git_rev,
            "task_file": self.task_file,
            "model": self.model,
            "models": self.models,
            "primary_metric": self.primary_metric,
            "metrics": self.metrics,
            "confidence": self.confidence,
            "data": self.data,
            "bad_rows": self.bad_rows,
        }

    def tail_json(self) -> dict[str, Any]:
        """The keys report.json closes with."""
        return {"versions": self.versions, "config": self.config}


def build_overview(records: Records) -> Overview:
    run, config = records.run, records.config
    status = run["status"]
    if status == "running" and not records.live:  # killed (SIGKILL, power cut) with no chance to say so
        status = "stopped"
    return Overview(
        task=run["task"],
        kind=config["kind"],
        status=status,
        resume_hint=resume_hint(status, run, records.run_dir),
        started_at=run["started_at"],
        finished_at=run["finished_at"],
        resumed_at=run.get("resumed_at"),
        seed=run["seed"],
        git_rev=run["git_rev"],
        task_file=run["task_file"],
        model=config["model"]["name"],
        models=models_used(records.trials),
        metrics=records.metrics,
        confidence=(config.get("stats") or {}).get("confidence", 0.95),
        data=run["data"],
        bad_rows={"count": len(records.bad_rows), "rows": records.bad_rows},
        versions=run["versions"],
        config=config,
    )


def resume_hint(status: str, run: dict[str, Any], run_dir: Path) -> str | None:
    """For a run that stopped before its end, how to continue it."""
    if status not in ("stopped", "interrupted"):
        return None
    task = run.get("task_file") or "TASK"
    return (
        f"This run {'stopped' if status == 'stopped' else 'was interrupted'} before its end; continue it with "
        f"`tailor run {task} --resume {run_dir}` (with the overrides it was started with, if any)."
    )


def models_used(trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each distinct model of the run, with its parameter count and the trials that used it."""
    out: dict[str, dict[str, Any]] = {}
    for t in trials:
        entry = out.setdefault(t["model"], {"name": t["model"], "parameters": t["model_params"], "trials": []})
        entry["trials"].append(t["trial"])
    return list(out.values())


def short_model(name: str) -> str:
    """A model's name for a table: a local folder's or file's last part, a hub id as it is, a file in a pinned wheel
    as the file and its package (its SHA-256, 64 digits, stays in report.json and the task file)."""
    if is_packaged(name):
        try:
            spec = parse_packaged(name)
        except TailorError:
            return name
        return f"{Path(spec.member).name} (pypi:{spec.dist}=={spec.version})"
    path = Path(name)
    return path.name if path.is_absolute() or name.startswith((".", "~")) else name


def head_markdown(o: Overview) -> list[str]:
    """The report's first lines: its title, what ran and how it ended, and the data it read."""
    lines = [f"# tailor report: {o.task}", ""]
    models = ", ".join(
        f"`{short_model(m['name'])}` ({fmt_count(m['parameters']) if m['parameters'] else '? '} params)"
        for m in o.models or [{"name": o.model, "parameters": None}]
    )
    lines.append(
        f"Models {models}; task kind {o.kind}, seed {o.seed}, run {o.status} ({o.started_at} → {o.finished_at or '…'})."
    )
    if o.resume_hint:
        lines.append(f"**{o.resume_hint}**")
    d = o.data
    lines.append(
        f"Data: {d['rows_read']} rows read; train {d['train']}, dev {d['dev']}, test {d['test']}; "
        f"{d['skipped_rows']} rows skipped."
    )
    return lines


def data_markdown(o: Overview) -> list[str]:
    """The closing Data section: the data's notes, overlaps between splits, skipped rows by reason, and versions."""
    d = o.data
    lines = ["", "## Data", ""]
    lines += [f"- {note}" for note in d.get("notes", [])]
    for v in d.get("overlaps", []):
        lines.append(
            f"- **{v['count']} {v['splits'][1]} examples also appear in {v['splits'][0]}** (same normalized text)"
        )
    if o.bad_rows["count"]:
        lines.append(f"- {o.bad_rows['count']} rows skipped:")
        lines += [f"  - {n} × {reason}" for reason, n in d.get("skipped_by_reason", {}).items()]
    return [
        *lines,
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in o.versions.items() if v and k != "platform"),
        f"git: {o.git_rev or 'unknown'}",
        "",
    ]
