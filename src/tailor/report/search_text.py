"""A prompt search's part of report.md and report.html (see :mod:`tailor.report.search` for what it holds): the
winner and its prompt in full, its scores on each part of dev and on test with the dev-vs-test gap, what the search
spent, when its best score rose, and the finalists."""

from __future__ import annotations

import re
from typing import Any

STOPPED = {
    "budget": "the budget ran out",
    "patience": "no better score on the whole search part for its patience's number of scoring trials",
    "exhausted": "every candidate on offer was scored",
}


def _score(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def _gap(x: float | None) -> str:
    return "–" if x is None else f"{x:+.3f}"


def _number(x: float | None) -> str:
    """A count or amount for a sentence: thousands separated, large ones in k/M/G/T."""
    if x is None:
        return "–"
    for scale, suffix in ((1e12, " T"), (1e9, " G"), (1e6, " M")):
        if abs(x) >= scale:
            return f"{x / scale:.1f}{suffix}"
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.3g}"


def _flops(x: float) -> str:
    for scale, suffix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= scale:
            return f"{x / scale:.1f} {suffix}FLOPs"
    return f"{x:.0f} FLOPs"


def _plural(n: float | None, word: str) -> str:
    return f"{_number(n)} {word}" + ("" if n == 1 else "s")


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
            "value": _score(section.get("select_score")),
            "note": "the finalists were scored here; the best won",
        },
        {
            "what": f"whole search part of dev{_size(parts, 'search')}",
            "value": _score(section.get("search_score")),
            "note": "– : the winner was not scored on all of it" if section.get("search_score") is None else "",
        },
        {
            "what": "all of dev",
            "value": _score(section.get("dev_score")),
            "note": "optimistic: the search chose on part of it",
        },
        {"what": "test", "value": _score(section.get("test_score")), "note": "never seen by the search"},
        {
            "what": "gap: test − held-out dev",
            "value": _gap(gap.get("test_minus_select")),
            "note": "negative: the held-out score overstated the winner",
        },
        {"what": "gap: test − all of dev", "value": _gap(gap.get("test_minus_dev")), "note": ""},
    ]


def spent_line(section: dict[str, Any]) -> str:
    """What the search spent, how many trials over how many candidates, and why it stopped."""
    s = section.get("spent") or {}
    parts = [f"{_number(s.get('evaluations'))} evaluations", f"{_number(s.get('calls'))} calls"]
    if s.get("tokens") is not None:
        split = f"{_number(s.get('input_tokens'))} in, {_number(s.get('output_tokens'))} out"
        parts.append(f"{_number(s['tokens'])} tokens ({split})")
    if s.get("money"):
        parts.append(f"{section.get('currency') or 'money'} {s['money']:.4g}")
    if s.get("flops"):
        parts.append(_flops(s["flops"]))
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
                "search_mean": _score(f.get("search_mean")),
                "search_whole": _score(f.get("search_whole")),
                "select": _score(f.get("select")),
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


def search_markdown(sections: list[dict[str, Any]]) -> list[str]:
    """The "Prompt search" section of report.md (no lines when no trial searched)."""
    if not sections:
        return []
    lines = ["", "## Prompt search"]
    for section in sections:
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
