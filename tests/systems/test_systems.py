"""The textbook ground-truth systems: structure, conservation laws and closed forms.

Every property is checked on every system it applies to: mass matrices are SPD,
``Mdot - 2C`` is skew with the Christoffel ``C``, inverse and forward dynamics are
each other's inverse, passive rollouts conserve energy, actuated ones obey the power
balance. Closed forms pin each system to its textbook equations of motion.
"""

import functools
import math
import subprocess
import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.integrate import simpson

import lagrax
from lagrax.core.errors import LagraxError, NotProvidedError, ShapeError, UnknownNameError
from lagrax.systems.rollout import simulate
from lagrax.systems import SystemInfo
from lagrax.systems.parameters import ParameterError
from lagrax.systems.batching import batched

pytestmark = pytest.mark.usefixtures("cheap_compilation")  # compiling is most of their time

# name -> (registry name, parameters). Conservative versions (no friction).
SYSTEMS = {
    "pendulum": ("pendulum", {}),
    "double_pendulum": ("double_pendulum", {}),
    "two_link_arm": ("two_link_arm", {}),
    "cartpole": ("cartpole", {}),
    "furuta": ("furuta", {}),
    "charged_particle": ("charged_particle", dict(m=1.5, e=0.5, B=2.0)),
    "relativistic_particle": ("relativistic_particle", {}),
    "relativistic_particle_3d": ("relativistic_particle", dict(dim=3, k=1.0, m=2.0, c=1.5)),
    "relativistic_particle_lnn": ("relativistic_particle", dict(variant="lnn", g=-2.0)),
}
STRUCTURED = ["pendulum", "double_pendulum", "two_link_arm", "cartpole", "furuta"]
ALL = list(SYSTEMS)


def make(key, **extra):
    name, params = SYSTEMS[key]
    return lagrax.system(name, **{**params, **extra})


def _bounds(system):
    """Sampling boxes for q and qd: the position limits (or +-pi / +-1) and speeds below c."""
    info = system.info
    q_lo, q_hi, v_max = [], [], []
    for i, kind in enumerate(info.joint_types):
        if info.position_limits is not None:
            lo, hi = info.position_limits[i]
        else:
            lo, hi = (-math.pi, math.pi) if kind == "revolute" else (-1.0, 1.0)
        q_lo.append(lo)
        q_hi.append(hi)
        if info.velocity_limits is not None:  # keep |qd| < c in every dimension count
            v_max.append(0.95 * info.velocity_limits[i] / math.sqrt(info.dof))
        else:
            v_max.append(3.0)
    return np.array(q_lo), np.array(q_hi), np.array(v_max)


def random_states(system, seed, batch=16):
    rng = np.random.default_rng(seed)
    q_lo, q_hi, v_max = _bounds(system)
    q = rng.uniform(q_lo, q_hi, size=(batch, system.dof))
    qd = rng.uniform(-v_max, v_max, size=(batch, system.dof))
    return q, qd


unit = st.floats(0.0, 1.0)


def state_from_unit(system, u):
    """Map a point of the unit cube (hypothesis) to a state inside the sampling boxes."""
    q_lo, q_hi, v_max = _bounds(system)
    n = system.dof
    u = np.asarray(u)
    return q_lo + (q_hi - q_lo) * u[:n], v_max * (2 * u[n:] - 1)


# --------------------------------------------------------------------------------------
# Metadata
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ALL)
def test_info_is_complete_and_roundtrips(key):
    s = make(key)
    info = s.info
    assert info.dof == len(info.joint_names) == len(info.joint_types) == len(info.actuated)
    assert info.description
    assert SystemInfo.from_json(info.to_json()) == info
    assert s.actuation_matrix().shape == (s.dof, sum(info.actuated))


def test_underactuated_systems_drive_only_their_first_joint():
    for name in ("cartpole", "furuta"):
        s = lagrax.system(name)
        assert s.info.actuated == (True, False)
        np.testing.assert_array_equal(s.actuation_matrix(), [[1.0], [0.0]])
    assert lagrax.system("cartpole").info.joint_types == ("prismatic", "revolute")
    assert lagrax.system("charged_particle").info.joint_types == ("prismatic", "prismatic")
    rp = lagrax.system("relativistic_particle", c=2.0)
    assert rp.info.joint_types == ("prismatic",) and rp.info.velocity_limits == (2.0,)


