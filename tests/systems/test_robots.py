"""Pinocchio robots: lagrax's mechanics core against Pinocchio's independent algorithms.

The core only sees ``M(q)`` (crba) and ``V(q)``; ``rnea``/``aba`` are recursive
Newton-Euler / articulated-body implementations that never form those, so agreement
checks the core's Coriolis and gravity derivation on real 6- and 7-DoF arms.
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("cheap_compilation")  # compiling is most of their time

pin = pytest.importorskip("pinocchio")

import lagrax  # noqa: E402
from lagrax.core.errors import LagraxError, ShapeError, UnknownNameError  # noqa: E402
from lagrax.systems.rollout import simulate  # noqa: E402
from lagrax.systems import robots  # noqa: E402
from lagrax.systems.batching import batched  # noqa: E402

ROBOTS = ["panda", "ur5"]

try:
    robots.example_robot_data_path()
    HAVE_URDFS = True
except LagraxError:
    HAVE_URDFS = False
needs_urdfs = pytest.mark.skipif(not HAVE_URDFS, reason="example-robot-data is not installed")


@pytest.fixture(scope="module", params=ROBOTS)
def robot(request):
    if not HAVE_URDFS:
        pytest.skip("example-robot-data is not installed")
    return lagrax.system(request.param)


def random_states(robot, batch=8, seed=0):
    """Positions uniformly within the joint limits, velocities within the velocity limits."""
    rng = np.random.default_rng(seed)
    lo, hi = np.array(robot.info.position_limits).T
    vmax = np.array(robot.info.velocity_limits)
    q = rng.uniform(lo, hi, (batch, robot.dof))
    qd = rng.uniform(-vmax, vmax, (batch, robot.dof))
    qdd = rng.normal(scale=3.0, size=(batch, robot.dof))
    return q, qd, qdd


def pin_each(fn, robot, *arrays):
    """Pinocchio called directly, sample by sample (no lagrax code on this path)."""
    model = robot.pinocchio_model
    data = model.createData()
    return np.stack([np.array(fn(model, data, *(a[b] for a in arrays))) for b in range(arrays[0].shape[0])])


@needs_urdfs
def test_registry_and_info():
    panda = lagrax.system("panda")
    assert panda.dof == 7 and lagrax.system("ur5").dof == 6
    assert panda.joint_names[0] == "panda_joint1" and set(panda.joint_types) == {"revolute"}
    assert panda.info.torque_limits[:4] == (87.0, 87.0, 87.0, 87.0)
    assert panda.info.position_limits[3] == (-3.0718, -0.0698)
    assert all(panda.info.actuated)
    assert panda.info.params[0][0] == "urdf" and panda.info.params[0][1].endswith("panda.urdf")
    assert isinstance(panda, lagrax.StructuredSystem)
    # its capabilities: a pure-JAX rigid-body tree, which can carry a payload
    assert panda.provides("rigid_body_tree") and not panda.provides("payload")
    assert not panda.core_system().provides("rigid_body_tree")
    assert panda.rigid_body_tree().provides("payload")


def test_mass_matrix_symmetric_positive_definite(robot):
    q, _, _ = random_states(robot)
    M = np.asarray(batched(robot).mass_matrix(q))
    np.testing.assert_array_equal(M, np.swapaxes(M, -1, -2))
    assert np.all(np.linalg.eigvalsh(M) > 0)
    np.testing.assert_allclose(M, pin_each(pin.crba, robot, q), atol=1e-12)


def test_core_derivation_matches_rnea(robot):
    """c and g derived by lagrax.core.mechanics from M(q), V(q) equal Pinocchio's RNEA."""
    core = robot.core_system()
    q, qd, qdd = random_states(robot)
    zero = np.zeros_like(q)
    tau = pin_each(pin.rnea, robot, q, qd, qdd)
    g = pin_each(pin.rnea, robot, q, zero, zero)
    c = pin_each(pin.rnea, robot, q, qd, zero) - g
    np.testing.assert_allclose(batched(core).inverse_dynamics(q, qd, qdd), tau, atol=1e-9)
    np.testing.assert_allclose(batched(core).gravity(q), g, atol=1e-9)
    np.testing.assert_allclose(batched(core).coriolis(q, qd), c, atol=1e-9)
    # and the robot's own Pinocchio-backed terms agree with the same references
    np.testing.assert_allclose(batched(robot).inverse_dynamics(q, qd, qdd), tau, atol=1e-9)
    np.testing.assert_allclose(batched(robot).gravity(q), g, atol=1e-9)
    np.testing.assert_allclose(batched(robot).coriolis(q, qd), c, atol=1e-9)
    np.testing.assert_allclose(
        batched(core).kinetic_energy(q, qd), batched(robot).kinetic_energy(q, qd), atol=1e-10
    )


