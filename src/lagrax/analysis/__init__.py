"""The analysis layer: metrics of a trained run, long-horizon prediction, reports and figures.

:mod:`~lagrax.analysis.metrics` scores a model against held-out data,
:mod:`~lagrax.analysis.prediction` rolls it out against the truth,
:mod:`~lagrax.analysis.report` writes a run's report and :mod:`~lagrax.analysis.plotting`
its figures. It reads what training wrote; it trains nothing.
"""
