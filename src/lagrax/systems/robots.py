"""Real robots from URDF files, with Pinocchio's rigid-body algorithms as ground truth.

A :class:`PinocchioRobot` is a :class:`~lagrax.systems.StructuredSystem` whose every
quantity comes from Pinocchio's own algorithms, called from JAX through
``jax.pure_callback`` (so they work under ``jit``, ``vmap`` and inside diffrax
rollouts):

=======================  ===================================================
``inverse_dynamics``     ``rnea`` (+ friction, if given)
``forward_dynamics``     ``aba`` (on ``tau - friction``)
``mass_matrix``          ``crba`` (symmetrised)
``gravity``              ``computeGeneralizedGravity``
``coriolis``             ``computeCoriolisMatrix(q, qd) @ qd``
``coriolis_matrix``      ``computeCoriolisMatrix``
``potential_energy``     ``computePotentialEnergy``
``kinetic_energy``       ``computeKineticEnergy``
=======================  ===================================================

Each has a ``jax.custom_jvp`` whose tangent is a Pinocchio derivative (RNEA, ABA,
gravity derivatives, ``dM/dq`` from RNEA derivatives) contracted with the tangent, so
*first* derivatives work in forward and reverse mode; second derivatives do not.

:meth:`PinocchioRobot.core_system` returns the same robot seen only through ``M(q)``
and ``V(q)``, with everything else derived by :mod:`lagrax.core.mechanics`: comparing it with
``rnea`` checks the mechanics core against an independent implementation.

Joints: revolute and prismatic (``nq == nv == 1``); continuous joints (Pinocchio
stores ``cos, sin``) are handled as an angle. Floating, spherical and planar joints are
rejected.

Plant effects beyond the URDF's rigid bodies, each off by default (the URDF's own
``<dynamics damping friction>`` is ignored, as Pinocchio's algorithms ignore it):

* joint friction ``damping`` (viscous), ``coulomb``, ``stribeck`` and
  ``stribeck_velocity``: a :class:`~lagrax.core.friction.JointFriction` added to ``rnea``
  and removed before ``aba``;
* rotor inertia ``armature`` (the motor's inertia reflected through the gearbox,
  ``N^2 J_motor``), set on Pinocchio's ``model.armature``. Pinocchio 4 includes it
  everywhere lagrax looks: ``crba`` gives ``M + diag(armature)``, ``rnea`` adds
  ``armature * qdd``, ``aba`` and ``computeMinverse`` invert that ``M``, the RNEA / ABA
  derivatives carry it (``dtau/dqdd = M``, ``dqdd/dtau = M^-1``; it is constant, so
  ``dM/dq``, ``c`` and ``g`` are unchanged) and ``computeKineticEnergy`` is
  ``qd^T M qd / 2`` with it (checked in ``tests/test_plants.py`` against a model without
  armature plus ``diag(armature)``), so nothing is added by hand here.

``panda(realistic=True)`` and ``ur5(realistic=True)`` switch all of them on with the
plausible per-joint values of :data:`REALISTIC` (see there for where they come from).
The torque ``inverse_dynamics`` returns is then what the drives deliver: rigid body +
rotor inertia + friction.

Pinocchio (``pin``) and ``example-robot-data`` are the optional extra
``lagrax[robots]``; they are imported only when a robot is built.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import os
import re
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Scalar

from lagrax.core.errors import LagraxError, UnknownNameError
from lagrax.core.friction import JointFriction
from lagrax.core.mechanics import StructuredTerms
from lagrax.systems.base import Mat, StructuredSystem, SystemInfo, Vec
from lagrax.systems.bridge import by_jacobians, engine_call, host_function, matrix, scalar, vector
from lagrax.systems.parameters import ParameterError

_EXTRA = "install the optional extra: pip install 'lagrax[robots]'"
_ERD_ROBOTS = Path("cmeel.prefix") / "share" / "example-robot-data" / "robots"

# Pinocchio joint-model short names -> lagrax joint types.
_REVOLUTE = {"JointModelRX", "JointModelRY", "JointModelRZ", "JointModelRevoluteUnaligned"}
_CONTINUOUS = {"JointModelRUBX", "JointModelRUBY", "JointModelRUBZ", "JointModelRevoluteUnboundedUnaligned"}
_PRISMATIC = {"JointModelPX", "JointModelPY", "JointModelPZ", "JointModelPrismaticUnaligned"}
# A URDF without a <limit> leaves Pinocchio's defaults (+-max double): treat as absent.
_NO_LIMIT = 1e30


def _pinocchio():
    try:
        import pinocchio
    except ImportError as e:
        raise LagraxError(
            f"robots need the package 'pin' (Pinocchio), which is not installed: {_EXTRA}"
        ) from e
    return pinocchio


def example_robot_data_path(relative: str | Path = "") -> Path:
    """The ``robots`` folder of the installed ``example-robot-data`` (or a file in it).

    The pip package has no Python module, so its URDFs are found through its
    distribution record, then through the ``cmeel.prefix`` folders on ``sys.path``.
    """
    candidates = []
    try:
        candidates.append(
            Path(str(importlib.metadata.distribution("example-robot-data").locate_file(_ERD_ROBOTS)))
        )
    except importlib.metadata.PackageNotFoundError:
        pass
    candidates += [Path(p) / _ERD_ROBOTS for p in sys.path if p]
    for root in candidates:
        if root.is_dir():
            path = root / relative
            if not path.exists():
                raise LagraxError(f"example-robot-data has no file {str(relative)!r} (looked in {root})")
            return path
    raise LagraxError(f"the URDFs of the package 'example-robot-data' are not installed: {_EXTRA}")


# --------------------------------------------------------------------------------------
# The Pinocchio model, kept out of the pytree
# --------------------------------------------------------------------------------------


class PinocchioModel:
    """A Pinocchio ``Model`` in a hashable holder (hash and equality by identity).

    It sits in a static field, so a robot is still a pytree; each thread that runs a
    callback gets its own ``Data`` workspace (callbacks may run on other threads).
    The batched ``numpy`` kernels below take ``(B, n)`` arrays of lagrax coordinates
    and loop over the batch in one Python call.
    """

    def __init__(self, model, continuous: Sequence[int] = ()):
        self.model = model
        self.nq, self.nv = model.nq, model.nv
        self._local = threading.local()
        # Coordinates of joints with nq == nv == 1, and of continuous joints (cos, sin).
        idx_q, idx_v, cont_q, cont_v = [], [], [], []
        for jid in range(1, model.njoints):
            j = model.joints[jid]
            if jid in continuous:
                cont_q.append(j.idx_q)
                cont_v.append(j.idx_v)
            else:
                idx_q.append(j.idx_q)
                idx_v.append(j.idx_v)
        self._idx = tuple(np.array(a, dtype=int) for a in (idx_q, idx_v, cont_q, cont_v))

    @property
    def data(self):
        d = getattr(self._local, "data", None)
        if d is None:
            d = self._local.data = self.model.createData()
        return d

    def config(self, q: np.ndarray) -> np.ndarray:
        """Pinocchio configurations ``(B, nq)`` from lagrax coordinates ``(B, n)``."""
        idx_q, idx_v, cont_q, cont_v = self._idx
        out = np.empty((q.shape[0], self.nq))
        out[:, idx_q] = q[:, idx_v]
        out[:, cont_q] = np.cos(q[:, cont_v])
        out[:, cont_q + 1] = np.sin(q[:, cont_v])
        return out

    def _loop(self, fn: Callable, q: np.ndarray, *rest: np.ndarray) -> list[np.ndarray]:
        """``fn(model, data, q_b, *rest_b)`` for every sample; outputs stacked per sample."""
        m, d = self.model, self.data
        outs: list[np.ndarray] = []
        for b, args in enumerate(zip(self.config(q), *rest)):  # rows of 2-D arrays are views
            res = fn(m, d, *args)
            res = res if isinstance(res, tuple) else (res,)
            if not outs:
                outs = [np.empty((q.shape[0],) + np.shape(x)) for x in res]
            # Pinocchio returns views of its Data workspace: copy into the output now
            # (kernels copy what they hold across a second Pinocchio call).
            for o, x in zip(outs, res):
                o[b] = x
        return outs

    # ---- batched kernels: (B, n) arrays in, tuples of (B, ...) arrays out --------------
    def mass_matrix(self, q):
        return (_symmetrise(self._loop(_pinocchio().crba, q)[0]),)

    def mass_matrix_derivative(self, q):
        """``M`` and ``dM[b, i, j, k] = dM_ij / dq_k`` (the convention of mechanics)."""
        pin, n = _pinocchio(), self.nv
        eye = np.eye(n)

        def one(m, d, qc):
            # RNEA at qd = 0, qdd = e_j gives tau = M e_j + g, so d(M e_j)/dq = dtau/dq - dg/dq.
            dg = pin.computeGeneralizedGravityDerivatives(m, d, qc).copy()
            dM = np.empty((n, n, n))
            for j in range(n):
                dM[:, j, :] = pin.computeRNEADerivatives(m, d, qc, np.zeros(n), eye[j])[0] - dg
            return pin.crba(m, d, qc), dM

        M, dM = self._loop(one, q)
        return _symmetrise(M), dM

    def potential_and_gravity(self, q):
        pin = _pinocchio()
        return tuple(
            self._loop(
                lambda m, d, qc: (
                    pin.computePotentialEnergy(m, d, qc),
                    pin.computeGeneralizedGravity(m, d, qc),
                ),
                q,
            )
        )

    def gravity(self, q):
        return tuple(self._loop(_pinocchio().computeGeneralizedGravity, q))

    def gravity_derivative(self, q):
        pin = _pinocchio()
        return tuple(
            self._loop(
                lambda m, d, qc: (
                    pin.computeGeneralizedGravity(m, d, qc).copy(),
                    pin.computeGeneralizedGravityDerivatives(m, d, qc),
                ),
                q,
            )
        )

    def rnea(self, q, qd, qdd):
        return tuple(self._loop(_pinocchio().rnea, q, qd, qdd))

    def rnea_derivatives(self, q, qd, qdd):
        pin = _pinocchio()

        def one(m, d, qc, v, a):
            tau = pin.rnea(m, d, qc, v, a).copy()
            return (tau, *pin.computeRNEADerivatives(m, d, qc, v, a))

        tau, dq, dv, M = self._loop(one, q, qd, qdd)
        return tau, dq, dv, _symmetrise(M)

    def aba(self, q, qd, tau):
        return tuple(self._loop(_pinocchio().aba, q, qd, tau))

    def aba_derivatives(self, q, qd, tau):
        pin = _pinocchio()

        def one(m, d, qc, v, t):
            qdd = pin.aba(m, d, qc, v, t).copy()
            return (qdd, *pin.computeABADerivatives(m, d, qc, v, t))

        qdd, dq, dv, Minv = self._loop(one, q, qd, tau)
        return qdd, dq, dv, _symmetrise(Minv)

    def coriolis_matrix(self, q, qd):
        return tuple(self._loop(_pinocchio().computeCoriolisMatrix, q, qd))

    def coriolis(self, q, qd):
        C = self.coriolis_matrix(q, qd)[0]
        return (np.einsum("bij,bj->bi", C, qd),)

    def coriolis_derivative(self, q, qd):
        """``c`` and its Jacobians: ``c = rnea(q, qd, 0) - g(q)``."""
        pin, n = _pinocchio(), self.nv

        def one(m, d, qc, v):
            C = pin.computeCoriolisMatrix(m, d, qc, v)
            dg = pin.computeGeneralizedGravityDerivatives(m, d, qc).copy()
            dq, dv, _ = pin.computeRNEADerivatives(m, d, qc, v, np.zeros(n))
            return C @ v, dq - dg, dv

        return tuple(self._loop(one, q, qd))

    def kinetic_energy(self, q, qd):
        return tuple(self._loop(_pinocchio().computeKineticEnergy, q, qd))


def _symmetrise(M: np.ndarray) -> np.ndarray:
    # crba (and the Minv of the ABA derivatives) may fill only the upper triangle.
    upper = np.triu(M)
    return upper + np.swapaxes(np.triu(M, 1), -1, -2)


# --------------------------------------------------------------------------------------
# JAX side: callbacks with first-derivative rules (see lagrax.systems.bridge)
# --------------------------------------------------------------------------------------

#: ``M(q)``; tangent ``dM/dq . v`` from RNEA derivatives.
_mass_matrix = host_function(
    PinocchioModel.mass_matrix, [matrix], by_jacobians(PinocchioModel.mass_matrix_derivative, matrix)
)
#: ``V(q)``; tangent ``g . v``.
_potential_energy = host_function(
    PinocchioModel.potential_and_gravity,
    [scalar, vector],
    by_jacobians(PinocchioModel.potential_and_gravity, scalar),
)
#: ``g(q)``; tangent from the gravity derivatives.
_gravity = host_function(
    PinocchioModel.gravity, [vector], by_jacobians(PinocchioModel.gravity_derivative, vector)
)
#: ``rnea(q, qd, qdd)``; tangent from the RNEA derivatives (``dtau/dqdd = M``).
_rnea = host_function(PinocchioModel.rnea, [vector], by_jacobians(PinocchioModel.rnea_derivatives, vector))
#: ``aba(q, qd, tau)``; tangent from the ABA derivatives (``dqdd/dtau = M^-1``).
_aba = host_function(PinocchioModel.aba, [vector], by_jacobians(PinocchioModel.aba_derivatives, vector))
#: ``c(q, qd)``; tangent from the RNEA and gravity derivatives.
_coriolis = host_function(
    PinocchioModel.coriolis, [vector], by_jacobians(PinocchioModel.coriolis_derivative, vector)
)


def _kinetic_energy_jvp(robot, primals, tangents):
    (q, qd), (tq, tv) = primals, tangents
    T = engine_call(robot, PinocchioModel.kinetic_energy, [scalar], q, qd)[0]
    M, dM = engine_call(robot, PinocchioModel.mass_matrix_derivative, [matrix, lambda n: (n, n, n)], q)
    # dT = (M qd) . dqd + 1/2 qd^T (dM/dq . dq) qd
    return T, (M @ qd) @ tv + 0.5 * qd @ (dM @ tq) @ qd


#: ``T(q, qd)``; tangent from ``M`` and ``dM/dq``.
_kinetic_energy = host_function(PinocchioModel.kinetic_energy, [scalar], _kinetic_energy_jvp)


# --------------------------------------------------------------------------------------
# Systems
# --------------------------------------------------------------------------------------


class PinocchioCore(StructuredSystem):
    """A robot seen only through Pinocchio's ``M(q)`` (``crba``) and ``V(q)``.

    Everything else (c, g, forward and inverse dynamics, energies) is derived by
    :mod:`lagrax.core.mechanics`, exactly as for a learned DeLaN; see
    :meth:`PinocchioRobot.core_system`.
    """

    robot: PinocchioModel = eqx.field(static=True)
    friction_model: JointFriction | None = None

    def mass_matrix(self, q: Vec) -> Mat:
        return _mass_matrix(self.robot, q)

    def potential_energy(self, q: Vec) -> Scalar:
        return _potential_energy(self.robot, q)

    def friction(self, q: Vec, qd: Vec) -> Vec:
        return jnp.zeros_like(qd) if self.friction_model is None else self.friction_model(qd)

    @property
    def pinocchio_model(self):
        """The underlying ``pinocchio.Model`` (do not modify it)."""
        return self.robot.model


class PinocchioRobot(PinocchioCore):
    """A robot whose dynamics are Pinocchio's ``rnea`` / ``aba`` / ``crba`` ... (see module doc)."""

    CAPABLE_OF: ClassVar[frozenset[str]] = frozenset({"rigid_body_tree"})

    def inverse_dynamics(self, q: Vec, qd: Vec, qdd: Vec) -> Vec:
        return _rnea(self.robot, q, qd, qdd) + self.friction(q, qd)

    def forward_dynamics(self, q: Vec, qd: Vec, tau: Vec) -> Vec:
        return _aba(self.robot, q, qd, tau - self.friction(q, qd))

    def gravity(self, q: Vec) -> Vec:
        return _gravity(self.robot, q)

    def coriolis(self, q: Vec, qd: Vec) -> Vec:
        return _coriolis(self.robot, q, qd)

    def coriolis_matrix(self, q: Vec, qd: Vec) -> Mat:
        # No derivative rule: C is returned for analysis (skew-symmetry, passivity), not for training.
        return engine_call(self.robot, PinocchioModel.coriolis_matrix, [matrix], q, qd)[0]

    def kinetic_energy(self, q: Vec, qd: Vec) -> Scalar:
        return _kinetic_energy(self.robot, q, qd)

    def terms(self, q: Vec, qd: Vec) -> StructuredTerms:
        """``M``, ``c``, ``g`` and ``V``, each from its own Pinocchio algorithm (not through
        the core's forward-mode pass; :meth:`core_system` is that)."""
        return StructuredTerms(
            self.mass_matrix(q), self.coriolis(q, qd), self.gravity(q), self.potential_energy(q)
        )

    def rigid_body_tree(self):
        """This robot's dynamics in pure JAX (:class:`~lagrax.systems.rigid_body.RigidBodyTree`):
        the same model, no host callbacks, so it compiles into ``lax.scan`` and ``vmap``."""
        from lagrax.systems.rigid_body import RigidBodyTree

        return RigidBodyTree.from_pinocchio(self.robot.model, self.info, self.friction_model)

    def core_system(self) -> PinocchioCore:
        """This robot through ``M(q)`` and ``V(q)`` only, with lagrax's mechanics core deriving the rest."""
        info = dataclasses.replace(self.info, name=f"{self.info.name}_core")
        return PinocchioCore(info=info, robot=self.robot, friction_model=self.friction_model)


