"""Statistics, with no knowledge of models or methods: what a prediction scores, metrics with bootstrap intervals,
paired tests, learning-curve crossovers and power.

- :mod:`.outcomes`: the value scored and whether an output was valid, in one place;
- :mod:`.metrics` and :mod:`.text_metrics`: classification and generated-text metrics, intervals and paired tests;
- :mod:`.curves`: learning-curve fits, crossover, data advantage and power.

May import numpy, scipy, scikit-learn and the text-metric libraries; never torch, methods, backends or the report.
"""
