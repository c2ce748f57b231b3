"""A prompt search's section in words and tables, for report.md and report.html (see :mod:`.search` for what it
holds): the winner and its prompt in full, its scores on each part of dev and on test with the dev-vs-test gap, what
the search spent, when its best score rose, and the finalists."""

from __future__ import annotations

import re
from typing import Any

from ...formats import fmt_flops, fmt_gap, fmt_money, fmt_number, fmt_score
from .search import SearchSection

STOPPED = {
    "budget": "the budget ran out",
    "patience": "no better score on the whole search part for its patience's number of scoring trials",
    "exhausted": "every candidate on offer was scored",
}


def _plural(n: float | None, word: str) -> str:
    return f"{fmt_number(n)} {word}" + ("" if n == 1 else "s")


def _size(parts: dict[str, Any], key: str) -> str:
    n = parts.get(key)
    return f" ({n} examples)" if n else ""


def score_rows(section: dict[str, Any]) -> list[dict[str, str]]:
    """The winner's scores (what, value, note) — on the held-out part of dev that chose it, on the whole search
    part, on all of dev, on test — then the dev-vs-test gaps."""
    parts = section.get("parts") or {}
    gap = section.get("gap") or {}
    return [
        {
            "what": f"held-out part of dev{_size(parts, 'select')}",
            "value": fmt_score(section.get("select_score")),
            "note": "the finalists were scored here; the best won",
        },
        {
            "what": f"whole search part of dev{_size(parts, 'search')}",
            "value": fmt_score(section.get("search_score")),
            "note": "– : the winner was not scored on all of it" if section.get("search_score") is None else "",
        },
        {
            "what": "all of dev",
            "value": fmt_score(section.get("dev_score")),
            "note": "optimistic: the search chose on part of it",
        },
        {"what": "test", "value": fmt_score(section.get("test_score")), "note": "never seen by the search"},
        {
            "what": "gap: test − held-out dev",
            "value": fmt_gap(gap.get("test_minus_select")),
            "note": "negative: the held-out score overstated the winner",
        },
        {"what": "gap: test − all of dev", "value": fmt_gap(gap.get("test_minus_dev")), "note": ""},
    ]


def spent_line(section: dict[str, Any]) -> str:
    """What the search spent, how many trials over how many candidates, and why it stopped."""
    s = section.get("spent") or {}
    parts = [f"{fmt_number(s.get('evaluations'))} evaluations", f"{fmt_number(s.get('calls'))} calls"]
    if s.get("tokens") is not None:
        split = f"{fmt_number(s.get('input_tokens'))} in, {fmt_number(s.get('output_tokens'))} out"
        parts.append(f"{fmt_number(s['tokens'])} tokens ({split})")
    if s.get("money"):
        parts.append(fmt_money(s["money"], section.get("currency") or "money"))
    if s.get("flops"):
        parts.append(fmt_flops(s["flops"], unit=True))
    line = "Spent " + ", ".join(parts)
    trials, candidates = section.get("trials"), section.get("candidates")
    if trials is not None:
        line += f"; {trials} trials" + (f" over {candidates} distinct candidates" if candidates is not None else "")
    stopped = section.get("stopped")
    if stopped:
        line += f"; stopped because {STOPPED.get(stopped, stopped)}"
    return line + "."


def improvements(section: dict[str, Any]) -> list[str]:
    """Where the best-so-far score rose: "0.812 after 3 evaluations (114 calls)", in order."""
    series = section.get("series") or {}
    out, last = [], None
    for i, best in enumerate(series.get("best_so_far") or []):
        if last is None or best > last:
            evals = (series.get("evaluations") or [None] * (i + 1))[i]
            calls = (series.get("calls") or [None] * (i + 1))[i]
            out.append(f"{best:.3f} after {_plural(evals, 'evaluation')} ({_plural(calls, 'call')})")
            last = best
    return out


def winner_line(section: dict[str, Any]) -> str:
    prompt = section.get("prompt") or {}
    return f"Winner: {prompt.get('summary') or 'a prompt'}; chosen on the held-out part of dev."


def search_view(section: dict[str, Any]) -> dict[str, Any]:
    """A section's display strings, shared by markdown and HTML."""
    return {
        "winner": winner_line(section),
        "scores": score_rows(section),
        "spent": spent_line(section),
        "improvements": improvements(section),
        "finalists": [
            {
                "candidate": "–" if f.get("candidate") is None else str(f["candidate"]),
                "prompt": f.get("prompt") or "",
                "search_mean": fmt_score(f.get("search_mean")),
                "search_whole": fmt_score(f.get("search_whole")),
                "select": fmt_score(f.get("select")),
                "winner": bool(f.get("winner")),
            }
            for f in section.get("finalists") or []
        ],
    }


def _cell(text: str) -> str:
    """Text for a markdown table cell: pipes escaped, line breaks as spaces."""
    return re.sub(r"\s*\n\s*", " ", text).replace("|", "\\|")


def _fenced(text: str) -> list[str]:
    """``text`` as a fenced code block, its fence longer than any run of backticks inside it."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}text", text, fence]


def markdown(search: SearchSection | None) -> list[str]:
    """The Prompt search section of report.md (no lines when no trial searched)."""
    if search is None:
        return []
    lines = ["", "## Prompt search"]
    for section in search.entries:
        view = search_view(section)
        metric = section.get("metric") or "score"
        lines += ["", f"### {section['trial']}", "", view["winner"], "", f"| winner's {metric} | value | |"]
        lines.append("|---|---|---|")
        lines += [f"| {r['what']} | {r['value']} | {r['note']} |" for r in view["scores"]]
        lines += ["", view["spent"]]
        if view["improvements"]:
            lines += ["", "Best dev score so far rose to " + "; ".join(view["improvements"]) + "."]
        lines += ["", "Winning prompt:", "", *_fenced((section.get("prompt") or {}).get("text") or "")]
        if view["finalists"]:
            lines += [
                "",
                "Finalists (★ the winner):",
                "",
                "| candidate | prompt | search minibatches (mean) | whole search part | held-out dev |",
                "|---|---|---|---|---|",
            ]
            lines += [
                f"| {f['candidate']}{' ★' if f['winner'] else ''} | {_cell(f['prompt'])} | {f['search_mean']} | "
                f"{f['search_whole']} | {f['select']} |"
                for f in view["finalists"]
            ]
    return lines
