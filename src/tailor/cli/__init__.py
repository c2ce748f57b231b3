"""The command line: ``tailor run``, ``curve``, ``predict``, ``keys`` and the rest, a thin layer over the library.

- :mod:`.main`: the typer app, its commands and their options (every option's help text lives here);
- :mod:`.execute`: what ``run`` and ``curve`` share once the options are read: the executor (worker processes, Ray,
  torchrun), signals, and printing the leaderboard from the built report.

May import anything in tailor; nothing in tailor imports it.
"""
