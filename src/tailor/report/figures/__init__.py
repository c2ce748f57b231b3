"""The report's figures, drawn with matplotlib and inlined in report.html as SVG: one module per kind of figure
(:mod:`.curve` the learning curves, :mod:`.costs` quality against cost and cumulative cost, :mod:`.search` a prompt
search's progress), all drawn as :mod:`.style` says (bare figures, deterministic SVG, each route in its colours).

Each function takes a section's data (plain numbers and names) and returns an SVG string, "" when there is nothing
to draw. May import matplotlib, numpy, :mod:`tailor.formats` and :mod:`tailor.costs`; never the store, methods,
backends or torch.
"""
