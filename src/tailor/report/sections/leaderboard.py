"""The leaderboard: every trial with its test quality and interval, dev score, costs and the data it used, best
first; the best variant of each family starred; served models' money and cache, fine-tuning's steps and audits.

One display row per trial (:func:`table_rows`) serves report.md, report.html and the console alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...formats import (
    MISSING,
    ROUTE_NAMES,
    fmt_bytes,
    fmt_ci,
    fmt_count,
    fmt_flops,
    fmt_int,
    fmt_money,
    fmt_seconds,
    route_title,
)
from ..records import Records
from .overview import short_model


@dataclass
class Row:
    """One trial on the leaderboard: its record (``trial`` its name, ``method`` the registered method it ran) with
    its primary dev score and, within a family of variants, whether it is the one with the best dev score."""

    trial: str
    family: str
    variant: str | None
    method: str
    route: str
    status: str
    error: str | None
    options: dict[str, Any]
    n_train: int | None
    model: str
    model_params: int | None
    train_size: int | None
    size: str | None
    seed: int
    usage: dict[str, Any] | None
    dev: dict[str, Any] | None
    test: dict[str, Any] | None
    costs: dict[str, Any]
    adapted_dir: str | None
    details: dict[str, Any] | None
    dev_primary: float | None
    best_variant: bool | None = None

    def quality(self, metric: str) -> float | None:
        """The test value of ``metric`` (None: not scored)."""
        return ((self.test or {}).get(metric) or {}).get("value")

    def to_json(self) -> dict[str, Any]:
        """The row as report.json keeps it: its keys are those of before the store had a ``trial`` column (the
        benchmarks read them), so the trial's name is ``method`` and the registered method ``registered``."""
        return {
            "method": self.trial,
            "family": self.family,
            "variant": self.variant,
            "registered": self.method,
            "route": self.route,
            "status": self.status,
            "error": self.error,
            "options": self.options,
            "n_train": self.n_train,
            "model": self.model,
            "model_params": self.model_params,
            "train_size": self.train_size,
            "size": self.size,
            "seed": self.seed,
            "usage": self.usage,
            "dev": self.dev,
            "test": self.test,
            "costs": self.costs,
            "adapted_dir": self.adapted_dir,
            "details": self.details,  # what the method reports about itself (fine-tuning: data, audits, training)
            "dev_primary": self.dev_primary,
            "best_variant": self.best_variant,
        }


def row(trial: dict[str, Any], primary: str) -> Row:
    """A trial's record as a leaderboard row."""
    return Row(
        trial=trial["trial"],
        family=trial["family"],
        variant=trial["variant"],
        method=trial["method"],
        route=trial["route"],
        status=trial["status"],
        error=trial["error"],
        options=trial["options"],
        n_train=trial["n_train"],
        model=trial["model"],
        model_params=trial["model_params"],
        train_size=trial["train_size"],
        size=trial.get("size"),
        seed=trial["seed"],
        usage=trial["usage"],
        dev=trial["dev"],
        test=dict(trial["test"]) if trial["test"] else None,
        costs=trial["costs"] or {},
        adapted_dir=trial["adapted_dir"],
        details=trial.get("details"),
        dev_primary=(trial["dev"] or {}).get(primary),
    )


def build_leaderboard(records: Records, primary: str) -> list[Row]:
    """Every trial, best test ``primary`` first (unscored ones last, in the run's order), variants marked."""
    rows = [row(t, primary) for t in records.trials]
    mark_best_variants(rows)
    return sorted(rows, key=lambda r: -(r.quality(primary) if r.quality(primary) is not None else -1.0))


def mark_best_variants(rows: list[Row]) -> None:
    """Within a family of variants, mark the one with the best dev score (the one a user should keep)."""
    families: dict[str, list[Row]] = {}
    for r in rows:
        if r.status == "ok" and r.variant:
            families.setdefault(r.family, []).append(r)
    for members in families.values():
        if all(m.dev_primary is not None for m in members):
            best = max(members, key=lambda m: m.dev_primary)
            for m in members:
                m.best_variant = m is best


def table_rows(rows: list[Row], metrics: list[str], compact: bool = False) -> list[dict[str, str]]:
    """The leaderboard as display strings, one dict per trial (markdown, HTML and the console share it); ``compact``
    writes counts short, for the console."""
    primary = metrics[0]
    out = []
    for r in rows:
        test, costs = r.test or {}, r.costs
        per_1k = (r.usage or {}).get("test_per_1k") or {}
        out.append(
            {
                "method": r.trial + (" ★" if r.best_variant else ""),
                "route": r.route,
                "status": r.status,
                "quality": _quality(r, test.get(primary)),
                "others": ", ".join(f"{m} {fmt_ci(test.get(m))}" for m in metrics[1:]) if test else "",
                "dev": f"{r.dev_primary:.3f}" if r.dev_primary is not None else MISSING,
                "valid": f"{test['valid_rate']:.1%}" if "valid_rate" in test else MISSING,
                "adapt": fmt_seconds(costs.get("adapt_seconds")),
                "infer": fmt_seconds(costs.get("predict_seconds_per_1k"), 2),
                "params": (fmt_count if compact else fmt_int)(costs.get("trainable_params")),
                "disk": fmt_bytes(costs.get("disk_bytes")),
                "n_train": fmt_int(r.n_train),
                "model": short_model(r.model or "?") + (f" ({fmt_count(r.model_params)})" if r.model_params else ""),
                "tokens_1k": fmt_count(round(per_1k["input_tokens"] + per_1k["output_tokens"])) if per_1k else MISSING,
                "flops_1k": fmt_flops(per_1k.get("flops")),
                "adapt_flops": fmt_flops(costs.get("adapt_flops")),
            }
        )
    return out