def test_forward_is_aba_and_inverts_inverse(robot):
    q, qd, _ = random_states(robot, seed=1)
    tau = np.random.default_rng(2).normal(scale=10.0, size=q.shape)
    qdd = batched(robot).forward_dynamics(q, qd, tau)
    np.testing.assert_allclose(qdd, pin_each(pin.aba, robot, q, qd, tau), atol=1e-10)
    np.testing.assert_allclose(batched(robot).inverse_dynamics(q, qd, qdd), tau, atol=1e-9)
    np.testing.assert_allclose(
        batched(robot.core_system()).forward_dynamics(q, qd, tau), qdd, rtol=1e-8, atol=1e-8
    )


def test_passivity_mdot_minus_2c_is_skew(robot):
    q, qd, _ = random_states(robot, batch=4, seed=3)
    C = np.asarray(batched(robot).coriolis_matrix(q, qd))
    Mdot = np.asarray(jax.vmap(lambda q_, qd_: jax.jvp(robot.mass_matrix, (q_,), (qd_,))[1])(q, qd))
    S = Mdot - 2 * C
    np.testing.assert_allclose(S, -np.swapaxes(S, -1, -2), atol=1e-10)
    np.testing.assert_allclose(np.einsum("bij,bj->bi", C, qd), batched(robot).coriolis(q, qd), atol=1e-10)
    # Pinocchio's C is the Christoffel-symbol C that lagrax.core.mechanics derives from M(q)
    np.testing.assert_allclose(batched(robot.core_system()).coriolis_matrix(q, qd), C, atol=1e-10)


def central_difference(f, x, v, h=1e-6):
    return (f(x + h * v) - f(x - h * v)) / (2 * h)


def test_custom_jvps_match_finite_differences(robot):
    q, qd, qdd = (a[0] for a in random_states(robot, seed=4))
    rng = np.random.default_rng(5)
    v, w, u = rng.normal(size=(3, robot.dof))
    # M(q) and V(q): the rules the mechanics core differentiates
    _, dM = jax.jvp(robot.mass_matrix, (q,), (v,))
    np.testing.assert_allclose(dM, central_difference(robot.mass_matrix, q, v), atol=1e-7)
    _, dV = jax.jvp(robot.potential_energy, (q,), (v,))
    np.testing.assert_allclose(dV, central_difference(robot.potential_energy, q, v), atol=1e-7)
    np.testing.assert_allclose(jax.grad(robot.potential_energy)(q), batched(robot).gravity(q), atol=1e-12)
    # RNEA and ABA in all arguments at once; reverse mode goes through the same rules
    for fn, third in (
        (robot.inverse_dynamics, qdd),
        (robot.forward_dynamics, robot.inverse_dynamics(q, qd, qdd)),
    ):
        x = (q, qd, third)

        def along(s, fn=fn, x=x):
            return fn(x[0] + s * v, x[1] + s * w, x[2] + s * u)

        _, jvp = jax.jvp(along, (0.0,), (1.0,))
        np.testing.assert_allclose(jvp, (along(1e-6) - along(-1e-6)) / 2e-6, rtol=1e-6, atol=1e-6)
        ct = rng.normal(size=robot.dof)
        vjp = jax.grad(lambda a, b, c, fn=fn: ct @ fn(a, b, c), argnums=(0, 1, 2))(*x)
        np.testing.assert_allclose(sum(g @ t for g, t in zip(vjp, (v, w, u))), ct @ jvp, rtol=1e-9, atol=1e-9)


@needs_urdfs
def test_energy_conserved_in_passive_rollout():
    panda = lagrax.system("panda")
    q, qd, _ = random_states(panda, batch=1, seed=6)
    ts = jnp.linspace(0.0, 1.0, 11)
    # Every right-hand side is a Pinocchio callback (0.1-1 ms each, ~2000 of them): keep it short.
    roll = simulate(panda, q[0], 0.5 * qd[0], ts, rtol=1e-9, atol=1e-9)
    E = np.asarray(batched(panda).energy(roll.q, roll.qd))
    scale = (
        np.abs(batched(panda).kinetic_energy(roll.q, roll.qd)).max()
        + np.abs(batched(panda).potential_energy(roll.q)).max()
    )
    assert np.abs(E - E[0]).max() / scale < 1e-8, np.abs(E - E[0]).max() / scale
    # it moved: this is not a robot at rest
    assert np.abs(roll.q[-1] - roll.q[0]).max() > 0.1


