"""MuJoCo (MJCF) models as lagrax systems, with MuJoCo's own algorithms as ground truth.

A :class:`MjcfSystem` is a :class:`~lagrax.systems.StructuredSystem` whose quantities
come from MuJoCo, called from JAX through ``jax.pure_callback`` (so they work under
``jit`` and ``vmap``; a batch of states is one callback that loops over the batch in
numpy, as for the Pinocchio robots):

=======================  ============================================================
``mass_matrix``          ``mj_fullM`` after the position stage (includes armature)
``gravity``              ``qfrc_bias`` at ``qd = 0`` (+ joint springs, see below)
``coriolis``             ``qfrc_bias(q, qd) - qfrc_bias(q, 0)``
``coriolis_matrix``      Christoffel ``C``: column ``j`` is the bilinear form of
                         ``qfrc_bias`` in ``(e_j, qd)``, by polarisation (exact)
``friction``             MuJoCo's joint damping, ``dof_damping * qd`` (pure JAX)
``inverse_dynamics``     ``mj_inverse`` (``qfrc_inverse``)
``forward_dynamics``     ``mj_forward`` with ``qfrc_applied = tau`` (``qacc``)
``potential_energy``     ``mj_energyPos`` (gravity and joint springs)
``kinetic_energy``       ``mj_energyVel``
=======================  ============================================================

**What is modelled.** The system is the chain of the selected 1-DoF (hinge / slide)
joints: by default every hinge and slide joint of the file, actuated or not (an
under-actuated model such as gymnasium's ``inverted_double_pendulum.xml`` keeps its
unactuated hinges; ``info.actuated`` says which joints an actuator drives). Joints are
removed only when the user names the ones to keep (``joints=[...]``): every other joint
is then deleted from the model (its body welded to its parent at the joint's reference
position); free and ball joints are always welded through ``mujoco.MjSpec`` and the model recompiled, so
that stepping and the dynamics describe exactly the selected arm. Actuators, tendons,
sensors, equality constraints and keyframes are removed with them: the joint torques
act directly as ``qfrc_applied`` (actuators only mark the actuated joints and give the
torque limits, ``ctrlrange x gear``). Contacts, joint limits and friction loss are
constraints that make the dynamics non-Lagrangian, so all constraints are disabled
(``mjDSBL_CONSTRAINT``); joint limits remain in :class:`SystemInfo` as the range that
excitation keeps to. Joint springs (``stiffness``) are conservative and folded into the
potential: ``V`` includes ``1/2 k (q - springref)^2`` and ``g`` its gradient. Models
with forces lagrax cannot represent (gravity compensation, fluid forces, tendon springs,
dampers or armature, polynomial springs or dampers) are rejected with a
:class:`~lagrax.core.errors.LagraxError`.

**Derivatives.** First derivatives in forward mode (``jax.jvp``, ``jacfwd``) of ``M``
(``dM[w] = C(q, w) + C(q, w)^T``, exact) and so of ``T``, ``p``, ``L`` and ``E``, and of
``V`` (``g``, also in reverse mode) are defined: enough for the momentum rate ``pdot`` of
the generated ground truth and for the mechanics core's ``C`` and ``dE/dt``. The other
callbacks (``g, c, C``, inverse and forward dynamics) have no derivatives: the learned
models never differentiate the ground truth.

**Data.** :meth:`MjcfSystem.simulate_excitation` steps MuJoCo itself along reference
trajectories (see there); :mod:`lagrax.data.generators.excitation` uses it for every fully
actuated system that has it. A selection with unactuated joints (``info.actuated``
follows the model's joint actuators) takes excitation's torque-driven path instead, which
integrates MuJoCo's forward dynamics with lagrax's own (adaptive, slow through the
callbacks) integrator, not ``mj_step``.

MuJoCo and gymnasium (whose MJCF arms :func:`pusher` and :func:`gymnasium_asset` use)
are the optional extra ``lagrax[mujoco]``; they are imported only when a model is built.
"""

from __future__ import annotations

import copy
import importlib.util
import math
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Scalar

from lagrax.core.errors import LagraxError, NumericalError, UnknownNameError
from lagrax.core.friction import JointFriction
from lagrax.core.mechanics import StructuredTerms
from lagrax.systems.base import LAGRANGIAN_QUANTITIES, Mat, StructuredSystem, SystemInfo, Vec
from lagrax.systems.bridge import (
    Kernel,
    Shape,
    by_jacobians,
    by_tangent,
    engine_call,
    host_function,
    matrix,
    scalar,
    vector,
)

