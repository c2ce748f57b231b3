"""How tailor writes its numbers and names its units: the one place the reports' tables, sentences and figures take
them from, so that a cost, a unit or "no break-even" reads the same in report.md, report.html, the figures and the
console.

The cost units come in the order a report prefers them: money needs the user's prices, FLOPs and seconds don't.
A missing value is written "–" everywhere, never guessed.

Imports nothing of tailor's: :mod:`tailor.costs` and :mod:`tailor.report` both use it.
"""

from __future__ import annotations

from typing import Literal

Unit = Literal["money", "flops", "seconds"]

UNITS: tuple[Unit, ...] = ("money", "flops", "seconds")
"""The cost units, in the order a report tells them: money when prices allow, else FLOPs, else seconds."""

MISSING = "–"
"""A value that is not known."""

NEVER = "never"
"""A break-even volume Q* that does not exist: the two routes' costs never cross (the verdict beside it says which
route is cheaper at every volume)."""

ROUTE_NAMES = {"prompt": "prompt", "finetune": "fine-tune"}
"""Each route as a sentence names it."""


def unit_label(unit: str, currency: str | None = None) -> str:
    """A cost unit as tables and axes name it: money in its currency (``money`` when none is known)."""
    if unit == "money":
        return currency or "money"
    return {"flops": "FLOPs", "seconds": "seconds"}.get(unit, unit)


def route_name(route: str) -> str:
    """A route as a sentence names it: ``prompt``, ``fine-tune`` (any other as it is)."""
    return ROUTE_NAMES.get(route, route)


def route_title(route: str) -> str:
    """A route as a heading names it: ``prompt route``, ``fine-tune route``."""
    return f"{route_name(route)} route"


def fmt_queries(q: float | None) -> str:
    """A break-even volume Q*: ``12,345``, or :data:`NEVER` when the costs never cross."""
    return NEVER if q is None else f"{q:,.0f}"


def fmt_money(x: float | None, currency: str | None = None) -> str:
    """An amount of money: two decimals from 1 on (``USD 1,234.50``), three significant digits below (``USD
    0.0592``, ``USD 3.1e-07``: a local trial's cost per query is often a tiny fraction of a cent)."""
    if x is None:
        return MISSING
    amount = f"{x:,.2f}" if abs(x) >= 1 else f"{x:.3g}"
    return f"{currency or ''} {amount}".strip()


def fmt_flops(x: float | None, unit: bool = False) -> str:
    """Estimated FLOPs with a k/M/G/T/P prefix (``1.2 G``; ``1.2 GFLOPs`` with ``unit``); none, or 0 (unknown for
    served models), is :data:`MISSING`."""
    if not x:
        return MISSING
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= scale:
            return f"{x / scale:.1f} {prefix}" + ("FLOPs" if unit else "")
    return f"{x:.0f}" + (" FLOPs" if unit else "")


def fmt_count(n: float | None) -> str:
    """A count for a narrow column: ``1.2k``, ``22.7M``, ``1.1B``."""
    if n is None:
        return MISSING
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= scale:
            return f"{n / scale:.1f}{suffix}"
    return str(n)


def fmt_int(n: int | None) -> str:
    """A count in full: ``22,700,000``."""
    return MISSING if n is None else f"{n:,}"


def fmt_number(x: float | None) -> str:
    """A count or amount inside a sentence: thousands separated, large ones in M/G/T."""
    if x is None:
        return MISSING
    for scale, suffix in ((1e12, " T"), (1e9, " G"), (1e6, " M")):
        if abs(x) >= scale:
            return f"{x / scale:.1f}{suffix}"
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.3g}"


def fmt_bytes(n: float | None) -> str:
    """A size on disk: ``900 B``, ``8.5 KB``, ``1.2 GB``."""
    if n is None:
        return MISSING
    for suffix in ("B", "KB", "MB", "GB"):
        if n < 1024 or suffix == "GB":
            return f"{n:.0f} {suffix}" if suffix == "B" else f"{n:.1f} {suffix}"
        n /= 1024
    return str(n)


def fmt_seconds(x: float | None, digits: int = 1) -> str:
    """A duration: ``3,600.0 s``."""
    return MISSING if x is None else f"{x:,.{digits}f} s"


def fmt_score(x: float | None) -> str:
    """A metric's value: ``0.812``."""
    return MISSING if x is None else f"{x:.3f}"


def fmt_gap(x: float | None) -> str:
    """A difference of two scores, signed: ``+0.031``."""
    return MISSING if x is None else f"{x:+.3f}"


def fmt_ci(m: dict[str, float] | None) -> str:
    """A metric with its interval: ``0.812 [0.770, 0.850]``."""
    if not m:
        return MISSING
    return f"{m['value']:.3f} [{m['ci_low']:.3f}, {m['ci_high']:.3f}]"


def fmt_p(p: float | None) -> str:
    """A p-value: ``0.042``, ``<0.001``."""
    if p is None:
        return MISSING
    return "<0.001" if p < 0.001 else f"{p:.3f}"
