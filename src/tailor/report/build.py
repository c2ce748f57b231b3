"""Reports made only from the run store: report.json (everything), report.md and report.html.

Rendering (markdown, HTML, the CLI's table) lives in :mod:`tailor.report.render`.

A report never reruns a model: it reads the stored predictions and recomputes the paired tests
between methods from them, so a report can be rebuilt at any time from the run folder alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..costs.pricing import cost_view
from ..paths import repository_root, shared, shown_path
from ..runner.folders import run_is_live
from ..runner.store import RunStore
from ..stats.metrics import METRICS, compare_all, min_detectable_difference
from ..stats.outcomes import scored_value
from .curve import compared_trials, curve_section, model_prices, summarize_curve
from .render import render_html, render_markdown
from .search import search_section
from .viewer import viewer_data


def build_report(run_dir: Path) -> dict[str, Any]:
    """The report of the run in ``run_dir``, its paths shown relative to the task file's folder (see
    :func:`tailor.paths.shown_path`): a report is meant to be shared, the user's folders are not."""
    report = _full_report(run_dir)
    return shared(report, _task_folder(report.get("task_file"), run_dir))


def _task_folder(task_file: str | None, run_dir: Path) -> Path:
    """The folder the task file's relative paths start from; the run folder when the run had no task file."""
    return Path(task_file).resolve().parent if task_file else run_dir.resolve()


def _full_report(run_dir: Path) -> dict[str, Any]:
    store = RunStore.open_existing(run_dir)
    try:
        run = store.run()
        results = store.results()
        config = run["config"]
        metrics = list(config.get("metrics") or []) or _default_metrics(config["kind"])
        primary = metrics[0]
        labels = run["data"].get("labels")
        ok = [r for r in results if r["status"] == "ok"]
        kind = config["kind"]
        rows = [_row(r, primary) for r in results]
        _mark_best_variants(rows)
        focus = compared_trials(rows, config)
        prepared, correct, ids = {}, {}, {}
        for r in (r for r in ok if r["trial"] in focus):
            preds = store.predictions(r["trial"], "test")
            ids[r["trial"]] = [p["example_id"] for p in preds]
            gold = [p["target"] for p in preds]
            out = [scored_value(kind, p["label"], p["output"]) for p in preds]
            prepared[r["trial"]] = METRICS[primary].prepare(gold, out, labels)
            if kind == "classification":
                correct[r["trial"]] = np.array([g == o for g, o in zip(gold, out)])
        if len({tuple(v) for v in ids.values()}) > 1:
            raise ValueError("methods were evaluated on different test examples; paired tests are impossible")
        stats = config.get("stats", {})
        pairs = (
            compare_all(
                prepared,
                correct or None,
                primary,
                stats.get("bootstrap", 1000),
                stats.get("confidence", 0.95),
                config.get("seed", 0),
            )
            if len(prepared) > 1
            else []
        )
        leaderboard = sorted(rows, key=lambda r: -(r["test"] or {}).get(primary, {}).get("value", -1.0))
        power = top_two_power(leaderboard, correct)
        compared = [r for r in rows if r["method"] in focus]
        costs = cost_view(
            [{**r, "trial": r["method"]} for r in compared], config.get("costs"), model_prices(config), primary
        )
        bad_rows = store.bad_rows()
        status = run["status"]
        if status == "running" and not run_is_live(run_dir):  # killed (SIGKILL, power cut) with no chance to say so
            status = "stopped"
        return {
            "task": run["task"],
            "kind": config["kind"],
            "status": status,
            "resume_hint": _resume_hint(status, run, run_dir),
            "started_at": run["started_at"],
            "finished_at": run["finished_at"],
            "resumed_at": run.get("resumed_at"),
            "seed": run["seed"],
            "git_rev": run["git_rev"],
            "task_file": run["task_file"],
            "model": config["model"]["name"],
            "models": _models(results),
            "primary_metric": primary,
            "metrics": metrics,
            "confidence": stats.get("confidence", 0.95),
            "data": run["data"],
            "bad_rows": {"count": len(bad_rows), "rows": bad_rows},
            "leaderboard": leaderboard,
            "winner": (winner := _winner(compared, primary, pairs)),
            "power": power,
            "warnings": data_warnings(run["data"], winner) + power_warnings(power),
            "comparisons": [p.to_dict() for p in pairs],
            "compared": sorted(focus),
            "costs": costs,
            "curve": curve_section(
                rows,
                config,
                primary,
                len(labels or []),
                config.get("seed", 0),
            )
            if config.get("curve")
            else None,
            "prompt_search": search_section(rows, primary, run_dir, labels, _sent(store, rows)),
            "versions": run["versions"],
            "config": config,
        }
    finally:
        store.close()


