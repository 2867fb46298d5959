"""The public per-sample protocol is enough to write a controller and a loss.

A computed-torque controller and a custom training loss are written below against the
per-sample methods alone (``inverse_dynamics``, ``mass_matrix``, ``coriolis``,
``gravity``, ``friction``, ``forward_dynamics``): no underscore, no batching wrapper,
no question about the kind of model. Each runs inside ``jax.jit`` and ``lax.scan`` for
a DeLaN, an LNN and a ground-truth robot (Pinocchio through callbacks), and is checked
against what the closed-form physics says it must do.
"""

import inspect

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lagrax
from lagrax.core.errors import LagraxError, NotProvidedError, UnknownNameError
from lagrax.models.spec import ModelSpec
from lagrax.systems.base import CAPABILITIES, QUANTITIES

pytestmark = pytest.mark.usefixtures("cheap_compilation")  # compiling is most of their time

KP, KD = 100.0, 20.0  # critically damped: e'' + 20 e' + 100 e = 0, double pole at -10
DT, STEPS = 1e-3, 1500


def reference(t, q0):
    """Desired joint trajectory and its derivatives at time ``t``."""
    w, one = 2.0, jnp.ones_like(q0)
    return q0 + 0.3 * jnp.sin(w * t), 0.3 * w * jnp.cos(w * t) * one, -0.3 * w**2 * jnp.sin(w * t) * one


def computed_torque(model, q, qd, q_d, qd_d, qdd_d):
    """``tau = M(q) (qdd_d + Kp e + Kd ed) + c(q, qd) + g(q) + friction``: per-sample methods only."""
    v = qdd_d + KP * (q_d - q) + KD * (qd_d - qd)
    return model.mass_matrix(q) @ v + model.coriolis(q, qd) + model.gravity(q) + model.friction(q, qd)


def inverse_dynamics_control(model, q, qd, q_d, qd_d, qdd_d):
    """The same law for any Lagrangian (general or structured): ``tau = ID(q, qd, v)``."""
    return model.inverse_dynamics(q, qd, qdd_d + KP * (q_d - q) + KD * (qd_d - qd))


@eqx.filter_jit
def closed_loop(controller, model, plant, q0, offset):
    """Semi-implicit Euler of ``plant`` under ``controller(model, ...)`` in one ``lax.scan``;
    returns the tracking error at every tick."""

    def tick(state, k):
        q, qd = state
        q_d, qd_d, qdd_d = reference(k * DT, q0)
        tau = controller(model, q, qd, q_d, qd_d, qdd_d)
        qd = qd + DT * plant.forward_dynamics(q, qd, tau)
        return (q + DT * qd, qd), q_d - q

    q_d0, qd_d0, _ = reference(0.0, q0)
    _, errors = jax.lax.scan(tick, (q_d0 + offset, qd_d0), jnp.arange(STEPS))
    return errors


def expected_error(e0, t):
    """Critically damped error from ``e(0) = e0, e'(0) = 0``: ``e0 (1 + 10 t) exp(-10 t)``."""
    return e0 * (1.0 + 10.0 * t) * np.exp(-10.0 * t)


def robot_or_skip(name="ur5"):
    pytest.importorskip("pinocchio")
    try:
        return lagrax.system(name)
    except LagraxError as e:
        pytest.skip(f"{name} is not available: {e}")


def models():
    """(name, model) for the three kinds of system the protocol must serve."""
    info = lagrax.system("two_link_arm").info
    key = jax.random.PRNGKey(0)
    return [
        ("delan", lagrax.make_model("delan", info, key=key, dtype="float64", friction="viscous")),
        # the paper's plain network (a random Lagrangian, not the free-particle start)
        ("lnn", lagrax.make_model("lnn", info, key=key, dtype="float64", free_particle=0.0)),
    ]