_EXTRA = "pip install 'lagrax[mujoco]'"
#: Internal MuJoCo timestep bound [s] of :meth:`MjcfSystem.simulate_excitation`.
SIMULATION_TIMESTEP = 1e-3
#: Closed-loop bandwidth [rad/s] of the tracking controller (at most half the step rate).
TRACKING_BANDWIDTH = 50.0
PUSHER_GRAVITY = (0.0, 0.0, -9.81)
_PUSHER_ARM = (
    "r_shoulder_pan_joint",
    "r_shoulder_lift_joint",
    "r_upper_arm_roll_joint",
    "r_elbow_flex_joint",
    "r_forearm_roll_joint",
    "r_wrist_flex_joint",
    "r_wrist_roll_joint",
)


class MissingExtraError(LagraxError, ModuleNotFoundError):
    """An optional dependency (the extra ``lagrax[mujoco]``) is not installed."""


def _mujoco():
    try:
        import mujoco
    except ImportError as e:
        raise MissingExtraError(
            f"MJCF systems need the package 'mujoco', which is not installed: {_EXTRA}", name="mujoco"
        ) from e
    return mujoco


def gymnasium_asset(name: str) -> Path:
    """The path of an MJCF file shipped with the installed ``gymnasium`` (e.g. ``"pusher_v5.xml"``).

    Looked up in ``gymnasium/envs/mujoco/assets`` without importing gymnasium.
    """
    spec = importlib.util.find_spec("gymnasium")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError(
            f"gymnasium's MJCF assets need the package 'gymnasium', which is not installed: {_EXTRA}",
            name="gymnasium",
        )
    root = Path(next(iter(spec.submodule_search_locations))) / "envs" / "mujoco" / "assets"
    path = root / name
    if not path.is_file():
        known = sorted(p.name for p in root.glob("*.xml"))
        raise UnknownNameError.for_name("gymnasium MJCF asset", name, known)
    return path


# --------------------------------------------------------------------------------------
# The MuJoCo model, kept out of the pytree
# --------------------------------------------------------------------------------------


class MujocoModel:
    """A compiled ``MjModel`` in a hashable holder (hash and equality by identity).

    It sits in a static field, so a system is still a pytree. Each running callback
    borrows an ``MjData`` workspace from a pool (callbacks may run on XLA's threads at
    once; a thread-local ``MjData`` is freed as XLA tears down the thread's Python state,
    which crashes MuJoCo's bindings). The batched kernels below take ``(B, n)`` arrays
    and loop over the batch in one Python call; the model is only read.
    """

    def __init__(self, model):
        self.model = model
        self.nv = model.nv
        self._pool: list = []
        self._lock = threading.Lock()
        # joint springs, folded into the potential (only hinge and slide joints: qpos = dofs)
        self.stiffness = np.asarray(model.jnt_stiffness, dtype=float).copy()
        self.spring_reference = np.asarray(model.qpos_spring, dtype=float).copy()

    def _loop(self, fn: Callable, *arrays: np.ndarray) -> list[np.ndarray]:
        """``fn(mujoco, model, data, *rows)`` for every sample; outputs stacked per sample."""
        mj, m = _mujoco(), self.model
        with self._lock:
            d = self._pool.pop() if self._pool else None
        d = mj.MjData(m) if d is None else d
        try:
            outs: list[np.ndarray] = []
            for b, rows in enumerate(zip(*arrays)):
                res = fn(mj, m, d, *rows)
                res = res if isinstance(res, tuple) else (res,)
                if not outs:
                    outs = [np.empty((arrays[0].shape[0],) + np.shape(x)) for x in res]
                for o, x in zip(outs, res):
                    o[b] = x  # copies out of the MjData workspace
        finally:
            with self._lock:
                self._pool.append(d)
        return outs

    def springs(self, q: np.ndarray) -> np.ndarray:
        """Joint-spring forces ``k (q - springref)`` that the torques overcome, ``(B, n)``."""
        return self.stiffness * (q - self.spring_reference)

    # ---- batched kernels: (B, n) arrays in, tuples of (B, ...) arrays out --------------
    def mass_matrix(self, q):
        return tuple(self._loop(_mass, q))

    def mass_matrix_tangent(self, q, w):
        """The directional derivative ``dM[w] = C(q, w) + C(q, w)^T`` of ``M`` (``Mdot = C + C^T``)."""

        def one(mj, m, d, qb, wb):
            _position(mj, m, d, qb)
            C = _christoffel(mj, m, d, wb)
            return C + C.T

        return tuple(self._loop(one, q, w))

    def gravity(self, q):
        return (self._loop(_bias_at_rest, q)[0] + self.springs(q),)

    def potential_and_gravity(self, q):
        def one(mj, m, d, qb):
            g = _bias_at_rest(mj, m, d, qb)
            mj.mj_energyPos(m, d)
            return float(d.energy[0]), g

        V, g = self._loop(one, q)
        return V, g + self.springs(q)

    def coriolis(self, q, qd):
        def one(mj, m, d, qb, vb):
            g = _bias_at_rest(mj, m, d, qb)
            return _bias(mj, m, d, vb) - g

        return tuple(self._loop(one, q, qd))

    def coriolis_matrix(self, q, qd):
        def one(mj, m, d, qb, vb):
            _position(mj, m, d, qb)
            return _christoffel(mj, m, d, vb)

        return tuple(self._loop(one, q, qd))

    def terms(self, q, qd):
        """``M, c, g, V`` at each state from one position stage."""

        def one(mj, m, d, qb, vb):
            M = _mass(mj, m, d, qb)
            mj.mj_energyPos(m, d)
            V = float(d.energy[0])
            g = _bias(mj, m, d, np.zeros_like(vb))
            return M, _bias(mj, m, d, vb) - g, g, V

        M, c, g, V = self._loop(one, q, qd)
        return M, c, g + self.springs(q), V

    def kinetic_energy(self, q, qd):
        def one(mj, m, d, qb, vb):
            _position(mj, m, d, qb)
            d.qvel[:] = vb
            mj.mj_energyVel(m, d)
            return float(d.energy[1])

        return tuple(self._loop(one, q, qd))

    def inverse_dynamics(self, q, qd, qdd):
        def one(mj, m, d, qb, vb, ab):
            d.qpos[:], d.qvel[:], d.qacc[:] = qb, vb, ab
            mj.mj_inverse(m, d)
            return d.qfrc_inverse

        return tuple(self._loop(one, q, qd, qdd))

    def forward_dynamics(self, q, qd, tau):
        def one(mj, m, d, qb, vb, tb):
            d.qpos[:], d.qvel[:], d.qfrc_applied[:] = qb, vb, tb
            mj.mj_forward(m, d)
            return d.qacc

        return tuple(self._loop(one, q, qd, tau))