# --------------------------------------------------------------------------------------
# Structure
# --------------------------------------------------------------------------------------


@eqx.filter_jit
def _hessian(system, q, qd):
    return system.mass_matrix(q, qd)


@pytest.mark.parametrize("key", ALL)
@given(u=st.lists(unit, min_size=6, max_size=6))
def test_mass_matrix_is_symmetric_positive_definite(key, u):
    s = make(key)
    q, qd = state_from_unit(s, u[: 2 * s.dof])
    if isinstance(s, lagrax.systems.LagrangianSystem):
        M = _hessian(s, jnp.asarray(q), jnp.asarray(qd))  # at the state: it depends on the velocity
    else:
        M = batched(s).mass_matrix(q)
    M = np.asarray(M)
    np.testing.assert_allclose(M, M.T, atol=1e-14)
    assert np.linalg.eigvalsh(M).min() > 0


@pytest.mark.parametrize("key", STRUCTURED)
def test_christoffel_coriolis_matrix(key):
    """``C qd = c`` and ``Mdot - 2C`` is skew-symmetric (passivity)."""
    s = make(key)
    q, qd = random_states(s, seed=1)
    C = np.asarray(batched(s).coriolis_matrix(q, qd))
    np.testing.assert_allclose(np.einsum("bij,bj->bi", C, qd), batched(s).coriolis(q, qd), atol=1e-12)
    Mdot = np.asarray(jax.vmap(lambda q_, v_: jax.jvp(s.mass_matrix, (q_,), (v_,))[1])(q, qd))
    N = Mdot - 2 * C
    np.testing.assert_allclose(N, -np.swapaxes(N, -1, -2), atol=1e-12)
    if key != "pendulum":  # M(q) varies, so N is not trivially zero: the test has teeth
        assert np.abs(N).max() > 1e-6


def test_coriolis_matrix_not_provided_for_general_lagrangians():
    with pytest.raises(NotProvidedError, match="Coriolis matrix"):
        batched(lagrax.system("charged_particle")).coriolis_matrix(np.zeros(2), np.ones(2))


