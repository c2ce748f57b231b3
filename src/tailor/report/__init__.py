"""Reports of a finished (or stopped) run, built once from its store alone: the leaderboard, paired tests, costs and
break-even, learning curves and prompt searches, as report.json, report.md, report.html (with its figures) and the
console's leaderboard.

- :mod:`.records`: what a report reads from the run store, read in one go; :mod:`.build`: the report built from
  them (:class:`~.document.Report`, typed sections) and written; :mod:`.summary`: the benchmark summary;
- :mod:`.sections`: one module per section (its data, its markdown, its part of the page);
- :mod:`.page`: report.md and report.html, the sections in order; ``templates/``: the page and each section's part;
- :mod:`.figures`: the figures (matplotlib, inline SVG); :mod:`.viewer`: the page's per-example viewer.

Adding an analysis is adding a section module, its field in :class:`~.document.Report` and its place in the page.
May import :mod:`tailor.stats`, :mod:`tailor.costs`, :mod:`tailor.formats`, :mod:`tailor.config` and the run
store; never methods, backends, tuning, prompting or torch (a report is rebuilt on a machine without the models,
from what the run recorded).
"""
