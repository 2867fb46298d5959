"""The data layer: datasets, the generators that simulate them, signals, shards and importers.

:mod:`~lagrax.data.dataset` is the in-memory dataset and its file format;
:mod:`~lagrax.data.trajectories` simulates a system into one; :mod:`~lagrax.data.signals`
holds the excitation signals; :mod:`~lagrax.data.shards` writes and streams
memory-mapped shards; :mod:`~lagrax.data.importers` reads CSV, NPZ and ROS bag logs.

It depends on systems and the core only: models, training and control come later.
"""
