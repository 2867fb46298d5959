"""Promises of the Python API (README, "Promises"): bad input raises a named LagraxError
subclass at the checked edges (factories, make_model, lagrax.batched, simulate), never a
silent NaN or a foreign exception."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tests.helpers import assert_clean_error
from hypothesis import given
from hypothesis import strategies as st

import lagrax
from lagrax.core.errors import (
    LagraxError,
    NonFiniteInputError,
    OutOfRangeError,
    ShapeError,
    SingularHessianError,
    UnknownNameError,
)
from lagrax.models import make_model
from lagrax.systems.rollout import simulate
from lagrax.systems.parameters import ParameterError

pytestmark = pytest.mark.usefixtures("cheap_compilation")  # compiling is most of their time

BAD_NUMBERS = st.one_of(
    st.floats(max_value=0.0),
    st.sampled_from([math.nan, math.inf, -math.inf, "abc", "1", None, True]),
)


@given(BAD_NUMBERS, st.sampled_from(["m", "l"]))
def test_pendulum_parameters_must_be_positive_and_finite(value, name):
    with pytest.raises(ParameterError, match=f"{name}="):
        lagrax.system("pendulum", **{name: value})


@pytest.mark.parametrize(
    "system, params",
    [
        ("double_pendulum", {"m2": 0}),
        ("double_pendulum", {"l1": math.nan}),
        ("double_pendulum", {"g": -9.8}),
        ("two_link_arm", {"m1": math.inf}),
        ("cartpole", {"mp": -1}),
        ("furuta", {"Lp": 0}),
        ("relativistic_particle", {"c": 0}),
        ("charged_particle", {"m": "abc"}),
    ],
)
def test_every_family_checks_its_parameters(system, params):
    with pytest.raises(ParameterError, match=next(iter(params))):
        lagrax.system(system, **params)


def test_unknown_parameters_and_systems_are_named():
    with pytest.raises(UnknownNameError, match="nope"):
        lagrax.system("pendulum", nope=1)
    with pytest.raises(UnknownNameError, match="Did you mean 'pendulum'"):
        lagrax.system("pendulumm")


@pytest.mark.parametrize("value", ["-1", "0", "nan", "abc"])
def test_generate_fails_fast_on_bad_parameters(tmp_path, cli, value):
    out = tmp_path / "x.npz"
    code, _, err = cli("generate", "--system", "pendulum", "-p", f"m={value}", "--out", out)
    assert_clean_error(code, err, "m=")
    assert not out.exists()


@pytest.mark.parametrize(
    "options, error, named",
    [
        ({"width": 0}, LagraxError, "width"),
        ({"width": -4}, LagraxError, "width"),
        ({"depth": -1}, LagraxError, "depth"),
        ({"nope": 3}, UnknownNameError, "nope"),
        ({"width": "abc"}, LagraxError, "width"),
        ({"activation": "nope"}, UnknownNameError, "nope"),
    ],
)
@pytest.mark.parametrize("kind", ["delan", "lnn", "mlp", "hnn", "hnn_structured"])
def test_make_model_names_bad_options(kind, options, error, named):
    info = lagrax.system("double_pendulum").info
    with pytest.raises(error, match=named):
        make_model(kind, info, key=jax.random.PRNGKey(0), **options)


def _structured(M):
    return lagrax.structured_system(lambda q: M, lambda q: 9.81 * q[0], dof=2)


@pytest.mark.parametrize("M", [jnp.zeros((2, 2)), jnp.diag(jnp.array([1.0, -1.0])), jnp.ones((2, 2))])
def test_a_singular_or_indefinite_mass_matrix_raises_like_a_singular_hessian(M):
    system = lagrax.batched(_structured(M))
    with pytest.raises(SingularHessianError):
        system.forward_dynamics(jnp.zeros(2), jnp.zeros(2), jnp.ones(2))
    if (
        abs(float(jnp.linalg.det(M))) < 1e-12
    ):  # a general L may have an indefinite Hessian, not a singular one
        general = lagrax.batched(
            lagrax.lagrangian_system(lambda q, qd: 0.5 * qd @ M @ qd - 9.81 * q[0], dof=2)
        )
        with pytest.raises(SingularHessianError):
            general.forward_dynamics(jnp.zeros(2), jnp.zeros(2), jnp.ones(2))


def test_user_functions_of_the_wrong_shape_are_named():
    with pytest.raises(ShapeError, match=r"M\(q\) returns shape \(3, 3\), expected \(2, 2\)"):
        lagrax.structured_system(lambda q: jnp.eye(3), lambda q: q[0], dof=2)
    with pytest.raises(ShapeError, match=r"V\(q\) returns shape \(2,\)"):
        lagrax.structured_system(lambda q: jnp.eye(2), lambda q: q, dof=2)
    with pytest.raises(ShapeError, match=r"L\(q, qd\) returns shape \(2,\)"):
        lagrax.lagrangian_system(lambda q, qd: qd, dof=2)


@pytest.mark.parametrize("name", ["q", "qd", "tau"])
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_the_checked_edge_refuses_non_finite_inputs(name, bad):
    system = lagrax.batched(lagrax.system("double_pendulum"))
    args = {"q": np.zeros((3, 2)), "qd": np.zeros((3, 2)), "tau": np.zeros((3, 2))}
    args[name][1, 0] = bad
    with pytest.raises(NonFiniteInputError, match=f"{name} holds 1 NaN or inf"):
        system.forward_dynamics(**args)


@pytest.mark.parametrize("q", [np.array([1 + 1j, 0]), np.array([True, False])])
def test_the_checked_edge_refuses_complex_and_bool_inputs(q):
    with pytest.raises(NonFiniteInputError, match="dtype"):
        lagrax.batched(lagrax.system("double_pendulum")).inverse_dynamics(q, np.zeros(2), np.zeros(2))


def test_simulate_names_bad_initial_states_and_times():
    system = lagrax.system("pendulum")
    ts = jnp.linspace(0.0, 1.0, 5)
    with pytest.raises(NonFiniteInputError, match="q0"):
        simulate(system, jnp.array([jnp.nan]), jnp.zeros(1), ts)
    with pytest.raises(NonFiniteInputError, match="q0 is complex"):
        simulate(system, np.array([1 + 1j]), jnp.zeros(1), ts)
    with pytest.raises(OutOfRangeError, match="increasing"):
        simulate(system, jnp.ones(1), jnp.zeros(1), ts[::-1])
    with pytest.raises(OutOfRangeError, match="dt"):
        simulate(system, jnp.ones(1), jnp.zeros(1), ts, solver="rk4", dt=-0.1)


def test_a_bad_urdf_is_one_line_without_the_parsers_own_output(tmp_path, capfd):
    pytest.importorskip("pinocchio")
    from lagrax.cli.app import main

    bad = tmp_path / "bad.urdf"
    bad.write_text("<robot name='x'><link name='a'></robot>")
    code = main(["generate", "--system", "urdf", "-p", f"path={bad}", "--out", str(tmp_path / "x.npz")])
    _, err = capfd.readouterr()
    assert_clean_error(code, err, "cannot read URDF", "XML")


def test_a_report_of_a_diverged_rollout_draws_nan_energy_not_an_error(tmp_path):
    """The checked edge refuses NaN states; the report's energy plot gives them NaN energy."""
    from lagrax.analysis.metrics import TrajectoryRollout
    from lagrax.analysis.report import plot_rollouts

    t = np.linspace(0.0, 1.0, 6)
    q = np.stack([np.sin(t), np.cos(t)], axis=-1)
    q_pred = q.copy()
    q_pred[3:] = np.nan  # the rollout blew up after three steps
    rollout = TrajectoryRollout(0, "a", t, q, q, np.zeros_like(q), q_pred, q_pred, np.zeros(6), 0.5)
    plot_rollouts(lagrax.system("double_pendulum"), [rollout], tmp_path / "r.png")
    assert (tmp_path / "r.png").stat().st_size > 0


@pytest.mark.parametrize("value", [math.inf, math.nan])
def test_model_options_must_be_finite(value):
    info = lagrax.system("double_pendulum").info
    with pytest.raises(LagraxError, match="finite"):
        make_model("delan", info, key=jax.random.PRNGKey(0), shift=value)


def test_make_model_checks_info_and_key():
    system = lagrax.system("double_pendulum")
    with pytest.raises(LagraxError, match="SystemInfo"):
        make_model("delan", "double_pendulum", key=jax.random.PRNGKey(0))
    with pytest.raises(LagraxError, match="PRNG key"):
        make_model("delan", system.info, key=0)
    assert make_model("delan", system, key=jax.random.PRNGKey(0)).dof == 2  # a System gives its info
