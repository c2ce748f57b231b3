"""The report as one typed object: its sections, each built once from the run's records, and the layout report.json
gives them.

A section is data (a dataclass) built from the records, with its own markdown, its part of the HTML page
(``templates/sections/``) and its figures; adding an analysis is adding a section module under
:mod:`tailor.report.sections`, a field here and a line in the page (:mod:`tailor.report.page`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..paths import shared
from .sections.comparisons import Comparisons
from .sections.costs import CostsSection
from .sections.curve import CurveSection
from .sections.leaderboard import Row
from .sections.overview import Overview
from .sections.search import SearchSection


@dataclass(frozen=True)
class Report:
    """A run's report.

    Attributes:
        run_dir: The run's folder.
        overview: What was run, how it ended, the data it read.
        leaderboard: Every trial, best test score first.
        comparisons: The paired tests, the winner, the test set's power and the warnings.
        costs: Each compared trial's costs and the break-even volumes (always built; None: a report shown without).
        curve: A learning curve's figures (None: the run is not a curve).
        search: Each prompt search (None: no trial searched its prompt).
        viewer: The per-example viewer's data (:func:`tailor.report.viewer.viewer_data`), shown in report.html only.
    """

    run_dir: Path
    overview: Overview
    leaderboard: list[Row]
    comparisons: Comparisons
    costs: CostsSection | None
    curve: CurveSection | None
    search: SearchSection | None
    viewer: dict[str, Any] | None = None

    @property
    def primary(self) -> str:
        return self.overview.primary_metric

    @property
    def winner(self) -> str | None:
        """The winning trial's name."""
        return (self.comparisons.winner or {}).get("method")

    def to_json(self) -> dict[str, Any]:
        """report.json: the keys it has always had, at its top level (benchmarks and users read them)."""
        return {
            **self.overview.head_json(),
            "leaderboard": [r.to_json() for r in self.leaderboard],
            **self.comparisons.to_json(),
            "costs": self.costs.to_json() if self.costs else None,
            "curve": self.curve.to_json() if self.curve else None,
            "prompt_search": self.search.to_json() if self.search else None,
            **self.overview.tail_json(),
        }

    def shared(self, base: Path) -> Report:
        """The report with every absolute path in its text shown relative to ``base`` (see
        :func:`tailor.paths.shared`): a report is meant to be shared, the user's folders are not."""
        return _shared(self, base)


def _shared(value: Any, base: Path) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: _shared(getattr(value, f.name), base) for f in dataclasses.fields(value)}
        return dataclasses.replace(value, **changes)
    if isinstance(value, list):
        return [_shared(v, base) for v in value]
    return shared(value, base)