def _position(mj, m, d, q) -> None:
    d.qpos[:] = q
    mj.mj_fwdPosition(m, d)


def _mass(mj, m, d, q) -> np.ndarray:
    _position(mj, m, d, q)
    M = np.zeros((m.nv, m.nv))
    try:
        mj.mj_fullM(m, d, M)  # MuJoCo >= 3.5: (model, data, dst)
    except TypeError:
        mj.mj_fullM(m, M, d.qM)  # earlier: (model, dst, sparse M)
    return M


def _bias(mj, m, d, v) -> np.ndarray:
    """``qfrc_bias = c(q, v) + g_rigid(q)`` at the current position stage and velocity ``v``."""
    d.qvel[:] = v
    mj.mj_comVel(m, d)
    out = np.empty(m.nv)
    mj.mj_rne(m, d, 0, out)
    return out


def _bias_at_rest(mj, m, d, q) -> np.ndarray:
    _position(mj, m, d, q)
    return _bias(mj, m, d, np.zeros(m.nv))


def _christoffel(mj, m, d, v) -> np.ndarray:
    """The Coriolis matrix ``C(q, v)`` of Christoffel symbols at the current position stage.

    ``c(v) = bias(v) - bias(0)`` is a quadratic form ``Gamma(v, v)``; its symmetric bilinear
    form by polarisation is ``Gamma(a, b) = (bias(a + b) - bias(a - b)) / 4`` (gravity
    cancels), and ``C[:, j] = Gamma(e_j, v)``, scaled to a unit ``v`` for conditioning.
    """
    n = m.nv
    C = np.zeros((n, n))
    s = float(np.linalg.norm(v))
    if s == 0.0:
        return C
    u = np.asarray(v, dtype=float) / s
    for j in range(n):
        e = np.zeros(n)
        e[j] = 1.0
        C[:, j] = (_bias(mj, m, d, e + u) - _bias(mj, m, d, e - u)) * (s / 4.0)
    return C


# --------------------------------------------------------------------------------------
# JAX side (see lagrax.systems.bridge)
# --------------------------------------------------------------------------------------