@pytest.mark.parametrize("key", ALL)
def test_inverse_dynamics_inverts_forward_dynamics(key):
    s = make(key)
    q, qd = random_states(s, seed=2)
    tau = (
        np.random.default_rng(3).normal(size=q.shape)
        * np.asarray(batched(s).mass_matrix(q)).max(axis=(-1, -2))[:, None]
    )
    qdd = batched(s).forward_dynamics(q, qd, tau)
    np.testing.assert_allclose(batched(s).inverse_dynamics(q, qd, qdd), tau, rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------------------------
# Conservation laws along rollouts
# --------------------------------------------------------------------------------------

INITIAL = {
    "pendulum": ([1.0], [0.5]),
    "double_pendulum": ([1.0, -0.5], [0.3, 0.2]),
    "two_link_arm": ([-0.5, 1.5], [0.5, -0.5]),
    "cartpole": ([0.0, 2.0], [0.3, 1.0]),
    "furuta": ([0.5, 2.0], [3.0, -5.0]),
    "charged_particle": ([0.0, 0.0], [0.8, 0.0]),
    "relativistic_particle": ([0.0], [0.5]),
    "relativistic_particle_3d": ([0.2, 0.0, 0.1], [0.3, 0.5, -0.2]),
    "relativistic_particle_lnn": ([0.0], [0.3]),
}

# One rollout per system serves the conservation and power tests (each simulate call
# compiles): passive for T_PASSIVE seconds, a few save points; then a sinusoidal input
# on the actuated joints, densely saved for the quadrature of the power.
T_PASSIVE, N_PASSIVE = 10.0, 5
TS = np.concatenate(
    [np.linspace(0.0, T_PASSIVE, N_PASSIVE), np.linspace(T_PASSIVE, T_PASSIVE + 2.0, 801)[1:]]
)


def input_schedule(system, q0):
    """``tau(t) = B u(t)``: zero until T_PASSIVE, then ``u_k = a_k sin(3 k (t - T_PASSIVE))``."""
    B = jnp.asarray(system.actuation_matrix())
    m = B.shape[1]
    # torques of the size that matters for this system
    amp = float(np.asarray(batched(system).mass_matrix(np.asarray(q0, float))).max()) * jnp.arange(1.0, m + 1)
    k = jnp.arange(1.0, m + 1)

    def tau(t, q, qd):
        return jnp.where(t > T_PASSIVE, B @ (amp * jnp.sin(3.0 * k * (t - T_PASSIVE))), 0.0)

    return tau


@functools.lru_cache(maxsize=None)
def rollout(key):
    s = make(key)
    q0, qd0 = INITIAL[key]
    tau = input_schedule(s, q0)
    return s, tau, simulate(s, q0, qd0, TS, tau=tau, solver="dopri8", rtol=1e-12, atol=1e-12)


def energy_scale(s, q, qd):
    """Size of the energies exchanged along a rollout, for a relative drift."""
    return float(
        np.max(np.abs(batched(s).kinetic_energy(q, qd))) + np.max(np.abs(batched(s).potential_energy(q)))
    )


@pytest.mark.parametrize("key", ALL)
def test_passive_rollout_conserves_energy(key):
    s, _, r = rollout(key)
    q, qd = r.q[:N_PASSIVE], r.qd[:N_PASSIVE]
    E = np.asarray(batched(s).energy(q, qd))
    assert np.all(np.isfinite(E))
    drift = np.max(np.abs(E - E[0])) / energy_scale(s, q, qd)
    assert drift < 1e-8, drift
    assert np.abs(np.asarray(q[-1] - q[0])).max() > 1e-2  # it moved


@pytest.mark.parametrize("key", ALL)
def test_power_balance_under_actuation(key):
    """``E(T) - E(T_PASSIVE)`` equals the work ``int qd . tau dt`` (Simpson on the save grid)."""
    s, tau, r = rollout(key)
    ts, q, qd = TS[N_PASSIVE - 1 :], r.q[N_PASSIVE - 1 :], r.qd[N_PASSIVE - 1 :]
    power = np.sum(np.asarray(qd) * np.asarray(jax.vmap(tau)(ts, q, qd)), axis=-1)
    E = np.asarray(batched(s).energy(q, qd))
    work = simpson(power, x=ts)
    scale = energy_scale(s, q, qd)
    assert abs(work) > 1e-4 * scale  # the input really did work
    np.testing.assert_allclose(E[-1] - E[0], work, rtol=1e-6, atol=1e-9 * scale)


def test_friction_dissipates_along_the_motion():
    """With the Quanser damping on, ``dE/dt = qd . (tau - friction)`` and friction only removes energy."""
    for s in (lagrax.system("cartpole", damping=True), lagrax.system("furuta", damping=True)):
        q, qd = random_states(s, seed=4)
        tau = np.random.default_rng(5).normal(size=q.shape) * 0.01
        f = np.asarray(batched(s).friction(q, qd))
        assert np.all(np.sum(f * qd, axis=-1) > 0)
        qdd = batched(s).forward_dynamics(q, qd, tau)
        np.testing.assert_allclose(batched(s).inverse_dynamics(q, qd, qdd), tau, atol=1e-12)
        # the energy rate from the model's own energy function, by autodiff
        Edot = jax.vmap(lambda q_, v_, a_: jax.jvp(s.energy, (q_, v_), (v_, a_))[1])(q, qd, qdd)
        np.testing.assert_allclose(Edot, np.sum(qd * (tau - f), -1), atol=1e-10)
    np.testing.assert_allclose(
        batched(lagrax.system("furuta", damping=True)).friction(np.zeros(2), np.array([2.0, -3.0])),
        [0.0015 * 2, -0.0005 * 3],
    )


# --------------------------------------------------------------------------------------
# Closed forms
# --------------------------------------------------------------------------------------


def test_two_link_arm_reproduces_the_delan_dataset(character_file):
    d = np.load(character_file)
    arm = lagrax.system("two_link_arm")
    np.testing.assert_allclose(batched(arm).mass_matrix(d["qp"]), d["mass_matrix"], atol=1e-10)
    np.testing.assert_allclose(batched(arm).gravity(d["qp"]), d["g"], atol=1e-10)
    np.testing.assert_allclose(batched(arm).coriolis(d["qp"], d["qv"]), d["c"], atol=1e-10)
    np.testing.assert_allclose(batched(arm).inverse_dynamics(d["qp"], d["qv"], d["qa"]), d["tau"], atol=1e-10)


@given(u=st.lists(unit, min_size=4, max_size=4))
def test_two_link_arm_matches_textbook_equations(u):
    p = dict(m1=1.3, m2=0.8, l1=0.9, l2=0.7, lc1=0.4, lc2=0.3, I1=0.05, I2=0.02, g=9.81)
    arm = lagrax.system("two_link_arm", **p)
    (q1, q2), (v1, v2) = state_from_unit(arm, u)
    a = p["I1"] + p["I2"] + p["m1"] * p["lc1"] ** 2 + p["m2"] * (p["l1"] ** 2 + p["lc2"] ** 2)
    b = p["m2"] * p["l1"] * p["lc2"]
    c = p["I2"] + p["m2"] * p["lc2"] ** 2
    M = [[a + 2 * b * np.cos(q2), c + b * np.cos(q2)], [c + b * np.cos(q2), c]]
    cor = [-b * np.sin(q2) * (2 * v1 * v2 + v2**2), b * np.sin(q2) * v1**2]
    g1, g2 = (p["m1"] * p["lc1"] + p["m2"] * p["l1"]) * p["g"], p["m2"] * p["lc2"] * p["g"]
    grav = [g1 * np.cos(q1) + g2 * np.cos(q1 + q2), g2 * np.cos(q1 + q2)]
    q, qd = np.array([q1, q2]), np.array([v1, v2])
    np.testing.assert_allclose(batched(arm).mass_matrix(q), M, atol=1e-12)
    np.testing.assert_allclose(batched(arm).coriolis(q, qd), cor, atol=1e-12)
    np.testing.assert_allclose(batched(arm).gravity(q), grav, atol=1e-12)


def test_two_link_arm_kinematics():
    arm = lagrax.system("two_link_arm", l1=0.8, l2=0.5)
    assert (arm.l1, arm.l2) == (0.8, 0.5)
    np.testing.assert_allclose(
        arm.forward_kinematics(np.array([np.pi / 2, -np.pi / 2])), [0.5, 0.8], atol=1e-12
    )
    q, _ = random_states(arm, seed=6, batch=64)
    xy = arm.forward_kinematics(q.reshape(4, 16, 2))
    assert xy.shape == (4, 16, 2)
    for elbow, sign in (("down", 1), ("up", -1)):
        q_ik = arm.inverse_kinematics(xy, elbow=elbow)
        assert np.all(sign * np.asarray(q_ik[..., 1]) >= 0)
        np.testing.assert_allclose(arm.forward_kinematics(q_ik), xy, atol=1e-10)
    down = q[:, 1] > 0  # the branch that generated the point is recovered exactly (up to 2 pi)
    q_down = np.asarray(arm.inverse_kinematics(arm.forward_kinematics(q[down])))
    np.testing.assert_allclose(np.angle(np.exp(1j * (q_down - q[down]))), 0.0, atol=1e-9)
    with pytest.raises(LagraxError, match="out of reach"):
        arm.inverse_kinematics(np.array([[0.5, 0.5], [1.4, 0.0]]))
    with pytest.raises(LagraxError, match="out of reach"):
        arm.inverse_kinematics(np.array([0.1, 0.0]))  # inside the inner radius |l1 - l2|
    with pytest.raises(UnknownNameError):
        arm.inverse_kinematics(np.array([0.5, 0.5]), elbow="left")


@given(u=st.lists(unit, min_size=5, max_size=5))
def test_cartpole_matches_textbook_accelerations(u):
    mc, mp, l, J, g = 0.8, 0.2, 0.4, 0.01, 9.81
    cp = lagrax.system("cartpole", mc=mc, mp=mp, l=l, J=J, g=g)
    (x, th), (xd, thd) = state_from_unit(cp, u[:4])
    F = 10 * (2 * u[4] - 1)
    s_, c_ = np.sin(th), np.cos(th)
    det = (mc + mp) * (J + mp * l**2) - (mp * l * c_) ** 2
    rhs = F + mp * l * s_ * thd**2
    xdd = ((J + mp * l**2) * rhs + mp**2 * l**2 * g * s_ * c_) / det
    thdd = -(mp * l * c_ * rhs + (mc + mp) * mp * g * l * s_) / det
    got = batched(cp).forward_dynamics(np.array([x, th]), np.array([xd, thd]), np.array([F, 0.0]))
    np.testing.assert_allclose(got, [xdd, thdd], rtol=1e-10, atol=1e-10)


@given(u=st.lists(unit, min_size=5, max_size=5))
def test_furuta_matches_quanser_workbook_equations(u):
    f = lagrax.system("furuta")
    Mr, Lr, Mp, Lp, g = 0.095, 0.085, 0.024, 0.129, 9.81
    Jr, Jp = Mr * Lr**2 / 12, Mp * Lp**2 / 12
    (th, al), (thd, ald) = state_from_unit(f, u[:4])
    tau = 0.05 * (2 * u[4] - 1)
    sa, ca = np.sin(al), np.cos(al)
    M = np.array(
        [
            [Jr + Mp * Lr**2 + Mp * Lp**2 * sa**2 / 4, Mp * Lp * Lr * ca / 2],
            [Mp * Lp * Lr * ca / 2, Jp + Mp * Lp**2 / 4],
        ]
    )
    rest = np.array(
        [
            Mp * Lp**2 * sa * ca * thd * ald / 2 - Mp * Lp * Lr * sa * ald**2 / 2,
            -Mp * Lp**2 * ca * sa * thd**2 / 4 + Mp * Lp * g * sa / 2,
        ]
    )
    expected = np.linalg.solve(M, np.array([tau, 0.0]) - rest)
    got = batched(f).forward_dynamics(np.array([th, al]), np.array([thd, ald]), np.array([tau, 0.0]))
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)