# --------------------------------------------------------------------------------------
# Joints and limits
# --------------------------------------------------------------------------------------


def _joint_type(model, jid: int) -> str:
    """``"revolute"``, ``"continuous"`` or ``"prismatic"``; anything else is rejected."""
    joint = model.joints[jid]
    kind = joint.shortname()
    if kind in _REVOLUTE:
        return "revolute"
    if kind in _CONTINUOUS:
        return "continuous"
    if kind in _PRISMATIC:
        return "prismatic"
    raise LagraxError(
        f"joint {model.names[jid]!r} is a {kind} (nq={joint.nq}, nv={joint.nv}); lagrax robots support "
        "revolute, continuous and prismatic joints only "
        "(lock it with locked_joints=..., or fix it in the URDF)"
    )


def _limits(lo, hi):
    ok = np.isfinite(lo) & np.isfinite(hi) & (np.abs(lo) < _NO_LIMIT) & (np.abs(hi) < _NO_LIMIT)
    return tuple(zip(lo.tolist(), hi.tolist())) if ok.all() else None


def _hashable(x):
    """A per-joint array as one float when all joints agree, else a tuple (a static, hashable field)."""
    x = np.asarray(x, dtype=float)
    if x.ndim == 0 or (x.size and np.all(x == x.flat[0])):
        return float(x.flat[0])
    return tuple(x.tolist())