def test_batched_equals_per_sample(robot):
    q, qd, qdd = random_states(robot, batch=6, seed=7)
    tau_b = batched(robot).inverse_dynamics(q.reshape(2, 3, -1), qd.reshape(2, 3, -1), qdd.reshape(2, 3, -1))
    assert tau_b.shape == (2, 3, robot.dof)
    single = np.stack([robot.inverse_dynamics(q[i], qd[i], qdd[i]) for i in range(6)])  # per-sample protocol
    np.testing.assert_allclose(np.asarray(tau_b).reshape(6, -1), single, atol=1e-12)
    M = batched(robot).mass_matrix(q)
    np.testing.assert_allclose(M[4], robot.mass_matrix(q[4]), atol=1e-12)
    # jit and vmap of the per-sample protocol
    np.testing.assert_allclose(
        jax.jit(jax.vmap(robot.forward_dynamics))(q, qd, tau_b.reshape(6, -1)), qdd, atol=1e-9
    )


@needs_urdfs
def test_bad_inputs():
    panda = lagrax.system("panda")
    with pytest.raises(ShapeError, match="7 joints"):
        batched(panda).inverse_dynamics(np.zeros(6), np.zeros(6), np.zeros(6))
    with pytest.raises(ShapeError):
        batched(panda).mass_matrix(np.zeros((4, 9)))
    with pytest.raises(LagraxError, match="not found"):
        robots.urdf("/no/such/robot.urdf")
    with pytest.raises(UnknownNameError, match="drop"):
        lagrax.system("panda", fingers="open")
    with pytest.raises(LagraxError, match="no file"):
        robots.example_robot_data_path("no_such_description/robot.urdf")


def test_missing_pinocchio_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pinocchio", None)  # import pinocchio now raises ImportError
    with pytest.raises(LagraxError, match="'pin'.*lagrax\\[robots\\]"):
        robots.urdf(tmp_path / "any.urdf")


@needs_urdfs
def test_panda_fingers_drop_removes_their_mass():
    fixed, dropped = robots.panda("fixed"), robots.panda("drop")
    q = np.zeros(7)
    # the fingers weigh 2 x 0.015 kg in the URDF; without them the arm holds less weight
    assert batched(dropped).potential_energy(q) < batched(fixed).potential_energy(q)
    dM = np.asarray(batched(fixed).mass_matrix(q) - batched(dropped).mass_matrix(q))
    assert np.all(np.linalg.eigvalsh(dM) > -1e-12) and np.abs(dM).max() > 0


# ---- small hand-written URDFs: closed forms and joint kinds -----------------------------

LINK = """<link name="{name}"><inertial><origin xyz="{com}"/><mass value="{m}"/>
<inertia ixx="{I}" iyy="{I}" izz="{I}" ixy="0" ixz="0" iyz="0"/></inertial></link>"""


def write_urdf(tmp_path, joints, name="toy"):
    """A chain base -> l0 -> l1 ...: ``joints`` is a list of (type, axis, origin, com, m, I)."""
    parts = ['<link name="base"/>']
    parent = "base"
    for k, (kind, axis, origin, com, m, inertia) in enumerate(joints):
        parts.append(LINK.format(name=f"l{k}", com=com, m=m, I=inertia))
        limit = (
            '<limit lower="-1" upper="1" effort="5" velocity="2"/>'
            if kind in ("revolute", "prismatic")
            else ""
        )
        parts.append(
            f'<joint name="j{k}" type="{kind}"><parent link="{parent}"/><child link="l{k}"/>'
            f'<origin xyz="{origin}"/><axis xyz="{axis}"/>{limit}</joint>'
        )
        parent = f"l{k}"
    path = tmp_path / f"{name}.urdf"
    path.write_text(f'<robot name="{name}">' + "".join(parts) + "</robot>")
    return path