def test_charged_particle_circles_at_the_cyclotron_frequency():
    s, _, r = rollout("charged_particle")  # m = 1.5, e = 0.5, B = 2, from (0, 0) at velocity (0.8, 0)
    m, e, B, v = 1.5, 0.5, 2.0, 0.8
    omega, radius = e * B / m, m * v / (e * B)
    ts, q, qd = TS[:N_PASSIVE], np.asarray(r.q[:N_PASSIVE]), np.asarray(r.qd[:N_PASSIVE])
    # clockwise for e B > 0: centre at (0, -radius)
    expected = np.stack([radius * np.sin(omega * ts), -radius + radius * np.cos(omega * ts)], axis=-1)
    np.testing.assert_allclose(q, expected, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(qd, axis=-1), v, atol=1e-9)


@given(u=st.lists(unit, min_size=4, max_size=4))
def test_charged_particle_force_in_spring_and_electric_field(u):
    m, e, B, k, E = 1.5, 0.5, 2.0, 0.7, np.array([0.3, -0.2])
    s = lagrax.system("charged_particle", m=m, e=e, B=B, k=k, E=tuple(E))
    q, qd = state_from_unit(s, u)
    lorentz = e * B * np.array([qd[1], -qd[0]])  # e qd x (B e_z)
    np.testing.assert_allclose(
        batched(s).forward_dynamics(q, qd, np.zeros(2)), (lorentz - k * q + e * E) / m, atol=1e-12
    )


