"""Reports as people read them: markdown, HTML and the rows of the CLI's leaderboard, from a report dict
(:func:`tailor.report.build.build_report`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..backends.local.packaged import is_packaged
from ..backends.local.packaged import parse as parse_packaged
from ..errors import TailorError
from .curve_text import ROUTE_TITLES, curve_markdown, curve_table, curve_text, fmt_queries
from .search_text import search_markdown, search_view


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


def _fmt_flops(x: float | None) -> str:
    if not x:
        return "–"
    for scale, suffix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= scale:
            return f"{x / scale:.1f} {suffix}"
    return f"{x:.0f}"


def table_rows(report: dict[str, Any], compact: bool = False) -> list[dict[str, str]]:
    """The leaderboard as display strings, one dict per trial (markdown, HTML and the CLI share it)."""
    primary = report["primary_metric"]
    out = []
    for r in report["leaderboard"]:
        test, costs = r["test"] or {}, r["costs"]
        per_1k = (r.get("usage") or {}).get("test_per_1k") or {}
        params = r.get("model_params")
        name = r["method"] + (" ★" if r["best_variant"] else "")
        out.append(
            {
                "method": name,
                "route": r["route"],
                "status": r["status"],
                "quality": _quality(r, test.get(primary)),
                "others": ", ".join(f"{m} {_fmt_ci(test.get(m))}" for m in report["metrics"][1:]) if test else "",
                "dev": f"{r['dev_primary']:.3f}" if r["dev_primary"] is not None else "–",
                "valid": f"{test['valid_rate']:.1%}" if "valid_rate" in test else "–",
                "adapt": f"{costs['adapt_seconds']:.1f} s" if "adapt_seconds" in costs else "–",
                "infer": f"{costs['predict_seconds_per_1k']:.2f} s" if "predict_seconds_per_1k" in costs else "–",
                "params": (_fmt_count if compact else _fmt_int)(costs.get("trainable_params")),
                "disk": _fmt_bytes(costs.get("disk_bytes")),
                "n_train": _fmt_int(r["n_train"]),
                "model": short_model(r.get("model") or "?") + (f" ({_fmt_count(params)})" if params else ""),
                "tokens_1k": _fmt_count(round(per_1k["input_tokens"] + per_1k["output_tokens"])) if per_1k else "–",
                "flops_1k": _fmt_flops(per_1k.get("flops")),
                "adapt_flops": _fmt_flops(costs.get("adapt_flops")),
            }
        )
    return out


def render_markdown(report: dict[str, Any]) -> str:
    primary = report["primary_metric"]
    conf = f"{report['confidence']:.0%}"
    lines = [f"# tailor report: {report['task']}", ""]
    models = ", ".join(
        f"`{short_model(m['name'])}` ({_fmt_count(m['parameters']) if m['parameters'] else '? '} params)"
        for m in report.get("models") or [{"name": report["model"], "parameters": None}]
    )
    lines.append(
        f"Models {models}; task kind {report['kind']}, seed {report['seed']}, "
        f"run {report['status']} ({report['started_at']} → {report['finished_at'] or '…'})."
    )
    if report.get("resume_hint"):
        lines.append(f"**{report['resume_hint']}**")
    d = report["data"]
    lines.append(
        f"Data: {d['rows_read']} rows read; train {d['train']}, dev {d['dev']}, test {d['test']}; "
        f"{d['skipped_rows']} rows skipped."
    )
    curve = report.get("curve")
    if curve and curve.get("verdict"):
        lines += ["", "## Verdict", "", *[f"- {v}" for v in curve["verdict"]]]
    if report.get("warnings"):
        lines += ["", "## Warnings", "", *[f"- **{w}**" for w in report["warnings"]]]
    lines += ["", f"## Leaderboard (test {primary}, {conf} bootstrap CI)", ""]
    lines.append(
        f"| method | route | model (params) | {primary} [{conf} CI] | dev | valid | adapt time | adapt FLOPs | "
        "inference / 1k | tokens / 1k | FLOPs / 1k | trainable params | size on disk | n train |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for t in table_rows(report):
        lines.append(
            f"| {t['method']} | {t['route']} | {t['model']} | {t['quality']} | {t['dev']} | {t['valid']} | "
            f"{t['adapt']} | {t['adapt_flops']} | {t['infer']} | {t['tokens_1k']} | {t['flops_1k']} | {t['params']} | "
            f"{t['disk']} | {t['n_train']} |"
        )
    lines += [
        "",
        "Per 1k: per 1,000 test queries. Tokens: read and written (prompts with their demonstrations, options "
        "scored, answers). FLOPs are estimates: 2·N per token through a forward pass, 6·N per trained token "
        "(N: the parameters a token meets).",
    ]
    if any(r["best_variant"] for r in report["leaderboard"]):
        lines += ["", "★ the variant of its family with the best dev score."]
    if len(report["metrics"]) > 1:
        lines += ["", "Other metrics:", ""]
        lines += [f"- {t['method']}: {t['others']}" for t in table_rows(report) if t["others"]]
    served = served_lines(report)
    if served:
        lines += ["", "Served models (money at the task file's prices; cached answers counted as if sent):", ""]
        lines += [f"- {line}" for line in served]
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
    lines += search_markdown(report.get("prompt_search") or [])
    if curve:
        lines += curve_markdown(curve)
    if report.get("costs"):
        from .costs_text import costs_markdown

        lines += ["", *costs_markdown(report["costs"], primary)]
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


def render_html(report: dict[str, Any], viewer: dict[str, Any] | None = None) -> str:
    """report.html: one self-contained page (inline CSS, JS and SVG figures; nothing fetched), with the per-example
    viewer when ``viewer`` (:func:`tailor.report.viewer.viewer_data`) is given."""
    from jinja2 import Environment, PackageLoader, select_autoescape
    from markupsafe import Markup

    from .plots import report_figures
    from .viewer import script_json

    env = Environment(loader=PackageLoader("tailor.report", "templates"), autoescape=select_autoescape(["html", "j2"]))
    env.filters.update(money=_fmt_money, flops=_fmt_flops, count=_fmt_count, queries=fmt_queries)
    figures = {k: Markup(v) if k in ("curve", "pareto", "break_even") else v for k, v in report_figures(report).items()}
    figures["search"] = [Markup(v) for v in figures["search"]]
    searches = [{**s, "view": search_view(s)} for s in report.get("prompt_search") or []]
    curve = report.get("curve")
    return env.get_template("report.html.j2").render(
        report=report,
        rows=table_rows(report),
        groups=route_groups(report),
        verdict=verdict_lines(report),
        curve=curve,
        curve_text=curve_text(curve) if curve else None,
        curve_table=curve_table(curve) if curve else None,
        routes={r["method"]: r["route"] for r in report["leaderboard"]},
        figures=figures,
        viewer_json=Markup(script_json(viewer)) if viewer and viewer.get("methods") else None,
        viewer_split=(viewer or {}).get("split", "test"),
        fmt_ci=_fmt_ci,
        fmt_p=_fmt_p,
        served=served_lines(report),
        searches=searches,
    )


COST_UNITS = ("money", "flops", "seconds")


def _test_value(row: dict[str, Any], primary: str) -> float | None:
    return ((row.get("test") or {}).get(primary) or {}).get("value")


def route_groups(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The leaderboard by route (prompt, then fine-tune, then any other): each group's finished trials by test
    quality, best first (``best``), then incomplete ones, failed ones last. Rows are :func:`table_rows`' with the
    trial's ``name``, ``best`` and ``winner`` added."""
    primary = report["primary_metric"]
    winner = (report.get("winner") or {}).get("method")
    groups: dict[str, list[tuple[dict[str, Any], dict[str, str]]]] = {}
    for row, shown in zip(report["leaderboard"], table_rows(report)):
        groups.setdefault(row["route"], []).append((row, shown))

    def rank(item: tuple[dict[str, Any], dict[str, str]]) -> tuple[int, float]:
        row = item[0]
        value = _test_value(row, primary)
        return {"ok": 0, "incomplete": 1}.get(row["status"], 2), -(value if value is not None else -1.0)

    order = sorted(groups, key=lambda r: (list(ROUTE_TITLES).index(r) if r in ROUTE_TITLES else len(ROUTE_TITLES), r))
    out = []
    for route in order:
        members = sorted(groups[route], key=rank)
        rows = [
            {
                **shown,
                "name": row["method"],
                "best": i == 0 and row["status"] == "ok",
                "winner": row["method"] == winner,
            }
            for i, (row, shown) in enumerate(members)
        ]
        out.append({"route": route, "title": ROUTE_TITLES.get(route, f"{route} route"), "rows": rows})
    return out