#: ``M(q)``; tangent ``dM[w] = C(q, w) + C(q, w)^T`` from MuJoCo.
_mass_matrix = host_function(
    MujocoModel.mass_matrix,
    [matrix],
    by_tangent(MujocoModel.mass_matrix, [matrix], MujocoModel.mass_matrix_tangent, matrix),
)
#: ``V(q)``; tangent ``g . w``.
_potential_energy = host_function(
    MujocoModel.potential_and_gravity,
    [scalar, vector],
    by_jacobians(MujocoModel.potential_and_gravity, scalar),
)


def _kinetic_energy_jvp(engine, primals, tangents):
    # T = 1/2 qd^T M(q) qd, differentiated through M's own rule
    _, dT = jax.jvp(lambda q, qd: 0.5 * qd @ _mass_matrix(engine, q) @ qd, primals, tangents)
    return _kinetic_energy(engine, *primals), dT


#: ``T(q, qd)``; tangent through ``M``'s rule.
_kinetic_energy = host_function(MujocoModel.kinetic_energy, [scalar], _kinetic_energy_jvp)


def _call(system: "MjcfSystem", kernel: Kernel, shapes: Sequence[Shape], *args: Array) -> Array:
    """The first output of ``system``'s MuJoCo ``kernel`` (no derivative rule)."""
    return engine_call(system.engine, kernel, shapes, *args)[0]


class MjcfSystem(StructuredSystem):
    """A chain of hinge/slide joints of an MJCF model, with MuJoCo's dynamics (see module doc)."""

    engine: MujocoModel = eqx.field(static=True)
    friction_model: JointFriction | None = None

    PROVIDES: ClassVar[frozenset[str]] = LAGRANGIAN_QUANTITIES
    CAPABLE_OF: ClassVar[frozenset[str]] = frozenset({"simulate_excitation"})

    def mass_matrix(self, q: Vec) -> Mat:
        return _mass_matrix(self.engine, q)

    def potential_energy(self, q: Vec) -> Scalar:
        return _potential_energy(self.engine, q)

    def kinetic_energy(self, q: Vec, qd: Vec) -> Scalar:
        return _kinetic_energy(self.engine, q, qd)

    def friction(self, q: Vec, qd: Vec) -> Vec:
        return jnp.zeros_like(qd) if self.friction_model is None else self.friction_model(qd)

    def gravity(self, q: Vec) -> Vec:
        return _call(self, MujocoModel.gravity, [vector], q)

    def coriolis(self, q: Vec, qd: Vec) -> Vec:
        return _call(self, MujocoModel.coriolis, [vector], q, qd)

    def coriolis_matrix(self, q: Vec, qd: Vec) -> Mat:
        return _call(self, MujocoModel.coriolis_matrix, [matrix], q, qd)

    def inverse_dynamics(self, q: Vec, qd: Vec, qdd: Vec) -> Vec:
        return _call(self, MujocoModel.inverse_dynamics, [vector], q, qd, qdd)

    def forward_dynamics(self, q: Vec, qd: Vec, tau: Vec) -> Vec:
        return _call(self, MujocoModel.forward_dynamics, [vector], q, qd, tau)

    def energy_rate(self, q: Vec, qd: Vec, qdd: Vec) -> Scalar:
        # dE/dt = qd . (M qdd + c + g) exactly, for any Lagrangian T - V
        return qd @ (self.inverse_dynamics(q, qd, qdd) - self.friction(q, qd))

    def terms(self, q: Vec, qd: Vec) -> StructuredTerms:
        """``M``, ``c``, ``g`` and ``V`` from one MuJoCo position stage (no forward-mode pass)."""
        M, c, g, V = engine_call(self.engine, MujocoModel.terms, [matrix, vector, vector, scalar], q, qd)
        return StructuredTerms(M, c, g, V)

    @property
    def mujoco_model(self):
        """The compiled, reduced ``mujoco.MjModel`` (constraints disabled; do not modify it)."""
        return self.engine.model

    def simulate_excitation(
        self,
        ts: np.ndarray,
        q_ref: np.ndarray,
        qd_ref: np.ndarray,
        qdd_ref: np.ndarray,
        progress: Callable[[str], None] | None = None,
    ) -> dict[str, Any]:
        """Track reference trajectories by stepping MuJoCo; record what happened.

        Args:
            ts: the sample times ``(T,)``, equally spaced by ``dt``.
            q_ref, qd_ref, qdd_ref: references ``(B, T, n)`` on that grid.
            progress: optional ``callback(message)``, called per trajectory.

        Each trajectory starts at the reference's initial state. MuJoCo steps it
        (``mj_step``, RK4 integrator, timestep ``dt / ceil(dt / SIMULATION_TIMESTEP)``,
        1 ms at most) under a computed-torque controller evaluated at every step:
        ``tau = mj_inverse(q, qd, qdd_r + kp (q_r - q) + kd (qd_r - qd))``, ``kp = w^2``,
        ``kd = 2 w``, ``w = TRACKING_BANDWIDTH`` (at most half the step rate), with the
        reference between samples interpolated by quintic Hermite polynomials through
        the samples' ``q, qd, qdd``; the torque is held over each step. Recorded per
        sample: the state ``q, qd``, the torque ``tau`` applied from there, and ``qdd =
        qacc`` from ``mj_forward`` at exactly that state and torque, so ``tau =
        inverse_dynamics(q, qd, qdd)`` holds per sample to rounding. The largest
        deviation from the reference is reported in ``settings``.

        Returns ``dict(q, qd, qdd, tau)`` of ``(B, T, n)`` arrays and ``settings``.
        """
        return _track(self, np.asarray(ts, float), q_ref, qd_ref, qdd_ref, progress)