def _positive_limits(x):
    ok = np.isfinite(x) & (x > 0) & (x < _NO_LIMIT)
    return tuple(x.tolist()) if ok.all() else None


# --------------------------------------------------------------------------------------
# Plant effects: friction and rotor inertia, and the realistic presets
# --------------------------------------------------------------------------------------

PerJoint = float | Sequence[float]

# The effects a robot factory takes, and their values when neither given nor preset.
EFFECTS: dict[str, float] = dict(damping=0.0, coulomb=0.0, stribeck=0.0, stribeck_velocity=0.1, armature=0.0)

REALISTIC: dict[str, dict[str, tuple[float, ...]]] = {
    # Franka Emika Panda, joints 1..7. Plausible values of the right order, NOT an
    # identification of any one robot:
    # * coulomb [N m]: half the amplitude phi_1 of the sigmoidal friction law that Gaz,
    #   Cognetti, Oliva, Robuffo Giordano, De Luca identified ("Dynamic Identification of
    #   the Franka Emika Panda Robot With Retrieval of Feasible Parameters Using
    #   Penalty-Based Optimization", IEEE RA-L 2019): phi_1 / (1 + exp(-phi_2 qd)) - const
    #   is (phi_1 / 2) tanh(phi_2 qd / 2), a smoothed Coulomb law of level phi_1 / 2, with
    #   phi_1 = 0.546, 0.872, 0.641, 1.279, 0.839, 0.303, 0.565;
    # * damping [N m s/rad]: small, since their friction saturates over the speeds tested
    #   (at the 2.2-2.6 rad/s speed limits it adds 0.13-0.22 N m, below every joint's
    #   Coulomb level). Their sigmoid rounds the sign over ~0.1-0.4 rad/s; JointFriction's
    #   tanh uses its default 0.01 rad/s;
    # * armature [kg m^2]: the reflected rotor inertias Franka gives for the FR3's drives
    #   (0.606, 0.606, 0.462, 0.462, 0.206, 0.206, 0.206, as quoted in Drake's
    #   franka_description README); the Panda's drives are of the same sizes.
    "panda": dict(
        damping=(0.10, 0.10, 0.10, 0.10, 0.05, 0.05, 0.05),
        coulomb=(0.27, 0.44, 0.32, 0.64, 0.42, 0.15, 0.28),
        armature=(0.61, 0.61, 0.46, 0.46, 0.21, 0.21, 0.21),
    ),
    # Universal Robots UR5, base .. wrist 3: same scale as the Panda, graded by drive size
    # (three size-3 drives for 150 N m, three size-1 drives for 28 N m, harmonic drives of
    # ratio ~100, so N^2 J_motor with J_motor a few 1e-5 kg m^2 for armature). Plausible,
    # not identified: real UR5 friction seen through motor currents varies between units
    # and with temperature.
    "ur5": dict(
        damping=(0.30, 0.30, 0.20, 0.10, 0.10, 0.10),
        coulomb=(1.0, 1.0, 0.8, 0.4, 0.4, 0.4),
        armature=(0.35, 0.35, 0.35, 0.10, 0.10, 0.10),
    ),
}