def verdict_lines(report: dict[str, Any]) -> list[str]:
    """The answer in a few sentences: a curve's verdict; else the winner and where the cheaper route changes."""
    curve = report.get("curve")
    if curve and curve.get("verdict"):
        return list(curve["verdict"])
    out = []
    w = report.get("winner")
    if w:
        route = ROUTE_TITLES.get(w["route"], w["route"])
        line = f"{w['method']} ({route}) is best, chosen on {w['chosen_on']}: test {report['primary_metric']} "
        line += _fmt_ci(w["test"])
        if w["not_significantly_different"]:
            line += f"; not significantly better than {', '.join(w['not_significantly_different'])}"
        elif w["significantly_better_than"]:
            line += f"; significantly better than {', '.join(w['significantly_better_than'])}"
        out.append(line + ".")
    entry = headline_break_even(report)
    if entry:
        out.append(f"{entry['prompt']} against {entry['finetune']}: {entry['sentence']}.")
    return out


def headline_break_even(report: dict[str, Any]) -> dict[str, Any] | None:
    """The break-even entry to tell first: the winner's pair with the best trial of the other route, in money when
    there is money, else FLOPs, else seconds."""
    entries = (report.get("costs") or {}).get("break_even") or []
    if not entries:
        return None
    winner = (report.get("winner") or {}).get("method")
    quality = {r["method"]: _test_value(r, report["primary_metric"]) or 0.0 for r in report["leaderboard"]}
    mine = [e for e in entries if winner in (e["prompt"], e["finetune"])] or entries

    def key(e: dict[str, Any]) -> tuple[int, float]:
        other = e["finetune"] if e["prompt"] == winner else e["prompt"]
        unit = COST_UNITS.index(e["unit"]) if e["unit"] in COST_UNITS else len(COST_UNITS)
        return unit, -quality.get(other, 0.0)

    return min(mine, key=key)