def _fine_reference(q, qd, qdd, dt: float, substeps: int) -> tuple[np.ndarray, ...]:
    """References ``(T-1, substeps, n)`` at the internal steps of each sample period.

    Quintic Hermite interpolation of one trajectory's samples ``(T, n)``: on each period the
    polynomial that matches ``q, qd, qdd`` at both ends (exact for the reference's own
    smooth series up to ``O(dt^6)``); ``q, qd`` at the start of each step and ``qdd`` at
    its middle (the feedforward of a torque held over the step).
    """
    c0, c1, c2 = q[:-1], qd[:-1] * dt, qdd[:-1] * dt**2 / 2
    gap = q[1:] - c0 - c1 - c2
    slope = qd[1:] * dt - c1 - 2 * c2
    curve = qdd[1:] * dt**2 - 2 * c2
    c3 = 10 * gap - 4 * slope + curve / 2
    c4 = -15 * gap + 7 * slope - curve
    c5 = 6 * gap - 3 * slope + curve / 2
    coef = np.stack([c0, c1, c2, c3, c4, c5], axis=1)  # (T-1, 6, n)
    s = np.arange(substeps)[:, None] / substeps
    mid = s + 0.5 / substeps
    i = np.arange(6)
    powers = s**i  # (substeps, 6)
    d1 = np.where(i >= 1, i * s ** np.maximum(i - 1, 0), 0.0) / dt
    # the acceleration at the middle of each step: the torque is held over the step
    d2 = np.where(i >= 2, i * (i - 1) * mid ** np.maximum(i - 2, 0), 0.0) / dt**2
    return tuple(np.einsum("sj,tjn->tsn", basis, coef) for basis in (powers, d1, d2))


def _track_one(mj, m, refs, substeps: int, kp: float, kd: float) -> tuple[np.ndarray, ...]:
    """One trajectory: ``q, qd, qdd, tau`` ``(T, n)`` at the samples of references ``(T, n)``."""
    q_ref, qd_ref, qdd_ref = refs
    T, n = q_ref.shape
    dt = m.opt.timestep * substeps
    fine = _fine_reference(q_ref, qd_ref, qdd_ref, dt, substeps)
    out = tuple(np.empty((T, n)) for _ in range(4))
    d = mj.MjData(m)
    d.qpos[:], d.qvel[:] = q_ref[0], qd_ref[0]
    for k in range(T):
        # the last sample has no period after it: its reference is the sample itself
        r = (q_ref[k : k + 1], qd_ref[k : k + 1], qdd_ref[k : k + 1]) if k + 1 == T else (x[k] for x in fine)
        for j, (qr, vr, ar) in enumerate(zip(*r)):
            d.qacc[:] = ar + kp * (qr - d.qpos) + kd * (vr - d.qvel)
            mj.mj_inverse(m, d)
            d.qfrc_applied[:] = d.qfrc_inverse
            if j == 0:  # a sample: the state, the torque and qacc at exactly those
                mj.mj_forward(m, d)
                out[0][k], out[1][k], out[2][k], out[3][k] = d.qpos, d.qvel, d.qacc, d.qfrc_applied
                if k + 1 == T:
                    break
            mj.mj_step(m, d)
    return out


