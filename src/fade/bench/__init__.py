"""Benchmarks: every upsampler measured the same way (``fade bench``), and the operator suite.

Modules: :mod:`~fade.bench.cases` (what is measured), :mod:`~fade.bench.authors` (the authors'
FADE formulation), :mod:`~fade.bench.measure` (latency, FLOPs), :mod:`~fade.bench.memory` (peak
memory, fresh process), :mod:`~fade.bench.sweeps` and :mod:`~fade.bench.plots` (``fade bench``),
:mod:`~fade.bench.operator` (``fade bench --suite operator``). Measuring needs only torch; the
figures need matplotlib (the ``plot`` extra).
"""
