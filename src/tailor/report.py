"""Reports made only from the run store: report.json (everything), report.md and report.html.

A report never reruns a model: it reads the stored predictions and recomputes the paired tests
between methods from them, so a report can be rebuilt at any time from the run folder alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .metrics import METRICS, compare_all
from .store import RunStore


def build_report(run_dir: Path) -> dict[str, Any]:
    store = RunStore.open_existing(run_dir)
    try:
        run = store.run()
        results = store.results()
        config = run["config"]
        metrics = list(config.get("metrics") or []) or _default_metrics(config["kind"])
        primary = metrics[0]
        labels = run["data"].get("labels")
        ok = [r for r in results if r["status"] == "ok"]
        rows = [_row(r, primary) for r in results]
        _mark_best_variants(rows)
        prepared, correct, ids = {}, {}, {}
        for r in ok:
            preds = store.predictions(r["method"], "test")
            ids[r["method"]] = [p["example_id"] for p in preds]
            gold = [p["target"] for p in preds]
            out = [p["label"] if config["kind"] == "classification" else p["output"] for p in preds]
            prepared[r["method"]] = METRICS[primary].prepare(gold, out, labels)
            if config["kind"] == "classification":
                correct[r["method"]] = np.array([g == o for g, o in zip(gold, out)])
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
        bad_rows = store.bad_rows()
        return {
            "task": run["task"],
            "kind": config["kind"],
            "status": run["status"],
            "started_at": run["started_at"],
            "finished_at": run["finished_at"],
            "resumed_at": run.get("resumed_at"),
            "seed": run["seed"],
            "git_rev": run["git_rev"],
            "task_file": run["task_file"],
            "model": config["model"]["name"],
            "primary_metric": primary,
            "metrics": metrics,
            "confidence": stats.get("confidence", 0.95),
            "data": run["data"],
            "bad_rows": {"count": len(bad_rows), "rows": bad_rows},
            "leaderboard": sorted(rows, key=lambda r: -(r["test"] or {}).get(primary, {}).get("value", -1.0)),
            "winner": _winner(rows, primary, pairs),
            "comparisons": [p.to_dict() for p in pairs],
            "versions": run["versions"],
            "config": config,
        }
    finally:
        store.close()


def _default_metrics(kind: str) -> list[str]:
    from .config import _DEFAULT_METRICS

    return list(_DEFAULT_METRICS[kind])


def _row(r: dict[str, Any], primary: str) -> dict[str, Any]:
    return {
        "method": r["method"],
        "family": r["family"],
        "variant": r["variant"],
        "registered": r["registered"],
        "route": r["route"],
        "status": r["status"],
        "error": r["error"],
        "options": r["options"],
        "n_train": r["n_train"],
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

    Variants are listed each; the one chosen on dev is repeated as ``FAMILY (best variant)``.
    """
    primary = report["primary_metric"]
    methods: dict[str, Any] = {}
    for row in report["leaderboard"]:
        if row["status"] != "ok":
            methods[row["method"]] = {"route": row["route"], "status": "failed", "error": row["error"]}
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


# ---------------------------------------------------------------------------------------------- rendering


def _fmt_ci(m: dict[str, float] | None) -> str:
    if not m:
        return "–"
    return f"{m['value']:.3f} [{m['ci_low']:.3f}, {m['ci_high']:.3f}]"


def _fmt_int(n: int | None) -> str:
    return "–" if n is None else f"{n:,}"


def _fmt_bytes(n: int | None) -> str:
    if n is None:
        return "–"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _fmt_p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _fmt_count(n: int | None) -> str:
    if n is None:
        return "–"
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= scale:
            return f"{n / scale:.1f}{suffix}"
    return str(n)


def _table_rows(report: dict[str, Any], compact: bool = False) -> list[dict[str, str]]:
    primary = report["primary_metric"]
    out = []
    for r in report["leaderboard"]:
        test, costs = r["test"] or {}, r["costs"]
        name = r["method"] + (" ★" if r["best_variant"] else "")
        out.append(
            {
                "method": name,
                "route": r["route"],
                "status": r["status"],
                "quality": _fmt_ci(test.get(primary)) if r["status"] == "ok" else f"failed: {r['error']}",
                "others": ", ".join(f"{m} {_fmt_ci(test.get(m))}" for m in report["metrics"][1:]) if test else "",
                "dev": f"{r['dev_primary']:.3f}" if r["dev_primary"] is not None else "–",
                "valid": f"{test['valid_rate']:.1%}" if "valid_rate" in test else "–",
                "adapt": f"{costs['adapt_seconds']:.1f} s" if "adapt_seconds" in costs else "–",
                "infer": f"{costs['predict_seconds_per_1k']:.2f} s" if "predict_seconds_per_1k" in costs else "–",
                "params": (_fmt_count if compact else _fmt_int)(costs.get("trainable_params")),
                "disk": _fmt_bytes(costs.get("disk_bytes")),
                "n_train": _fmt_int(r["n_train"]),
            }
        )
    return out