@pytest.mark.parametrize("name", ["delan", "lnn", "robot"])
@pytest.mark.slow
def test_closed_loop_tracking_with_the_model_as_plant(name):
    """With the plant equal to the model, computed torque cancels the dynamics exactly, so the
    error follows the linear closed loop ``e'' + Kd e' + Kp e = 0`` whatever the model is."""
    model = robot_or_skip() if name == "robot" else dict(models())[name]
    controller = inverse_dynamics_control if name == "lnn" else computed_torque
    q0 = jnp.linspace(-0.4, 0.4, model.dof)
    offset = jnp.full(model.dof, 0.05)
    errors = np.asarray(closed_loop(controller, model, model, q0, offset))
    t = np.arange(STEPS) * DT
    assert np.all(np.isfinite(errors))
    # semi-implicit Euler at 1 kHz follows the continuous closed loop to within 2% of e0
    np.testing.assert_allclose(errors, expected_error(-0.05, t)[:, None] * np.ones(model.dof), atol=1e-3)
    assert np.max(np.abs(errors[-1])) < 1e-3


def test_closed_loop_model_error_shows_as_tracking_error():
    """A controller with a wrong model (an untrained DeLaN) on the true arm tracks worse than
    the controller with the true model: the loop really uses the model's M, c and g."""
    arm = lagrax.system("two_link_arm")
    wrong = dict(models())["delan"]
    q0, offset = jnp.array([0.3, -0.5]), jnp.array([0.05, 0.05])
    true_err = np.abs(np.asarray(closed_loop(computed_torque, arm, arm, q0, offset)))[-500:].max()
    wrong_err = np.abs(np.asarray(closed_loop(computed_torque, wrong, arm, q0, offset)))[-500:].max()
    assert true_err < 1e-3 and wrong_err > 10 * true_err


def inverse_dynamics_loss(model, batch):
    """A user's own loss: mean squared torque error, per-sample inverse dynamics vmapped."""
    pred = jax.vmap(model.inverse_dynamics)(batch["q"], batch["qd"], batch["qdd"])
    return jnp.mean(jnp.sum((pred - batch["tau"]) ** 2, axis=-1))


def arm_batches(n_batches=8, size=32, seed=0):
    """Minibatches of the true two-link arm's inverse dynamics, stacked for ``lax.scan``."""
    arm = lagrax.system("two_link_arm")
    rng = np.random.default_rng(seed)
    q, qd, qdd = (jnp.asarray(rng.uniform(-2, 2, (n_batches, size, 2))) for _ in range(3))
    tau = jax.vmap(jax.vmap(arm.inverse_dynamics))(q, qd, qdd)
    return {"q": q, "qd": qd, "qdd": qdd, "tau": tau}


@pytest.mark.parametrize("name", ["delan", "lnn"])
def test_custom_loss_trains_inside_jit_and_scan(name):
    model = dict(models())[name]
    batches = arm_batches()
    params, static = eqx.partition(model, eqx.is_inexact_array)

    def loss(p, batch):
        return inverse_dynamics_loss(eqx.combine(p, static), batch)

    @jax.jit
    def sgd_epochs(p):
        def step(p, batch):
            value, grads = jax.value_and_grad(loss)(p, batch)
            return jax.tree_util.tree_map(lambda a, g: a - 1e-3 * g, p, grads), value

        def epoch(p, _):
            return jax.lax.scan(step, p, batches)

        return jax.lax.scan(epoch, p, None, length=10)

    _, values = sgd_epochs(params)
    values = np.asarray(values)
    assert np.all(np.isfinite(values))
    assert values[-1].mean() < 0.5 * values[0].mean()


