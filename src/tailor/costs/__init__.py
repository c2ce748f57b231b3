"""What adapting and predicting cost, and from which query volume one route is the cheaper.

- :mod:`.usage`: tokens, seconds and FLOPs counted while a trial runs (:class:`Usage`);
- :mod:`.pricing`: each trial's cost in money, FLOPs and seconds from its stored record and the user's prices, and
  the break-even entry of a prompt/fine-tune pair;
- :mod:`.breakeven`: where two cost lines cross.

May import :mod:`tailor.config`, :mod:`tailor.formats` (the units and how they are written) and
:mod:`tailor.errors`; never methods, backends, the runner, the report or torch.
"""
