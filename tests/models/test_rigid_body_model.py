"""The rigid-body model (known kinematics, learned inertias): its log-Cholesky inertias
are physically consistent and invertible; with the file's values it is the robot; its
regressor is Pinocchio's and gives the torques; one least-squares solve from uninformed
values identifies the robot; unexcited directions are named, not filled with noise."""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import lagrax
from lagrax.analysis.metrics import normalised_mse
from lagrax.core.errors import LagraxError
from lagrax.data.generators import generate
from lagrax.models.rigid_body import (
    identify,
    inertial_from_pseudo_inertia,
    log_cholesky_from_pseudo_inertia,
    parameter_names,
    pseudo_inertia_from_log_cholesky,
    pseudo_inertia_from_standard,
    regressor,
    standard_from_pseudo_inertia,
)
from lagrax.models.spec import SpecError
from lagrax.systems.robots import example_robot_data_path

pin = pytest.importorskip("pinocchio")
pytestmark = pytest.mark.usefixtures("cheap_compilation")  # compiling is most of their time

jax.config.update("jax_enable_x64", True)

TWO_DOF = str(example_robot_data_path("asr_twodof_description/urdf/TwoDofs.urdf"))
# the small arm in a vertical plane (its joints turn about z), with friction and rotor inertia
TRUTH = lagrax.system(
    "urdf", path=TWO_DOF, name="twodof", gravity=(0.0, -9.81, 0.0), damping=0.03, coulomb=0.15, armature=0.15
)
raw_inertial = st.lists(st.floats(-2.0, 2.0), min_size=10, max_size=10).map(np.asarray)


def model(init="nominal", info=TRUTH.info, **options):
    return lagrax.make_model(
        "rigid_body", info, key=jax.random.PRNGKey(0), dtype="float64", init=init, **options
    )


def states(count=6, seed=0):
    rng = np.random.default_rng(seed)
    return tuple(rng.uniform(-2.0, 2.0, (count, 2)) for _ in range(3))


@pytest.fixture(scope="module")
def data():
    """Excitation of the arm: ``(train, test)``, split by trajectory."""
    dataset = generate(TRUTH, "excitation", trajectories=6, duration=2.0, dt=0.01)
    return dataset.split(test_fraction=0.3)


# ---- the parametrisation --------------------------------------------------------------------


@given(raw_inertial)
def test_log_cholesky_round_trip_and_physical_consistency(raw):
    J = pseudo_inertia_from_log_cholesky(jnp.asarray(raw))
    np.testing.assert_allclose(log_cholesky_from_pseudo_inertia(J), raw, rtol=0, atol=1e-12)
    np.testing.assert_allclose(pseudo_inertia_from_standard(standard_from_pseudo_inertia(J)), J, atol=1e-12)
    mass, _, inertia = inertial_from_pseudo_inertia(J)
    principal = np.linalg.eigvalsh(np.asarray(inertia))
    assert mass > 0 and principal[0] > 0
    slack = 1e-9 * principal[-1]
    assert principal[0] + principal[1] >= principal[2] - slack  # the triangle inequalities


def test_an_inconsistent_pseudo_inertia_is_an_error_naming_the_link():
    J = np.array(pseudo_inertia_from_log_cholesky(jnp.zeros(10)))
    J[3, 3] = -1.0  # a negative mass
    with pytest.raises(LagraxError, match="link 'J2'.*not physically consistent"):
        log_cholesky_from_pseudo_inertia(np.stack([np.eye(4), J]), names=("J1", "J2"))


# ---- the model ------------------------------------------------------------------------------


@eqx.filter_jit
def quantities(system, q, qd, qdd):
    """What the model and the robot must agree on, at a batch of states (compiled once)."""
    tau = jax.vmap(system.inverse_dynamics)(q, qd, qdd)
    terms = jax.vmap(lagrax.systems.StructuredSystem.terms, (None, 0, 0))(system, q, qd)  # from M, V
    return dict(
        tau=tau,
        mass_matrix=jax.vmap(system.mass_matrix)(q),
        gravity=jax.vmap(system.gravity)(q),
        potential=jax.vmap(system.potential_energy)(q) - system.potential_energy(0 * q[0]),
        forward=jax.vmap(system.forward_dynamics)(q, qd, tau),
        terms=terms,
    )