def _track(system: MjcfSystem, ts, q_ref, qd_ref, qdd_ref, progress) -> dict[str, Any]:
    """The tracking loop of :meth:`MjcfSystem.simulate_excitation` (one MjData per trajectory)."""
    mj = _mujoco()
    refs = [np.asarray(x, dtype=np.float64) for x in (q_ref, qd_ref, qdd_ref)]
    B, T, n = refs[0].shape
    dt = float(ts[1] - ts[0])
    substeps = max(1, math.ceil(dt / SIMULATION_TIMESTEP - 1e-9))
    w = min(TRACKING_BANDWIDTH, 0.5 * substeps / dt)
    m = copy.copy(system.engine.model)  # the shared model stays as it is
    m.opt.timestep = dt / substeps
    m.opt.integrator = mj.mjtIntegrator.mjINT_RK4
    parts = []
    for b in range(B):
        if progress is not None:
            progress(f"stepping MuJoCo: trajectory {b + 1} of {B}")
        parts.append(_track_one(mj, m, [x[b] for x in refs], substeps, w**2, 2.0 * w))
    out: dict[str, Any] = {
        k: np.stack([p[i] for p in parts]) for i, k in enumerate(("q", "qd", "qdd", "tau"))
    }
    if not all(np.all(np.isfinite(v)) for v in out.values()):
        raise NumericalError(f"{system.info.name}: the MuJoCo simulation diverged (non-finite states)")
    out["settings"] = dict(
        engine=f"MuJoCo {mj.__version__}",
        integrator="RK4",
        timestep=dt / substeps,
        controller="computed torque (mj_inverse) + PD at every MuJoCo step",
        tracking_bandwidth=w,
        max_tracking_error=float(np.max(np.abs(out["q"] - refs[0]))),
    )
    return out


# --------------------------------------------------------------------------------------
# Loading and reducing a model
# --------------------------------------------------------------------------------------


def _one_line(error: Exception) -> str:
    return "; ".join(part.strip() for part in str(error).splitlines() if part.strip())


def _read(path: Path):
    """The parsed spec and the compiled full model, or a LagraxError with MuJoCo's message."""
    mj = _mujoco()
    if not path.is_file():
        raise LagraxError(f"MJCF file not found: {str(path)!r}")
    try:
        spec = mj.MjSpec.from_file(str(path))
        return spec, spec.compile()
    except ValueError as e:
        raise LagraxError(f"cannot read MJCF {str(path)!r}: {_one_line(e)}") from e


def _joint_name(m, j: int) -> str:
    return m.joint(j).name or f"joint{j}"


def _driven(mj, m0) -> dict[int, list[int]]:
    """Joint id -> the actuators with a joint transmission on it."""
    joint_trn = {int(mj.mjtTrn.mjTRN_JOINT), int(mj.mjtTrn.mjTRN_JOINTINPARENT)}
    out: dict[int, list[int]] = {}
    for a in range(m0.nu):
        if int(m0.actuator_trntype[a]) in joint_trn:
            out.setdefault(int(m0.actuator_trnid[a, 0]), []).append(a)
    return out


def _select(mj, m0, joints, path: Path) -> list[int]:
    """Ids (in the full model) of the joints to keep, in the model's order."""
    one_dof = {int(mj.mjtJoint.mjJNT_HINGE), int(mj.mjtJoint.mjJNT_SLIDE)}
    names = [_joint_name(m0, j) for j in range(m0.njnt)]
    if joints is None:
        # every hinge and slide joint, actuated or not: welding an unactuated pendulum hinge
        # would silently remove the physics of an under-actuated system
        keep = [j for j in range(m0.njnt) if int(m0.jnt_type[j]) in one_dof]
        if not keep:
            raise LagraxError(
                f"MJCF {str(path)!r} has no hinge or slide joint (free and ball joints are not "
                "supported); lagrax MJCF systems are chains of hinge and slide joints"
            )
        return keep
    if isinstance(joints, str):
        joints = [j.strip() for j in joints.split(",") if j.strip()]
    keep = []
    for name in joints:
        if name not in names:
            raise UnknownNameError.for_name("joint", name, [n for n in names if n])
        j = names.index(name)
        if int(m0.jnt_type[j]) not in one_dof:
            kind = mj.mjtJoint(int(m0.jnt_type[j])).name.removeprefix("mjJNT_").lower()
            raise LagraxError(
                f"joint {name!r} is a {kind} joint; lagrax MJCF systems support hinge and slide "
                "joints only (leave it out of joints=[...] to weld it)"
            )
        keep.append(j)
    if not keep:
        raise LagraxError("joints=[...] is empty; name at least one hinge or slide joint")
    return sorted(set(keep))


