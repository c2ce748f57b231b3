"""Reports of a finished (or stopped) run, built from its store alone: the leaderboard, paired tests, costs and
break-even, learning curves and prompt searches, as markdown, JSON, HTML and figures.

- :mod:`.build`: the report from the store; :mod:`.render`: markdown and the HTML page;
- :mod:`.curve` and :mod:`.curve_text`: the learning-curve section; :mod:`.search`, :mod:`.search_text` and
  :mod:`.search_plots`: the prompt-search section;
- :mod:`.plots` and :mod:`.figure_style`: the figures; :mod:`.viewer`: the HTML page's prediction viewer;
- ``templates/``: the HTML page's Jinja2 templates.

May import :mod:`tailor.stats`, :mod:`tailor.costs`, :mod:`tailor.config` and the run store; never methods,
backends, tuning or torch (a report is rebuilt on a machine without the models).
"""
