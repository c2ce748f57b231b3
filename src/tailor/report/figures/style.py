"""What every report figure is drawn with (the learning curves, quality against cost, cumulative cost and a prompt
search's progress: the other modules of this package).

Each figure is drawn on a bare :class:`matplotlib.figure.Figure` (no pyplot, so no global backend or state is
touched) with matplotlib's own DejaVu Sans drawn as paths, so it looks the same on every machine and offline; its
SVG is deterministic (fixed hash salt, no date). Every element id in an SVG is prefixed with the figure's name, so
several figures can live in one page.

The prompt route is drawn in purples with dashed lines, the fine-tune route in greens with solid lines, in the
tables' colours too.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from typing import Any

from ...formats import route_name

ROUTE_COLORS = {
    "prompt": ("#7a3e9d", "#b07cc6", "#4a1a6b", "#9856b8", "#d1b0e0"),
    "finetune": ("#1f6f43", "#4daf6e", "#0b4a26", "#2f9158", "#8fd19e"),
}
OTHER_COLORS = ("#555555", "#888888", "#333333")
ROUTE_STYLE = {"prompt": "--", "finetune": "-"}
SIZE = (8.0, 4.2)
"""Every figure's size in inches (shown at most the page's width)."""
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "h")


def route_styles(items: Sequence[tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """Per name of ``items`` ((name, route) pairs, in order): its colour, line style and marker, shades of its route's
    colour taken in turn."""
    seen: dict[str, int] = {}
    out = {}
    for i, (name, route) in enumerate(items):
        k = seen[route] = seen.get(route, -1) + 1
        colors = ROUTE_COLORS.get(route, OTHER_COLORS)
        out[name] = {
            "color": colors[k % len(colors)],
            "linestyle": ROUTE_STYLE.get(route, ":"),
            "marker": MARKERS[i % len(MARKERS)],
        }
    return out


def series_label(name: str, route: str) -> str:
    """A drawn series' legend entry: the trial or method and its route."""
    return f"{name} ({route_name(route)})"


def figure(size: tuple[float, float] = SIZE) -> Any:
    """A bare figure (no pyplot) laid out by matplotlib's constrained layout."""
    from matplotlib.figure import Figure

    return Figure(figsize=size, layout="constrained")


def rc() -> Any:
    """The settings every figure is drawn under (a context manager)."""
    import matplotlib

    return matplotlib.rc_context(
        {
            "svg.hashsalt": "tailor",
            "svg.fonttype": "path",
            "font.family": "DejaVu Sans",
            "font.size": 9,
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    )


def svg(fig: Any, name: str) -> str:
    """The figure as an inline ``<svg>`` (no XML prolog, doctype, metadata or comments), its ids prefixed."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
    text = re.sub(r"<!--.*?-->\s*", "", text, flags=re.S)
    ids = set(re.findall(r'\bid="([^"]+)"', text))

    def prefixed(match: re.Match[str]) -> str:
        head, ref = match.group(1), match.group(2)
        return f"{head}{name}-{ref}" if ref in ids else match.group(0)

    text = re.sub(r'(\bid="|href="#|url\(#)([^")]+)', prefixed, text)
    return text.replace("<svg ", f'<svg id="plot-{name}" class="plot" role="img" ', 1)


def legend(fig: Any, ax: Any) -> None:
    """The axes' legend, outside them on the right (nothing when no series is labelled)."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside right upper", fontsize=8, frameon=False)