def _reduce(mj, spec, m0, keep: list[int]):
    """Recompile ``spec`` without the other joints and with everything that refers to them."""
    kept = {_joint_name(m0, j) for j in keep}
    if np.any(m0.tendon_stiffness) or np.any(m0.tendon_damping) or np.any(m0.tendon_armature):
        raise LagraxError("MJCF tendons with stiffness, damping or armature are not supported")
    for group in ("actuators", "sensors", "tendons", "equalities", "keys"):
        for element in list(getattr(spec, group)):
            spec.delete(element)
    for joint in list(spec.joints):
        if joint.name not in kept:
            spec.delete(joint)
    try:
        return spec.compile()
    except ValueError as e:
        raise LagraxError(f"cannot reduce the MJCF model to joints {sorted(kept)}: {_one_line(e)}") from e


def _check_supported(m, path: Path) -> None:
    """Reject what the Lagrangian form cannot represent (see the module docstring)."""
    unsupported = {
        "gravity compensation (gravcomp)": np.any(m.body_gravcomp),
        "fluid forces (density or viscosity)": m.opt.density != 0 or m.opt.viscosity != 0,
        "polynomial damping (dampingpoly)": np.any(getattr(m, "dof_dampingpoly", 0.0)),
        "polynomial springs (stiffnesspoly)": np.any(getattr(m, "jnt_stiffnesspoly", 0.0)),
        "spring yield (springyield)": np.any(getattr(m, "jnt_springyield", 0.0)),
        "flexes": m.nflex > 0,
    }
    bad = [what for what, present in unsupported.items() if present]
    if bad:
        raise LagraxError(
            f"MJCF {str(path)!r} has {', '.join(bad)}, which lagrax MJCF systems do not support"
        )


def _gravity_vector(gravity) -> np.ndarray:
    """A 3-vector from a sequence or a string ``"0,0,-9.81"`` (the command line's form)."""
    try:
        if isinstance(gravity, str):
            gravity = [float(x) for x in gravity.replace(",", " ").split()]
        g = np.asarray(gravity, dtype=float)
    except (TypeError, ValueError):
        g = np.array([])
    if g.shape != (3,) or not np.all(np.isfinite(g)):
        raise LagraxError(f"gravity must be 3 finite numbers (x, y, z), e.g. '0,0,-9.81'; got {gravity!r}")
    return g


def _limits(mj, m0, keep: list[int]) -> tuple[Any, Any]:
    """Position limits from ``jnt_range`` and torque limits from the actuators (inf where none)."""
    pos = [tuple(m0.jnt_range[j]) if m0.jnt_limited[j] else (-math.inf, math.inf) for j in keep]
    driven = _driven(mj, m0)
    torque = []
    for j in keep:
        total = 0.0
        for a in driven.get(j, []):
            limit = math.inf
            if m0.actuator_ctrllimited[a]:
                limit = float(np.max(np.abs(m0.actuator_ctrlrange[a])) * abs(m0.actuator_gear[a, 0]))
            if m0.actuator_forcelimited[a]:
                limit = min(limit, float(np.max(np.abs(m0.actuator_forcerange[a]))))
            total += limit
        torque.append(total if driven.get(j) else math.inf)
    position_limits = pos if any(m0.jnt_limited[j] for j in keep) else None
    torque_limits = torque if any(math.isfinite(t) for t in torque) else None
    return position_limits, torque_limits


def _build(path, joints=None, gravity=None, name=None, description=None, params=None) -> MjcfSystem:
    mj = _mujoco()
    path = Path(str(path)).expanduser()
    spec, m0 = _read(path)
    keep = _select(mj, m0, joints, path)
    selected = tuple(_joint_name(m0, j) for j in keep)
    m = _reduce(mj, spec, m0, keep)
    if tuple(_joint_name(m, j) for j in range(m.njnt)) != selected or m.nq != m.nv:
        raise LagraxError(f"reducing MJCF {str(path)!r} to joints {list(selected)} changed their order")
    _check_supported(m, path)
    if gravity is not None:
        m.opt.gravity[:] = _gravity_vector(gravity)
    m.opt.disableflags |= int(mj.mjtDisableBit.mjDSBL_CONSTRAINT) | int(mj.mjtDisableBit.mjDSBL_ACTUATION)
    m.opt.enableflags |= int(mj.mjtEnableBit.mjENBL_ENERGY)
    position_limits, torque_limits = _limits(mj, m0, keep)
    model_name = spec.modelname if spec.modelname not in ("", "MuJoCo Model") else path.stem
    name = name or model_name
    g = tuple(float(x) for x in m.opt.gravity)
    hinge = int(mj.mjtJoint.mjJNT_HINGE)
    driven = set(_driven(mj, m0))
    info = SystemInfo.make(
        name,
        m.nv,
        joint_names=selected,
        joint_types=["revolute" if int(m.jnt_type[j]) == hinge else "prismatic" for j in range(m.njnt)],
        actuated=[j in driven for j in keep],
        position_limits=position_limits,
        torque_limits=torque_limits,
        params=params if params is not None else dict(path=str(path), joints=selected, gravity=g),
        description=description
        or _describe(name, path, mj.__version__, selected, [_joint_name(m0, j) for j in keep if j in driven]),
    )
    damping = np.asarray(m.dof_damping, dtype=float)
    friction = JointFriction.make(m.nv, viscous=damping) if np.any(damping) else None
    return MjcfSystem(info=info, engine=MujocoModel(m), friction_model=friction)


