"""Robot arms by short name, for the benchmarks: lagrax's own factories (with their
realistic plant presets) and the other arms of example-robot-data's URDFs.

An arm without a preset gets friction and rotor inertia on every joint from one rule on
its torque limits (:func:`generic_effects`), so no arm carries hand-picked values:

    from benchmarks.arms import arm
    truth = arm("ur10")
"""

from __future__ import annotations

import numpy as np

# example-robot-data URDFs of arms lagrax has no factory for
URDFS = {
    "ur3": "ur_description/urdf/ur3_robot.urdf",
    "ur10": "ur_description/urdf/ur10_robot.urdf",
    "z1": "z1_description/urdf/z1.urdf",
    "xarm7": "xarm_description/urdf/xarm7.urdf",
    "so100": "so_arm_description/urdf/so100.urdf",
    "twodof": "asr_twodof_description/urdf/TwoDofs.urdf",
}
# lagrax factories with a realistic preset
PRESETS = ("panda", "ur5")
# MJCF arms (MuJoCo's dynamics, the files' own damping and armature): gymnasium's pusher
# (lagrax's factory) and reacher (its two driven joints)
MJCF = ("pusher", "reacher")
KNOWN = (*PRESETS, *URDFS, *MJCF)


def generic_effects(torque_limits) -> dict[str, np.ndarray]:
    """Friction and armature of the order of real geared drives, scaled by each joint's
    torque limit ``tau_max`` [N m]: Coulomb 0.5 % and viscous 0.1 % of ``tau_max``
    (per rad/s), rotor inertia ``0.005 tau_max`` kg m^2. On the Panda's 87 N m joints
    this gives 0.44 N m, 0.09 N m s/rad and 0.44 kg m^2, the size of its preset."""
    tau = np.asarray(torque_limits, dtype=float)
    return dict(coulomb=0.005 * tau, damping=0.001 * tau, armature=0.005 * tau)


def arm(name: str):
    """The arm ``name`` (one of :data:`KNOWN`) with friction and armature."""
    import lagrax
    from lagrax.systems.robots import example_robot_data_path

    if name in PRESETS:
        return lagrax.system(name, realistic=True)
    if name == "pusher":
        return lagrax.system("pusher")
    if name == "reacher":
        from lagrax.systems.mjcf import gymnasium_asset

        path = str(gymnasium_asset("reacher.xml"))  # its two driven joints, not the target's slides
        return lagrax.system("mjcf", path=path, joints="joint0,joint1", name="reacher")
    if name not in URDFS:
        raise SystemExit(f"unknown arm {name!r}; known: {', '.join(KNOWN)}")
    path = str(example_robot_data_path(URDFS[name]))
    bare = lagrax.system("urdf", path=path, name=name)
    effects = {k: tuple(v.tolist()) for k, v in generic_effects(bare.info.torque_limits).items()}
    return lagrax.system("urdf", path=path, name=name, **effects)