def test_custom_loss_on_a_ground_truth_robot_inside_jit_and_scan():
    """The same loss function takes a Pinocchio robot: zero on its own data, and its gradient
    with respect to the data (through Pinocchio's derivative rules) is finite."""
    robot = robot_or_skip("panda")
    rng = np.random.default_rng(1)
    lo, hi = np.array(robot.info.position_limits).T
    q = jnp.asarray(rng.uniform(lo, hi, (3, 4, robot.dof)))
    qd, qdd = (jnp.asarray(rng.normal(size=(3, 4, robot.dof))) for _ in range(2))
    tau = jax.vmap(jax.vmap(robot.inverse_dynamics))(q, qd, qdd)
    batches = {"q": q, "qd": qd, "qdd": qdd, "tau": tau}

    @jax.jit
    def total(batches):
        def step(acc, batch):
            value, grad_q = jax.value_and_grad(lambda b: inverse_dynamics_loss(robot, b))(batch)
            return acc + value, grad_q["q"]

        return jax.lax.scan(step, 0.0, batches)

    value, grad_q = total(batches)
    assert float(value) < 1e-20
    assert np.all(np.isfinite(np.asarray(grad_q)))


@pytest.mark.parametrize("kind", ["delan", "lnn", "mlp", "hnn", "hnn_structured"])
def test_provides_matches_what_the_methods_do(kind):
    """``provides`` is the truth: a quantity is declared exactly when its method traces."""
    info = lagrax.system("two_link_arm").info
    model = lagrax.make_model(kind, info, key=jax.random.PRNGKey(0))
    x = jnp.zeros(info.dof)
    args = {"q": x, "qd": x, "qdd": x, "tau": x, "p": x}
    for quantity in QUANTITIES:
        method = getattr(model, quantity)
        names = [n for n in inspect.signature(method).parameters if n in args]
        try:
            jax.eval_shape(lambda: method(*(args[n] for n in names)))
            traced = True
        except NotProvidedError:
            traced = False
        assert model.provides(quantity) == traced, f"{kind}.{quantity}"
    with pytest.raises(UnknownNameError, match="mass_matrix"):
        model.provides("mass_matrixx")


# --------------------------------------------------------------------------------------
# Capabilities: declared, never probed
# --------------------------------------------------------------------------------------

#: The attribute each capability stands for.
CAPABILITY_ATTRIBUTES = {
    "forward_kinematics": "forward_kinematics",
    "inverse_kinematics": "inverse_kinematics",
    "kinematics": "kinematics",
    "rigid_body_tree": "rigid_body_tree",
    "payload": "with_payload",
    "simulate_excitation": "simulate_excitation",
    "spec": "spec",
    "prefit": "prefit",
    "decay_mask": "decay_mask",
}


def _has(system, capability: str) -> bool:
    """What a probe would find: the method (a CLNN's ``kinematics`` field is no method),
    or for ``spec`` a model spec."""
    value = getattr(system, CAPABILITY_ATTRIBUTES[capability], None)
    return isinstance(value, ModelSpec) if capability == "spec" else callable(value)


def _capability_cases():
    chain = lagrax.system("chain_pendulum", n=2)
    systems = [lagrax.system(name) for name, _ in lagrax.list_systems() if name in TEXTBOOK]
    models = [
        lagrax.make_model(kind, chain.info, key=jax.random.PRNGKey(0))
        for kind in ("delan", "lnn", "mlp", "hnn", "hnn_structured", "clnn")
    ]
    return [*systems, chain, *models]


TEXTBOOK = ("pendulum", "double_pendulum", "two_link_arm", "cartpole", "furuta", "relativistic_particle")


def test_capabilities_are_declared_exactly_where_they_are():
    assert set(CAPABILITY_ATTRIBUTES) == set(CAPABILITIES)
    for system in _capability_cases():
        for capability in CAPABILITIES:
            assert system.provides(capability) == _has(system, capability), (system, capability)
    assert lagrax.system("two_link_arm").provides("inverse_kinematics")
    assert lagrax.system("pendulum").provides("kinematics")
    with pytest.raises(UnknownNameError, match="quantity or capability 'payloads'. Did you mean 'payload'"):
        lagrax.system("pendulum").provides("payloads")
