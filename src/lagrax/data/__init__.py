"""The data layer: datasets, the generators that simulate them, signals, shards and importers.

:mod:`~lagrax.data.dataset` is the in-memory dataset and its file format;
:mod:`~lagrax.data.generators` simulates a system into one (a module per kind of motion);
:mod:`~lagrax.data.sensors` degrades it as a robot's sensors would; :mod:`~lagrax.data.signals`
estimates derivatives of logged signals; :mod:`~lagrax.data.shards` writes and streams
memory-mapped shards; :mod:`~lagrax.data.importers` reads CSV, NPZ and ROS bag logs.

It depends on systems and the core only: models, training and control come later.
"""
