"""The core layer: the mechanics every system shares, and the plumbing under everything else.

:mod:`~lagrax.core.mechanics` derives dynamics from a Lagrangian,
:mod:`~lagrax.core.friction` the non-conservative joint forces,
:mod:`~lagrax.core.options` the typed options, :mod:`~lagrax.core.errors` the one
exception hierarchy, :mod:`~lagrax.systems.batching` the checked, batched edge of the
per-sample protocol, and :mod:`~lagrax.core.fileio` atomic writes.

Nothing here imports from a later layer (systems, data, models, training, analysis,
control, cli).
"""