def _per_joint(robot: str, name: str, value, n: int) -> np.ndarray:
    """``value`` (a number, or one per joint) as ``(n,)`` floats, or a :class:`ParameterError`."""
    items = value if isinstance(value, (list, tuple, np.ndarray)) else [value]
    if any(
        isinstance(v, (str, bytes, bool, np.bool_)) or v is None for v in np.ravel(np.asarray(items, object))
    ):
        raise ParameterError(
            f"{robot}: {name} must be a number or {n} numbers (one per joint), got {value!r}"
        )
    try:
        x = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ParameterError(f"{robot}: {name} must be a number or {n} numbers, got {value!r}") from None
    if x.ndim > 1 or (x.ndim == 1 and x.size != n):
        raise ParameterError(
            f"{robot}: {name} takes one value or one per joint ({n}), got {x.size} values: {value!r}"
        )
    positive = name == "stribeck_velocity"
    if not np.all(np.isfinite(x) & ((x > 0) if positive else (x >= 0))):
        what = "positive" if positive else "non-negative"
        raise ParameterError(f"{robot}: {name} must be {what} finite numbers, got {value!r}")
    return np.broadcast_to(x, (n,)).copy()


def plant_effects(robot: str, dof: int, given: Mapping, realistic: bool = False) -> dict[str, np.ndarray]:
    """Per-joint ``damping, coulomb, stribeck, stribeck_velocity, armature`` ``(dof,)``.

    A value in ``given`` that is not ``None`` wins; else the :data:`REALISTIC` preset of
    ``robot`` when ``realistic``; else the default of :data:`EFFECTS` (all off). Raises
    :class:`ParameterError` for a negative, non-finite or non-numeric value, a wrong
    number of per-joint values, or a ``realistic`` that is not a bool.
    """
    if not isinstance(realistic, (bool, np.bool_)):
        raise ParameterError(f"{robot}: realistic must be true or false, got {realistic!r}")
    unknown = sorted(set(given) - set(EFFECTS))
    if unknown:
        raise UnknownNameError(f"{robot}: unknown plant effect(s) {unknown}; known: {sorted(EFFECTS)}")
    if realistic and robot not in REALISTIC:
        raise ParameterError(f"{robot}: no realistic preset; presets exist for {', '.join(REALISTIC)}")
    preset = REALISTIC[robot] if realistic else {}
    out = {}
    for name, default in EFFECTS.items():
        value = given.get(name)
        value = preset.get(name, default) if value is None else value
        out[name] = _per_joint(robot, name, value, dof)
    return out