def test_charged_particle_canonical_momentum_and_energy():
    m, e, B = 1.5, 0.5, 2.0
    s = lagrax.system("charged_particle", m=m, e=e, B=B, k=0.7)
    q, qd = random_states(s, seed=7)
    A = 0.5 * B * np.stack([-q[:, 1], q[:, 0]], axis=-1)
    np.testing.assert_allclose(batched(s).momentum(q, qd), m * qd + e * A, atol=1e-12)
    np.testing.assert_allclose(
        batched(s).energy(q, qd), 0.5 * m * np.sum(qd**2, -1) + 0.35 * np.sum(q**2, -1), atol=1e-12
    )
    # the Lorentz force e qd x B is velocity-dependent and does no work
    lorentz = np.asarray(batched(s).coriolis(q, qd))
    np.testing.assert_allclose(lorentz, -e * B * np.stack([qd[:, 1], -qd[:, 0]], -1), atol=1e-12)
    np.testing.assert_allclose(np.sum(lorentz * qd, -1), 0.0, atol=1e-12)


def test_relativistic_momentum_is_gamma_m_v():
    m, c = 2.0, 1.5
    s = make("relativistic_particle_3d")
    q, qd = random_states(s, seed=8)
    gamma = 1 / np.sqrt(1 - np.sum(qd**2, -1) / c**2)
    np.testing.assert_allclose(batched(s).momentum(q, qd), gamma[:, None] * m * qd, rtol=1e-12)
    np.testing.assert_allclose(batched(s).kinetic_energy(q, qd), (gamma - 1) * m * c**2, rtol=1e-10)