def _quality(r: Row, primary: dict[str, Any] | None) -> str:
    """The primary metric with its interval; an incomplete trial's says on how many examples, a failed one why."""
    if r.status == "ok":
        return fmt_ci(primary)
    if r.status == "incomplete" and primary:
        return f"{fmt_ci(primary)} (incomplete: {r.error})"
    return f"failed: {r.error}"


def route_groups(rows: list[Row], metrics: list[str], winner: str | None) -> list[dict[str, Any]]:
    """The leaderboard by route (prompt, then fine-tune, then any other): each group's finished trials by test
    quality, best first (``best``), then incomplete ones, failed ones last. Rows are :func:`table_rows`' with the
    trial's ``name``, ``best`` and ``winner`` added."""
    primary = metrics[0]
    groups: dict[str, list[tuple[Row, dict[str, str]]]] = {}
    for r, shown in zip(rows, table_rows(rows, metrics)):
        groups.setdefault(r.route, []).append((r, shown))

    def rank(item: tuple[Row, dict[str, str]]) -> tuple[int, float]:
        value = item[0].quality(primary)
        return {"ok": 0, "incomplete": 1}.get(item[0].status, 2), -(value if value is not None else -1.0)

    known = list(ROUTE_NAMES)
    out = []
    for route in sorted(groups, key=lambda r: (known.index(r) if r in known else len(known), r)):
        members = sorted(groups[route], key=rank)
        shown_rows = [
            {**shown, "name": r.trial, "best": i == 0 and r.status == "ok", "winner": r.trial == winner}
            for i, (r, shown) in enumerate(members)
        ]
        out.append({"route": route, "title": route_title(route), "rows": shown_rows})
    return out


def served_lines(rows: list[Row]) -> list[str]:
    """Per trial on a served model: money per 1,000 test queries and in all, calls answered from the response
    cache, the classification path its server allowed, and queries that failed."""
    out = []
    for r in rows:
        money = r.costs.get("money")
        endpoint = (r.details or {}).get("endpoint")
        test_usage = (r.usage or {}).get("test") or {}
        if not money and not endpoint:
            continue
        parts = []
        if money:
            cur = money["currency"]
            if money.get("test_per_1k") is not None:
                parts.append(f"{fmt_money(money['test_per_1k'], cur)} per 1,000 queries")
            parts.append(f"{fmt_money(money['total'], cur)} for this run (adapt, dev and test)")
        if test_usage.get("calls"):
            parts.append(f"{test_usage.get('cached_calls', 0)} of {test_usage['calls']} test calls from the cache")
        if endpoint and endpoint.get("mode"):
            parts.append(f"path: {endpoint['mode']}")
        n_failed = sum(((split or {}).get("n_failed") or 0) for split in (r.dev, r.test))
        if n_failed:
            parts.append(f"{n_failed} queries failed after every retry (not scored)")
        out.append(f"{r.trial}: " + "; ".join(parts))
    return out


def training_line(r: Row) -> str | None:
    """One line on how a fine-tuning trial trained (steps, best dev step, speed, audits), from its details."""
    details = r.details or {}
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
    return f"- {r.trial}: " + "; ".join(parts)


def markdown(rows: list[Row], metrics: list[str], confidence: float) -> list[str]:
    """The Leaderboard section of report.md: the table, what its columns count, the other metrics, served models'
    money and fine-tuning's training."""
    primary, conf = metrics[0], f"{confidence:.0%}"
    shown = table_rows(rows, metrics)
    lines = ["", f"## Leaderboard (test {primary}, {conf} bootstrap CI)", ""]
    lines.append(
        f"| method | route | model (params) | {primary} [{conf} CI] | dev | valid | adapt time | adapt FLOPs | "
        "inference / 1k | tokens / 1k | FLOPs / 1k | trainable params | size on disk | n train |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for t in shown:
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
    if any(r.best_variant for r in rows):
        lines += ["", "★ the variant of its family with the best dev score."]
    if len(metrics) > 1:
        lines += ["", "Other metrics:", "", *[f"- {t['method']}: {t['others']}" for t in shown if t["others"]]]
    served = served_lines(rows)
    if served:
        lines += ["", "Served models (money at the task file's prices; cached answers counted as if sent):", ""]
        lines += [f"- {line}" for line in served]
    training = [line for r in rows if (line := training_line(r))]
    if training:
        lines += ["", "Fine-tuning:", "", *training]
    return lines