def _friction_model(effects: Mapping[str, np.ndarray], n: int) -> JointFriction | None:
    if not any(np.any(effects[k] != 0.0) for k in ("damping", "coulomb", "stribeck")):
        return None
    return JointFriction.make(
        n,
        viscous=effects["damping"],
        coulomb=effects["coulomb"],
        stribeck=effects["stribeck"],
        stribeck_velocity=effects["stribeck_velocity"],
    )


# --------------------------------------------------------------------------------------
# Reading URDFs
# --------------------------------------------------------------------------------------


@contextlib.contextmanager
def _native_stderr(log: list[str]):
    """Send what native code writes to file descriptor 2 (urdfdom's parse errors) to ``log``.

    It replaces fd 2 for the whole process while it runs: the URDF parser is the only
    thing that runs meanwhile on this thread.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no file descriptor 2: leave it alone
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            log.append(tmp.read().decode(errors="replace"))


def _parser_errors(text: str) -> str:
    """urdfdom's ``Error: <message>`` lines, joined (not their ``at line ...`` source locations)."""
    errors = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("Error:"):
            continue
        message = line[len("Error:") :].strip()
        xml = re.match(r"Error=(XML_ERROR_\w+).*?Line number=(\d+)", message)
        if xml:  # tinyxml's code: say what it means
            message = f"not well-formed XML ({xml.group(1)} at line {xml.group(2)})"
        if message and message not in errors:
            errors.append(message)
    return "; ".join(errors[:4])