def render_markdown(report: dict[str, Any]) -> str:
    primary = report["primary_metric"]
    conf = f"{report['confidence']:.0%}"
    lines = [f"# tailor report: {report['task']}", ""]
    lines.append(
        f"Model `{report['model']}`, task kind {report['kind']}, seed {report['seed']}, "
        f"run {report['status']} ({report['started_at']} → {report['finished_at'] or '…'})."
    )
    d = report["data"]
    lines.append(
        f"Data: {d['rows_read']} rows read; train {d['train']}, dev {d['dev']}, test {d['test']}; "
        f"{d['skipped_rows']} rows skipped."
    )
    lines += ["", f"## Leaderboard (test {primary}, {conf} bootstrap CI)", ""]
    lines.append(
        f"| method | route | {primary} [{conf} CI] | dev | valid | adapt time | inference / 1k | "
        "trainable params | size on disk | n train |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    for t in _table_rows(report):
        lines.append(
            f"| {t['method']} | {t['route']} | {t['quality']} | {t['dev']} | {t['valid']} | {t['adapt']} | "
            f"{t['infer']} | {t['params']} | {t['disk']} | {t['n_train']} |"
        )
    if any(r["best_variant"] for r in report["leaderboard"]):
        lines += ["", "★ the variant of its family with the best dev score."]
    if len(report["metrics"]) > 1:
        lines += ["", "Other metrics:", ""]
        lines += [f"- {t['method']}: {t['others']}" for t in _table_rows(report) if t["others"]]
    training = [line for r in report["leaderboard"] if (line := _training_line(r))]
    if training:
        lines += ["", "Fine-tuning:", "", *training]
    w = report["winner"]
    if w:
        lines += [
            "",
            "## Winner",
            "",
            f"**{w['method']}** ({w['route']} route), chosen on {w['chosen_on']}: test {primary} {_fmt_ci(w['test'])}.",
        ]
        if w["significantly_better_than"]:
            lines.append(f"Significantly better than: {', '.join(w['significantly_better_than'])}.")
        if w["not_significantly_different"]:
            lines.append(f"Not significantly different from: {', '.join(w['not_significantly_different'])}.")
    if report["comparisons"]:
        lines += [
            "",
            f"## Paired comparisons (test {primary}; paired bootstrap, Holm-adjusted; McNemar on accuracy)",
            "",
            "| A | B | A − B [CI] | p (bootstrap) | p (Holm) | p (McNemar) | significant |",
            "|---|---|---|---|---|---|---|",
        ]
        for c in report["comparisons"]:
            pm = _fmt_p(c["p_mcnemar"]) if c["p_mcnemar"] is not None else "–"
            lines.append(
                f"| {c['a']} | {c['b']} | {c['diff']:+.3f} [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}] | "
                f"{_fmt_p(c['p_bootstrap'])} | {_fmt_p(c['p_adjusted'])} | {pm} | "
                f"{'yes' if c['significant'] else 'no'} |"
            )
    lines += ["", "## Data", ""]
    for note in d.get("notes", []):
        lines.append(f"- {note}")
    for o in d.get("overlaps", []):
        lines.append(
            f"- **{o['count']} {o['splits'][1]} examples also appear in {o['splits'][0]}** (same normalized text)"
        )
    if report["bad_rows"]["count"]:
        lines.append(f"- {report['bad_rows']['count']} rows skipped:")
        for reason, n in d.get("skipped_by_reason", {}).items():
            lines.append(f"  - {n} × {reason}")
    lines += [
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items() if v and k != "platform"),
        f"git: {report['git_rev'] or 'unknown'}",
        "",
    ]
    return "\n".join(lines)


def _training_line(row: dict[str, Any]) -> str | None:
    """One line on how a fine-tuning method trained (steps, best dev step, speed, audits), from its details."""
    details = row.get("details") or {}
    t = details.get("training")
    if not t:
        return None
    parts = [f"{t['steps']} of {t['total_steps']} steps" + (" (stopped early)" if t.get("stopped_early") else "")]
    if t.get("best_step") is not None:
        parts.append(f"best dev at step {t['best_step']} ({t['best_metric']:.3f})")
    parts.append(f"{t['tokens_per_s']:,.0f} tokens/s")
    if t.get("processes", 1) > 1:
        parts.append(f"{t['processes']} processes")
    if t.get("resumed_from_step"):
        parts.append(f"resumed from step {t['resumed_from_step']}")
    audits = details.get("audits") or {}
    skipped = {k: v.get("why", "") for k, v in audits.items() if isinstance(v, dict) and v.get("packed") is False}
    if audits:  # an audit that fails stops its method: the ones recorded passed
        parts.append("audits passed: " + (", ".join(k for k in audits if k not in skipped) or "none"))
    parts += [f"{k} not audited ({why})" for k, why in skipped.items()]
    return f"- {row['method']}: " + "; ".join(parts)


def render_html(report: dict[str, Any]) -> str:
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("tailor", "templates"), autoescape=select_autoescape(["html", "j2"]))
    return env.get_template("report.html.j2").render(
        report=report, rows=_table_rows(report), fmt_ci=_fmt_ci, fmt_p=_fmt_p
    )


def write_reports(run_dir: Path) -> dict[str, Path]:
    """Write report.json, report.md and report.html (and the summary, if the task asks) from the store."""
    report = build_report(run_dir)
    paths = {"json": run_dir / "report.json", "md": run_dir / "report.md", "html": run_dir / "report.html"}
    paths["json"].write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str))
    paths["md"].write_text(render_markdown(report))
    paths["html"].write_text(render_html(report))
    summary_to = report["config"].get("summary")
    if summary_to:
        target = Path(summary_to)
        if not target.is_absolute() and report.get("task_file"):
            target = Path(report["task_file"]).resolve().parent / target
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps({**summarize(report), "run_dir": str(run_dir.resolve())}, indent=2))
        paths["summary"] = target
    return paths