def test_urdf_pendulum_closed_form(tmp_path):
    """A link of mass m, centre of mass l below a y-axis hinge: M = I + m l^2, g = m g0 l sin q."""
    m, l, inertia, g0 = 1.5, 0.4, 0.02, 3.7
    path = write_urdf(tmp_path, [("revolute", "0 1 0", "0 0 0", f"0 0 {-l}", m, inertia)])
    pend = robots.urdf(path, gravity=(0.0, 0.0, -g0), name="hinge")
    assert (
        pend.name == "hinge"
        and pend.info.position_limits == ((-1.0, 1.0),)
        and pend.info.torque_limits == (5.0,)
    )
    q = np.linspace(-1, 1, 5)[:, None]
    tau = np.full_like(q, 0.3)
    expected = (0.3 - m * g0 * l * np.sin(q)) / (inertia + m * l**2)
    np.testing.assert_allclose(batched(pend).forward_dynamics(q, np.zeros_like(q), tau), expected, rtol=1e-12)
    np.testing.assert_allclose(
        batched(pend.core_system()).forward_dynamics(q, np.ones_like(q), tau), expected, rtol=1e-10
    )


def test_urdf_continuous_and_prismatic_joints(tmp_path):
    """A continuous joint is an angle: same dynamics as the revolute version of the arm."""
    arm = [
        ("{}", "0 1 0", "0 0 0", "0.1 0 -0.3", 1.0, 0.01),
        ("revolute", "0 1 0", "0 0 -0.6", "0 0.05 -0.2", 0.7, 0.02),
    ]
    revolute = robots.urdf(write_urdf(tmp_path, [(arm[0][0].format("revolute"), *arm[0][1:]), arm[1]], "a"))
    continuous = robots.urdf(
        write_urdf(tmp_path, [(arm[0][0].format("continuous"), *arm[0][1:]), arm[1]], "b")
    )
    assert continuous.joint_types == ("revolute", "revolute") and continuous.info.position_limits is None
    q, qd, qdd = np.random.default_rng(8).normal(size=(3, 4, 2))
    np.testing.assert_allclose(
        batched(continuous).inverse_dynamics(q, qd, qdd),
        batched(revolute).inverse_dynamics(q, qd, qdd),
        atol=1e-12,
    )
    np.testing.assert_allclose(
        batched(continuous.core_system()).inverse_dynamics(q, qd, qdd),
        batched(revolute).inverse_dynamics(q, qd, qdd),
        atol=1e-10,
    )
    # a vertical slider of mass m: M = m, g = m g0
    slider = robots.urdf(write_urdf(tmp_path, [("prismatic", "0 0 1", "0 0 0", "0 0 0", 2.0, 0.1)], "c"))
    assert slider.joint_types == ("prismatic",)
    np.testing.assert_allclose(
        batched(slider).inverse_dynamics([0.3], [1.0], [0.5]), [2.0 * 0.5 + 2.0 * 9.81], rtol=1e-12
    )


def test_urdf_rejects_floating_joints_and_unknown_locks(tmp_path):
    path = write_urdf(tmp_path, [("floating", "0 0 1", "0 0 0", "0 0 0", 1.0, 0.1)], "free")
    with pytest.raises(LagraxError, match="'j0'.*revolute, continuous and prismatic"):
        robots.urdf(path)
    path = write_urdf(tmp_path, [("revolute", "0 1 0", "0 0 0", "0 0 -1", 1.0, 0.1)] * 2, "two")
    with pytest.raises(UnknownNameError, match="j1"):
        robots.urdf(path, locked_joints=["j2"])
    one = robots.urdf(path, locked_joints={"j1": 0.5})
    assert one.dof == 1 and one.joint_names == ("j0",)


@needs_urdfs
def test_friction_is_added_to_rnea_and_removed_before_aba():
    panda, damped = lagrax.system("panda"), lagrax.system("panda", damping=0.5, coulomb=0.2)
    q, qd, qdd = random_states(panda, batch=3, seed=9)
    extra = np.asarray(
        batched(damped).inverse_dynamics(q, qd, qdd) - batched(panda).inverse_dynamics(q, qd, qdd)
    )
    np.testing.assert_allclose(extra, batched(damped).friction(q, qd), atol=1e-12)
    assert np.all(extra * qd > 0)
    tau = batched(damped).inverse_dynamics(q, qd, qdd)
    np.testing.assert_allclose(batched(damped).forward_dynamics(q, qd, tau), qdd, atol=1e-9)