def _sent(store: RunStore, rows: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """For each trial that searched its prompt: its first dev example's id and the exact prompt sent for it."""
    out = {}
    for r in rows:
        if isinstance((r.get("details") or {}).get("search"), dict):
            first = next((p for p in store.predictions(r["method"], "dev") if p.get("prompt")), None)
            if first:
                out[r["method"]] = (first["example_id"], first["prompt"])
    return out


def _resume_hint(status: str, run: dict[str, Any], run_dir: Path) -> str | None:
    """For a run that stopped before its end, how to continue it."""
    if status not in ("stopped", "interrupted"):
        return None
    task = run.get("task_file") or "TASK"
    return (
        f"This run {'stopped' if status == 'stopped' else 'was interrupted'} before its end; continue it with "
        f"`tailor run {task} --resume {run_dir}` (with the overrides it was started with, if any)."
    )


def _default_metrics(kind: str) -> list[str]:
    from ..config.task import DEFAULT_METRICS

    return list(DEFAULT_METRICS[kind])


def _models(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each distinct model of the run, with its parameter count and the trials that used it."""
    out: dict[str, dict[str, Any]] = {}
    for r in results:
        entry = out.setdefault(r["model"], {"name": r["model"], "parameters": r["model_params"], "trials": []})
        entry["trials"].append(r["trial"])
    return list(out.values())


def _row(r: dict[str, Any], primary: str) -> dict[str, Any]:
    return {
        "method": r["trial"],
        "family": r["family"],
        "variant": r["variant"],
        "registered": r["method"],
        "route": r["route"],
        "status": r["status"],
        "error": r["error"],
        "options": r["options"],
        "n_train": r["n_train"],
        "model": r["model"],
        "model_params": r["model_params"],
        "train_size": r["train_size"],
        "size": r.get("size"),
        "seed": r["seed"],
        "usage": r["usage"],
        "dev": r["dev"],
        "test": {k: v for k, v in (r["test"] or {}).items()} if r["test"] else None,
        "costs": r["costs"] or {},
        "adapted_dir": r["adapted_dir"],
        "details": r.get("details"),  # what the method reports about itself (fine-tuning: data, audits, training)
        "dev_primary": (r["dev"] or {}).get(primary),
        "best_variant": None,
    }


def _mark_best_variants(rows: list[dict[str, Any]]) -> None:
    """Within a family of variants, mark the one with the best dev score (the one a user should keep)."""
    families: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row["status"] == "ok" and row["variant"]:
            families.setdefault(row["family"], []).append(row)
    for members in families.values():
        if all(m["dev_primary"] is not None for m in members):
            best = max(members, key=lambda m: m["dev_primary"])
            for m in members:
                m["best_variant"] = m is best


MIN_DEV = 30
"""Fewer dev examples than this make a choice on dev (of a variant, of the winner) a coin toss: warned about."""


def data_warnings(data: dict[str, Any], winner: dict[str, Any] | None) -> list[str]:
    """What the reader must know before trusting the leaderboard: test examples also in train, a winner chosen on
    too few dev examples (or on test)."""
    out = []
    for o in data.get("overlaps", []):
        if o["count"]:
            out.append(
                f"{o['count']} {o['splits'][1]} examples also appear in {o['splits'][0]} (same normalized text): "
                "their scores are optimistic; remove them from one split"
            )
    if winner and winner["chosen_on"] == "test":
        out.append("there is no dev split: the winner was chosen on the test split, so its score is optimistic")
    elif winner and 0 < data.get("dev", 0) < MIN_DEV:
        out.append(
            f"the winner was chosen on only {data['dev']} dev examples: the choice is noisy; give a dev split of "
            f"at least {MIN_DEV}"
        )
    return out


def top_two_power(leaderboard: list[dict[str, Any]], correct: dict[str, np.ndarray]) -> dict[str, Any] | None:
    """Classification: what the test set can tell apart between the two best methods on test — the smallest accuracy
    difference a paired test finds there with 80 % power at α = 0.05, given how often the two disagree."""
    top = [r["method"] for r in leaderboard if r["method"] in correct][:2]
    if len(top) < 2:
        return None
    a, b = correct[top[0]], correct[top[1]]
    discordance = float(np.mean(a != b))
    return {
        "methods": top,
        "n": len(a),
        "difference": float(abs(a.mean() - b.mean())),
        "discordance": discordance,
        "min_detectable_difference": min_detectable_difference(len(a), discordance),
        "power": 0.8,
        "alpha": 0.05,
    }


def power_warnings(power: dict[str, Any] | None) -> list[str]:
    """A warning when the two best methods are closer than the test set can tell apart."""
    if power is None or power["discordance"] == 0:
        return []
    (a, b), mdd, diff = power["methods"], power["min_detectable_difference"], power["difference"]
    if mdd is None:
        return [
            f"{a} and {b} disagree on too few of the {power['n']} test examples for any accuracy difference between "
            "them to be detected reliably: treat them as tied, or test on more examples"
        ]
    if diff >= mdd:
        return []
    return [
        f"{a} and {b} differ by {diff:.3f} accuracy on test, less than the {mdd:.3f} that {power['n']} test examples "
        f"detect with 80 % power (they disagree on {power['discordance']:.0%} of them): treat them as tied, or test "
        "on more examples"
    ]


def _winner(rows: list[dict[str, Any]], primary: str, pairs: list) -> dict[str, Any] | None:
    ok = [r for r in rows if r["status"] == "ok"]
    if not ok:
        return None
    by_dev = all(r["dev_primary"] is not None for r in ok)
    key = (lambda r: r["dev_primary"]) if by_dev else (lambda r: r["test"][primary]["value"])
    best = max(ok, key=key)
    beats, ties = [], []
    for p in pairs:
        if best["method"] not in (p.a, p.b):
            continue
        other = p.b if p.a == best["method"] else p.a
        better = (p.diff > 0) == (p.a == best["method"])
        (beats if p.significant and better else ties).append(other)
    return {
        "method": best["method"],
        "route": best["route"],
        "chosen_on": "dev" if by_dev else "test",
        "test": best["test"][primary],
        "significantly_better_than": beats,
        "not_significantly_different": ties,
    }


def summarize(report: dict[str, Any]) -> dict[str, Any]:
    """A compact, stable view of a report: per method its route, quality with CI, costs and data used.

    Variants are listed each; the one chosen on dev is repeated as ``FAMILY (best variant)``. A learning curve's
    summary is the curve's figures instead (:func:`tailor.report.curve.summarize_curve`).
    """
    if report.get("curve"):
        return summarize_curve(report)
    primary = report["primary_metric"]
    methods: dict[str, Any] = {}
    for row in report["leaderboard"]:
        if row["status"] != "ok":
            methods[row["method"]] = {"route": row["route"], "status": row["status"], "error": row["error"]}
            continue
        main = row["test"][primary]
        entry = {
            "route": row["route"],
            primary: main["value"],
            "ci_low": main["ci_low"],
            "ci_high": main["ci_high"],
            **{m: row["test"][m]["value"] for m in report["metrics"][1:] if m in row["test"]},
            f"dev_{primary}": row["dev_primary"],
            "valid_rate": row["test"].get("valid_rate"),
            "adapt_seconds": row["costs"]["adapt_seconds"],
            "predict_seconds_per_1k": row["costs"]["predict_seconds_per_1k"],
            "trainable_params": row["costs"]["trainable_params"],
            "disk_bytes": row["costs"]["disk_bytes"],
            "n_train": row["n_train"],
            "model": row["model"],
            "model_params": row["model_params"],
            "train_size": row["train_size"],
            "seed": row["seed"],
            "adapt_flops": row["costs"].get("adapt_flops"),
            "usage_per_1k_test": (row["usage"] or {}).get("test_per_1k"),
            "options": row["options"],
        }
        methods[row["method"]] = entry
        if row["best_variant"]:
            methods[f"{row['family']} (best variant)"] = {**entry, "variant": row["method"]}
    return {
        "task": report["task"],
        "model": report["model"],
        "primary_metric": primary,
        "scale": "0-1",
        "confidence": report["confidence"],
        "n_test": report["data"]["test"],
        "status": report["status"],
        "winner": report["winner"],
        "methods": methods,
        "versions": report["versions"],
        "git_rev": report["git_rev"],
    }


def _viewer(run_dir: Path, report: dict[str, Any]) -> dict[str, Any]:
    """The per-example viewer's data: every compared trial that finished, in leaderboard order."""
    compared = set(report.get("compared") or [])
    methods = [r["method"] for r in report["leaderboard"] if r["method"] in compared and r["status"] == "ok"]
    store = RunStore.open_existing(run_dir)
    try:
        return shared(viewer_data(store, methods), _task_folder(report.get("task_file"), run_dir))
    finally:
        store.close()


def write_reports(run_dir: Path) -> dict[str, Path]:
    """Write report.json, report.md and report.html (and the summary, if the task asks) from the store."""
    full = _full_report(run_dir)
    report = shared(full, _task_folder(full.get("task_file"), run_dir))
    paths = {"json": run_dir / "report.json", "md": run_dir / "report.md", "html": run_dir / "report.html"}
    paths["json"].write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str))
    paths["md"].write_text(render_markdown(report))
    paths["html"].write_text(render_html(report, _viewer(run_dir, full)))
    summary_to = full["config"].get("summary")  # as the task file gave it, to find where it goes
    if summary_to:
        target = Path(summary_to)
        if not target.is_absolute() and full.get("task_file"):
            target = Path(full["task_file"]).resolve().parent / target
        target.parent.mkdir(parents=True, exist_ok=True)
        repo = repository_root(target.parent)
        if repo is not None:  # committed with its repository (benchmarks/results/): paths relative to that
            summary = shared({**summarize(full), "run_dir": str(run_dir.resolve())}, repo)
        else:  # paths as the reports show them; the run folder relative to the summary itself
            run_at = shown_path(str(run_dir.resolve()), target.parent.resolve())
            summary = {**summarize(report), "run_dir": run_at}
        target.write_text(json.dumps(summary, indent=2))
        paths["summary"] = target
    return paths