def _fmt_money(x: float | None, currency: str | None = None) -> str:
    if x is None:
        return "–"
    return f"{currency or ''} {x:.3g}".strip()


def _quality(row: dict[str, Any], primary: dict[str, Any] | None) -> str:
    """The primary metric with its interval; an incomplete trial's says on how many examples, a failed one why."""
    if row["status"] == "ok":
        return _fmt_ci(primary)
    if row["status"] == "incomplete" and primary:
        return f"{_fmt_ci(primary)} (incomplete: {row['error']})"
    return f"failed: {row['error']}"


def served_lines(report: dict[str, Any]) -> list[str]:
    """Per trial on a served model: money per 1,000 test queries and in all, calls answered from the response
    cache, the classification path its server allowed, and queries that failed."""
    out = []
    for r in report["leaderboard"]:
        money = (r.get("costs") or {}).get("money")
        endpoint = (r.get("details") or {}).get("endpoint")
        test_usage = (r.get("usage") or {}).get("test") or {}
        if not money and not endpoint:
            continue
        parts = []
        if money:
            cur = money["currency"]
            per_1k = money.get("test_per_1k")
            parts.append(f"{cur} {per_1k:.4f} per 1,000 queries" if per_1k is not None else "")
            parts.append(f"{cur} {money['total']:.4f} for this run (adapt, dev and test)")
        if test_usage.get("calls"):
            parts.append(f"{test_usage.get('cached_calls', 0)} of {test_usage['calls']} test calls from the cache")
        if endpoint and endpoint.get("mode"):
            parts.append(f"path: {endpoint['mode']}")
        n_failed = sum(((r.get(s) or {}).get("n_failed") or 0) for s in ("dev", "test"))
        if n_failed:
            parts.append(f"{n_failed} queries failed after every retry (not scored)")
        out.append(f"{r['method']}: " + "; ".join(p for p in parts if p))
    return out