def _read_urdf(pin, path: Path):
    """``pinocchio.buildModelFromUrdf``, with the parser's own complaints in the LagraxError.

    A URDF the parser complained about is rejected even when Pinocchio built a model from
    it (urdfdom skips, e.g., an inertial whose mass is not a number: silently wrong
    dynamics); its other output (warnings) is passed on to stderr.
    """
    if path.is_dir():
        raise LagraxError(f"URDF path {str(path)!r} is a directory, not a file")
    if not path.is_file():
        raise LagraxError(f"URDF file not found: {str(path)!r}")
    log: list[str] = []
    model, failure = None, ""
    try:
        with _native_stderr(log):
            model = pin.buildModelFromUrdf(str(path))
    except (RuntimeError, ValueError) as e:
        failure = (str(e).strip().splitlines() or [type(e).__name__])[0]
    details = _parser_errors("".join(log))
    if failure or details:
        reason = failure or "the URDF parser reported errors"
        if "does not contain a valid URDF model" in reason:
            reason = "not a valid URDF model"
        raise LagraxError(f"cannot read URDF {str(path)!r}: {reason}" + (f" ({details})" if details else ""))
    if "".join(log).strip():
        sys.stderr.write("".join(log))
    return model


def _reduce(pin, model, locked_joints):
    """The model with ``locked_joints`` removed (locked at 0 or their given positions)."""
    locked = dict(locked_joints) if isinstance(locked_joints, Mapping) else {j: 0.0 for j in locked_joints}
    if not locked:
        return model, locked
    names = list(model.names)[1:]
    q_ref = pin.neutral(model)
    ids = []
    for joint_name, position in locked.items():
        if joint_name not in names:
            raise UnknownNameError.for_name("joint", joint_name, names)
        jid = model.getJointId(joint_name)
        j = model.joints[jid]
        if _joint_type(model, jid) == "continuous":
            q_ref[j.idx_q : j.idx_q + 2] = np.cos(position), np.sin(position)
        else:
            q_ref[j.idx_q : j.idx_q + j.nq] = position
        ids.append(jid)
    return pin.buildReducedModel(model, sorted(ids), q_ref), locked


