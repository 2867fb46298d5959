"""The control layer: control laws, online learning in the loop, and closed-loop tracking.

:mod:`~lagrax.control.laws` holds the per-sample control laws (PD, computed torque,
feed-forward + PD) for any :class:`~lagrax.systems.System`;
:mod:`~lagrax.control.online` updates a model while the loop runs;
:mod:`~lagrax.control.tracking` runs, scores and plots tracking jobs;
:mod:`~lagrax.control.swing_up` swings under-actuated systems up by energy shaping with
any model's ``T``, ``V`` and ``M`` and balances them with the LQR of its linearisation.
"""