def test_relativistic_particle_stays_below_c_under_a_constant_force():
    """The uniform field is a constant force ``-m g``: ``gamma m v`` falls linearly, ``|v| -> c``."""
    s, _, r = rollout("relativistic_particle")  # m = c = g = 1, from v = 0.5
    m, c, g, v0 = 1.0, 1.0, 1.0, 0.5
    ts, v = TS[:N_PASSIVE], np.asarray(r.qd[:N_PASSIVE, 0])
    assert np.all(np.abs(np.asarray(r.qd)) < c)
    p = m * v0 / np.sqrt(1 - v0**2 / c**2) - m * g * ts
    np.testing.assert_allclose(v, p / np.sqrt(m**2 + p**2 / c**2), atol=1e-9)
    assert v[-1] < -0.99 * c  # it really got ultra-relativistic (gamma ~ 10)


def test_lnn_variant_rollout_matches_its_closed_form():
    """For ``L = (1 - qd^2)^(-1/2) + g q`` the momentum ``qd (1 - qd^2)^(-3/2)`` grows as ``g t``."""
    _, _, r = rollout("relativistic_particle_lnn")  # g = -2, from qd = 0.3
    ts, v = TS[:N_PASSIVE], np.asarray(r.qd[:N_PASSIVE, 0])
    np.testing.assert_allclose(v * (1 - v**2) ** -1.5, 0.3 * (1 - 0.09) ** -1.5 - 2.0 * ts, rtol=1e-9)


@given(q=st.floats(-10, 10), qd=st.floats(-0.99, 0.99), g=st.floats(-10, 10))
def test_lnn_variant_matches_its_closed_form(q, qd, g):
    s = lagrax.system("relativistic_particle", variant="lnn", g=g)
    got = batched(s).forward_dynamics(np.array([q]), np.array([qd]), np.zeros(1))
    np.testing.assert_allclose(got, [g * (1 - qd**2) ** 2.5 / (1 + 2 * qd**2)], rtol=1e-10, atol=1e-12)


def test_textbook_and_lnn_lagrangians_differ():
    """The LNN reference code's Lagrangian is not the textbook one (RESULTS.md): different qdd."""
    textbook = lagrax.system("relativistic_particle", g=-1.0)  # force +1, like the lnn variant with g = 1
    lnn = lagrax.system("relativistic_particle", variant="lnn", g=1.0)
    qd = np.array([0.6])
    a_text = float(batched(textbook).forward_dynamics(np.zeros(1), qd, np.zeros(1))[0])
    a_lnn = float(batched(lnn).forward_dynamics(np.zeros(1), qd, np.zeros(1))[0])
    assert a_text == pytest.approx((1 - 0.36) ** 1.5)  # F / (gamma^3 m)
    assert a_lnn == pytest.approx(0.64**2.5 / 1.72)
    assert abs(a_text - a_lnn) > 0.1


