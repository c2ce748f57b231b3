"""What adapting and predicting cost, and from which query volume one route is the cheaper.

- :mod:`.usage`: tokens, seconds and FLOPs counted while a trial runs (:class:`Usage`);
- :mod:`.pricing`: each trial's cost in money, FLOPs and seconds from the report's rows and the user's prices;
- :mod:`.breakeven`: where two cost lines cross.

May import :mod:`tailor.config` and :mod:`tailor.errors`; never methods, backends, the runner or torch.
"""