def _describe(name: str, path: Path, version: str, selected: Sequence[str], driven_names: list[str]) -> str:
    """``"NAME from FILE via MuJoCo V (3 DoF, actuated: slider; unactuated: hinge, hinge2)"``."""
    free = [j for j in selected if j not in driven_names]
    actuation = f"actuated: {', '.join(driven_names) or 'none'}"
    if free:
        actuation += f"; unactuated: {', '.join(free)}"
    return f"{name} from {path.name} via MuJoCo {version} ({len(selected)} DoF, {actuation})"


def mjcf(
    path: str | Path,
    joints: Sequence[str] | str | None = None,
    gravity: Sequence[float] | str | None = None,
    name: str | None = None,
) -> MjcfSystem:
    """Any MJCF model (a chain of hinge/slide joints) as a lagrax system, with MuJoCo's dynamics.

    Args:
        path: the MJCF file (meshes it names must be found relative to it).
        joints: the joints to keep, by name (a list, or a comma-separated string); default:
            every hinge and slide joint, actuated or not (``info.actuated`` marks the ones an
            actuator drives, as for ``cartpole``). Joints not named are deleted (welded at
            their reference position), as are free and ball joints always. Coordinates follow
            the model's order.
        gravity: the gravity vector [m/s^2] (3 numbers, or a string ``"0,0,-9.81"``);
            default: the file's ``<option gravity>``.
        name: the system's name (default: the model name in the file, else the file name).

    Constraints (contacts, joint limits, friction loss) are disabled and joint springs
    folded into the potential (see :mod:`lagrax.systems.mjcf`). Position limits come from
    ``jnt_range`` (``+-inf`` for an unlimited joint), torque limits from the driving
    actuators' ``ctrlrange x gear`` (and ``forcerange``).
    """
    return _build(path, joints, gravity, name)


def pusher(gravity: Sequence[float] | str = PUSHER_GRAVITY) -> MjcfSystem:
    """The 7-DoF arm of gymnasium's Pusher-v5 (``pusher_v5.xml``), object and goal joints removed.

    Armature 0.04 and damping 1.0 / 0.1 from the file. The file itself has gravity off
    (``gravity="0 0 0"``); this system defaults to ``(0, 0, -9.81)`` so that the arm has
    gravity forces to learn (pass ``gravity="0,0,0"`` for the file's value). The torque
    limits are the file's (``ctrlrange`` 2 N m, for the weightless arm); excitation does
    not keep to them, and under gravity the arm needs about 12 N m.
    """
    g = tuple(float(x) for x in _gravity_vector(gravity))
    return _build(
        gymnasium_asset("pusher_v5.xml"),
        _PUSHER_ARM,
        g,
        "pusher",
        description=f"gymnasium Pusher's 7-DoF arm via MuJoCo, object and goal joints removed, gravity {g}",
        params=dict(gravity=g),
    )


def inverted_double_pendulum() -> MjcfSystem:
    """gymnasium's ``inverted_double_pendulum.xml``: a cart (``slider``, driven, 500 N) with two
    unactuated hinges (``hinge``, ``hinge2``: the second relative to the first; ``0`` upright).

    Every joint kept (issue 25: the hinges are the system's physics); MuJoCo's joint damping
    0.05 from the file; the joint limits (the slider's +-1 m) are reported, not enforced.
    """
    path = gymnasium_asset("inverted_double_pendulum.xml")
    return _build(path, name="inverted_double_pendulum", params={})


__all__ = [
    "MjcfSystem",
    "MujocoModel",
    "MissingExtraError",
    "gymnasium_asset",
    "inverted_double_pendulum",
    "mjcf",
    "pusher",
]
