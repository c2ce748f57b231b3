"""The report's sections, one module per analysis: each builds its data (a dataclass) from the run's records
(:mod:`tailor.report.records`), writes its markdown and has its part of the HTML page in
``templates/sections/``; a ``*_text`` module holds a section's words and tables where they outgrow it.

- :mod:`.overview`: what ran, how it ended, the data; :mod:`.leaderboard`: every trial, best first;
- :mod:`.comparisons`: paired tests, the winner, power and warnings; :mod:`.costs`: costs and break-even;
- :mod:`.curve` (:mod:`.curve_text`): a learning curve; :mod:`.search` (:mod:`.search_text`,
  :mod:`.search_prompt`): prompt searches.

May import :mod:`tailor.stats`, :mod:`tailor.costs`, :mod:`tailor.formats`, :mod:`tailor.config` and the report's
records and figures; never the store itself, methods, backends, tuning or torch.
"""