# --------------------------------------------------------------------------------------
# Factories
# --------------------------------------------------------------------------------------


def urdf(
    path: str | Path,
    locked_joints: Sequence[str] | Mapping[str, float] = (),
    gravity: Sequence[float] = (0.0, 0.0, -9.81),
    name: str | None = None,
    damping: PerJoint | None = None,
    coulomb: PerJoint | None = None,
    stribeck: PerJoint | None = None,
    stribeck_velocity: PerJoint | None = None,
    armature: PerJoint | None = None,
) -> PinocchioRobot:
    """Any URDF robot (fixed base) as a lagrax system, with Pinocchio's dynamics.

    Args:
        path: the URDF file (meshes are not needed).
        locked_joints: joint names to remove from the model, locked at 0 (the neutral
            configuration), or a mapping ``{name: position}``.
        gravity: the gravity vector in the world frame [m/s^2].
        name: the system's name (default: the robot name in the URDF).
        damping, coulomb, stribeck, stribeck_velocity: joint friction (scalar or one per
            joint), ``f = d qd + (c + s exp(-(qd / v)^2)) tanh(qd / eps)`` of
            :class:`~lagrax.core.friction.JointFriction`, added on top of Pinocchio's
            frictionless dynamics; off by default (``stribeck_velocity`` 0.1 rad/s).
        armature: rotor inertia reflected to each joint [kg m^2 or kg], added to the
            diagonal of ``M`` by Pinocchio itself (see the module docstring).

    Joint position, velocity and torque limits come from the URDF; a field is ``None``
    when any joint lacks that limit. Raises :class:`~lagrax.core.errors.LagraxError` for a
    missing or unreadable URDF and :class:`ParameterError` for bad effect values.
    """
    effects = dict(
        damping=damping,
        coulomb=coulomb,
        stribeck=stribeck,
        stribeck_velocity=stribeck_velocity,
        armature=armature,
    )
    return _load(path, locked_joints, gravity, name, effects)