def test_with_nominal_parameters_it_is_the_robot():
    rb, (q, qd, qdd) = model(), states(3)
    mine = quantities(rb, q, qd, qdd)
    truth = dict(  # Pinocchio's own algorithms
        tau=jax.vmap(TRUTH.inverse_dynamics)(q, qd, qdd),
        mass_matrix=jax.vmap(TRUTH.mass_matrix)(q),
        gravity=jax.vmap(TRUTH.gravity)(q),
        potential=jax.vmap(TRUTH.potential_energy)(q) - TRUTH.potential_energy(0 * q[0]),
    )
    for key in truth:
        np.testing.assert_allclose(mine[key], truth[key], atol=1e-10, err_msg=key)
    np.testing.assert_allclose(mine["forward"], qdd, atol=1e-9)
    for fast, generic in zip(jax.vmap(rb.terms)(q, qd), mine["terms"]):  # RNEA = the mechanics core
        np.testing.assert_allclose(fast, generic, atol=1e-10)


def test_the_kinematics_are_not_trained():
    rb = model()
    leaves = jax.tree_util.tree_leaves(eqx.filter(rb, eqx.is_inexact_array))
    assert sum(x.size for x in leaves) == 2 * 10 + 2 + 4 * 2  # inertias, armature, friction (4 per joint)


def test_kinematics_come_from_the_info_or_an_error_names_the_option():
    with pytest.raises(SpecError, match="urdf=PATH"):
        model(info=lagrax.system("double_pendulum").info)
    with pytest.raises(SpecError, match="joints of"):
        model(info=lagrax.system("double_pendulum").info, urdf=TWO_DOF)
    assert model(info=TRUTH.info, urdf=TWO_DOF).spec.urdf == TWO_DOF


# ---- identification -------------------------------------------------------------------------


def test_regressor_is_pinocchios_and_gives_the_torques():
    rb = model()
    q, qd, qdd = states()
    Y = np.asarray(regressor(rb, q, qd, qdd))
    tau = np.stack([TRUTH.inverse_dynamics(*x) for x in zip(q, qd, qdd)])
    np.testing.assert_allclose(Y @ rb.standard_parameters(), tau.ravel(), atol=1e-10)
    assert Y.shape == (6 * 2, len(parameter_names(rb)))
    robot = TRUTH.robot.model
    expected = pin.computeJointTorqueRegressor(robot, robot.createData(), q[0], qd[0], qdd[0])
    np.testing.assert_allclose(Y[:2, :20], expected, atol=1e-12)


def test_identify_from_uninformed_parameters_recovers_the_robot(data):
    train, test = data
    start = model("uninformed")
    fitted, report = identify(start, train)
    prediction = jax.vmap(fitted.inverse_dynamics)(test.q, test.qd, test.qdd)
    assert normalised_mse(prediction, test.tau) <= 1e-8
    assert report["torque_nmse"] <= 1e-8 and report["least_squares_nmse"] <= 1e-8
    # the same base parameters as the nominal model's, and all well conditioned
    _, nominal = identify(model(), train)
    assert [b["name"] for b in report["base_parameters"]] == [b["name"] for b in nominal["base_parameters"]]
    values = np.array(
        [[a["value"], b["value"]] for a, b in zip(report["base_parameters"], nominal["base_parameters"])]
    )
    np.testing.assert_allclose(values[:, 0], values[:, 1], rtol=1e-6, atol=1e-12)
    assert report["condition_number"] < 1e3
    assert "J2.I_xx" in report["unidentifiable"]  # a planar arm never turns its links about x


def test_an_unexcited_joint_is_reported_not_filled_with_noise(data):
    train, _ = data
    q = np.asarray(train.q).copy()
    q[:, 1] = 0.4  # the elbow held still
    qd, qdd = np.asarray(train.qd).copy(), np.asarray(train.qdd).copy()
    qd[:, 1] = qdd[:, 1] = 0.0
    tau = jax.vmap(TRUTH.inverse_dynamics)(q, qd, qdd)
    still = dataclasses.replace(train, q=q, qd=qd, qdd=qdd, tau=np.asarray(tau))
    start = model("uninformed")
    fitted, report = identify(start, still)
    _, excited = identify(start, train)
    assert report["rank"] < excited["rank"]
    for name in ("J2.armature", "J2.viscous", "J2.coulomb"):
        assert name in report["unidentifiable"] and name not in excited["unidentifiable"]
        assert any(d.startswith(name) for d in report["null_directions"])
    names = parameter_names(start)
    unexcited = np.array([names.index(f"J2.{p}") for p in ("armature", "viscous", "coulomb")])
    np.testing.assert_allclose(
        fitted.standard_parameters()[unexcited], start.standard_parameters()[unexcited]
    )
    prediction = jax.vmap(fitted.inverse_dynamics)(still.q, still.qd, still.qdd)
    assert normalised_mse(prediction, still.tau) <= 1e-8  # what the data show is still fitted