# --------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["two_link_arm", "cartpole", "furuta", "relativistic_particle", "charged_particle"]
)
def test_unknown_parameter_names_are_reported(name):
    with pytest.raises(UnknownNameError, match="bad parameters.*Allowed"):
        lagrax.system(name, mass_typo=1.0)


@pytest.mark.parametrize(
    "name, params, match",
    [
        ("two_link_arm", dict(m1=-1.0), "m1=-1.0"),
        ("cartpole", dict(l=0.0), "l=0.0"),
        ("furuta", dict(Dr=-0.1), "Dr=-0.1"),
        ("relativistic_particle", dict(c=0.0), "c=0.0"),
        ("relativistic_particle", dict(dim=4), "dim"),
        ("relativistic_particle", dict(variant="lnn", m=2.0), "variant='lnn'"),
        ("charged_particle", dict(E=(1.0, 2.0, 3.0)), "two components"),
    ],
)
def test_bad_parameter_values_raise_clear_errors(name, params, match):
    with pytest.raises(ParameterError, match=match):
        lagrax.system(name, **params)


def test_unknown_variant():
    with pytest.raises(UnknownNameError, match="variant"):
        lagrax.system("relativistic_particle", variant="lnnn")


def test_parameters_are_checked_against_the_factory_by_name():
    with pytest.raises(UnknownNameError, match="unknown parameter 'dampin' .did you mean 'damping'"):
        lagrax.system("pendulum", dampin=0.1)
    with pytest.raises(UnknownNameError, match="bad parameters for system 'urdf': missing 'path'"):
        lagrax.system("urdf")


def test_a_type_error_inside_a_factory_is_not_hidden(monkeypatch):
    """A bug in a factory (here a TypeError) reaches the caller as it is, not as a bad name."""

    def broken(m: float = 1.0):
        return len(m)  # TypeError: a float has no len()

    monkeypatch.setitem(lagrax.systems.REGISTRY, "broken", (broken, "a factory with a bug"))
    with pytest.raises(TypeError, match="has no len") as info:
        lagrax.system("broken", m=2.0)
    assert not isinstance(info.value, UnknownNameError)


def test_the_registry_holds_factories_and_importing_lagrax_stays_light():
    """Factories, not "module:function" strings; Pinocchio and MuJoCo are imported only by
    the factories that need them."""
    assert all(callable(factory) for factory, _ in lagrax.systems.REGISTRY.values())
    code = "import sys, lagrax; print(sorted(m for m in ('pinocchio', 'mujoco') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("method", ["forward_dynamics", "inverse_dynamics", "gravity", "energy", "momentum"])
@pytest.mark.parametrize("name", ["double_pendulum", "relativistic_particle"])
def test_a_batch_given_to_a_per_sample_method_is_a_shape_error(name, method):
    """A batch where one state belongs names the way to a batch (not JAX's jvp shape error)."""
    system = lagrax.system(name)
    X = jnp.zeros((4, system.dof))
    args = {"forward_dynamics": 3, "inverse_dynamics": 3, "gravity": 1, "energy": 2, "momentum": 2}[method]
    with pytest.raises(ShapeError, match=r"has shape \(4, .*lagrax\.batched.*jax\.vmap"):
        getattr(system, method)(*[X] * args)
    with pytest.raises(ShapeError, match=f"expected \\({system.dof},\\)"):
        getattr(system, method)(*[jnp.zeros(system.dof + 1)] * args)


def test_the_mechanics_core_rejects_a_batch_by_name():
    """A user's function reaching the core with a batch gets the same hint."""
    from lagrax.core import mechanics

    with pytest.raises(ShapeError, match="lagrax.batched.*jax.vmap"):
        mechanics.value_and_jacfwd(jnp.sum, jnp.zeros((3, 2)))