def _load(
    path, locked_joints, gravity, name, effects, realistic=False, description=None, massless=()
) -> PinocchioRobot:
    pin = _pinocchio()
    path = Path(path)
    model = _read_urdf(pin, path)
    model.gravity.linear = np.asarray(gravity, dtype=float).reshape(3)
    for body in massless:
        model.inertias[model.getJointId(body)] = pin.Inertia.Zero()
    model, locked = _reduce(pin, model, locked_joints)

    types = [_joint_type(model, jid) for jid in range(1, model.njoints)]
    continuous = [jid for jid, t in enumerate(types, start=1) if t == "continuous"]
    if model.nv < 1:
        left = f" left after locking {sorted(locked)}" if locked else ""
        raise LagraxError(f"URDF {str(path)!r} has no movable joints{left}")
    name = name or model.name or path.stem
    plant = plant_effects(name, model.nv, effects, realistic)
    # Every supported joint has nv == 1, so lagrax coordinate i is Pinocchio's velocity index i.
    model.armature = plant["armature"]
    joints = [model.joints[jid] for jid in range(1, model.njoints)]
    position_limits = None
    if not continuous:
        position_limits = _limits(model.lowerPositionLimit, model.upperPositionLimit)
    v_idx = np.array([j.idx_v for j in joints])
    info = SystemInfo.make(
        name,
        model.nv,
        joint_names=tuple(model.names)[1:],
        joint_types=["revolute" if t == "continuous" else t for t in types],
        position_limits=position_limits,
        velocity_limits=_positive_limits(model.velocityLimit[v_idx]),
        torque_limits=_positive_limits(model.effortLimit[v_idx]),
        # hashable values: the info is a static pytree field
        params=dict(
            urdf=str(path),
            locked_joints=tuple((k, float(v)) for k, v in locked.items()),
            gravity=tuple(float(x) for x in np.asarray(gravity).reshape(3)),
            realistic=bool(realistic),
            **{k: _hashable(v) for k, v in plant.items()},
        ),
        description=description or f"{name} from {path.name} via Pinocchio ({model.nv} DoF)",
    )
    return PinocchioRobot(
        info=info, robot=PinocchioModel(model, continuous), friction_model=_friction_model(plant, model.nv)
    )


PANDA_FINGERS = ("panda_finger_joint1", "panda_finger_joint2")


def panda(
    fingers: str = "fixed",
    damping: PerJoint | None = None,
    coulomb: PerJoint | None = None,
    stribeck: PerJoint | None = None,
    stribeck_velocity: PerJoint | None = None,
    armature: PerJoint | None = None,
    realistic: bool = False,
) -> PinocchioRobot:
    """Franka Emika Panda, 7 arm joints (example-robot-data's URDF).

    ``fingers="fixed"``: the two finger joints are locked closed, their mass rides on
    the hand; ``"drop"``: the fingers are locked and massless (an arm without gripper
    fingers). Friction and ``armature`` as in :func:`urdf` (off by default);
    ``realistic=True`` sets each one not given to ``REALISTIC["panda"]`` (plausible
    viscous + Coulomb friction and rotor inertia; sources there).
    """
    if fingers not in ("fixed", "drop"):
        raise UnknownNameError.for_name("fingers option", fingers, ("fixed", "drop"))
    effects = dict(
        damping=damping,
        coulomb=coulomb,
        stribeck=stribeck,
        stribeck_velocity=stribeck_velocity,
        armature=armature,
    )
    plant = " with realistic friction and rotor inertia" if realistic is True else ""
    return _load(
        example_robot_data_path("panda_description/urdf/panda.urdf"),
        PANDA_FINGERS,
        (0.0, 0.0, -9.81),
        "panda",
        effects,
        realistic,
        description=f"Franka Emika Panda arm via Pinocchio, fingers {fingers}{plant} (7 DoF)",
        massless=PANDA_FINGERS if fingers == "drop" else (),
    )


def ur5(
    damping: PerJoint | None = None,
    coulomb: PerJoint | None = None,
    stribeck: PerJoint | None = None,
    stribeck_velocity: PerJoint | None = None,
    armature: PerJoint | None = None,
    realistic: bool = False,
) -> PinocchioRobot:
    """Universal Robots UR5, 6 joints (example-robot-data's ``ur5_robot.urdf``).

    Friction and ``armature`` as in :func:`urdf` (off by default); ``realistic=True``
    sets each one not given to ``REALISTIC["ur5"]`` (plausible values; sources there).
    """
    effects = dict(
        damping=damping,
        coulomb=coulomb,
        stribeck=stribeck,
        stribeck_velocity=stribeck_velocity,
        armature=armature,
    )
    plant = " with realistic friction and rotor inertia" if realistic is True else ""
    return _load(
        example_robot_data_path("ur_description/urdf/ur5_robot.urdf"),
        (),
        (0.0, 0.0, -9.81),
        "ur5",
        effects,
        realistic,
        description=f"Universal Robots UR5 arm via Pinocchio{plant} (6 DoF)",
    )


__all__ = [
    "PinocchioModel",
    "PinocchioCore",
    "PinocchioRobot",
    "urdf",
    "panda",
    "ur5",
    "example_robot_data_path",
    "plant_effects",
    "EFFECTS",
    "REALISTIC",
]
