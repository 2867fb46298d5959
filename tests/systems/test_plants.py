"""Realistic plants: joint friction and rotor inertia on Pinocchio robots, sensors in generate.

Closed forms: friction is ``rnea`` plus the formula of :class:`lagrax.core.friction.JointFriction`;
armature is Pinocchio's model without armature plus ``diag(armature)``. Sensors: the noise
has the stated std, ``measured="q,tau"`` re-estimates ``qd, qdd`` close to the truth, the
sample rate option sets ``dt``; bad values are one-line errors (exit code 2 from the CLI).
"""

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.usefixtures("cheap_compilation")  # compiling is most of their time

pin = pytest.importorskip("pinocchio")

import lagrax  # noqa: E402
from lagrax.systems.batching import batched  # noqa: E402
from lagrax.cli.app import main  # noqa: E402
from lagrax.data.dataset import load_dataset  # noqa: E402
from lagrax.core.errors import LagraxError, UnknownNameError  # noqa: E402
from lagrax.systems import robots  # noqa: E402
from lagrax.systems.parameters import ParameterError  # noqa: E402
from lagrax.data.generators import generate  # noqa: E402

try:
    robots.example_robot_data_path()
    HAVE_URDFS = True
except LagraxError:
    HAVE_URDFS = False
needs_urdfs = pytest.mark.skipif(not HAVE_URDFS, reason="example-robot-data is not installed")

# A 2-link arm: hinge about y, then a hinge about x (so gravity, Coriolis and coupling all act).
TOY = """<robot name="toy"><link name="base"/>
<link name="l0"><inertial><origin xyz="0.1 0 -0.3"/><mass value="1.2"/>
<inertia ixx="0.02" iyy="0.03" izz="0.01" ixy="0" ixz="0" iyz="0"/></inertial></link>
<link name="l1"><inertial><origin xyz="0 0.05 -0.2"/><mass value="0.7"/>
<inertia ixx="0.01" iyy="0.01" izz="0.005" ixy="0" ixz="0" iyz="0"/></inertial></link>
<joint name="j0" type="revolute"><parent link="base"/><child link="l0"/><axis xyz="0 1 0"/>
<limit lower="-2" upper="2" effort="20" velocity="3"/></joint>
<joint name="j1" type="revolute"><parent link="l0"/><child link="l1"/><origin xyz="0 0 -0.6"/>
<axis xyz="1 0 0"/><limit lower="-2" upper="2" effort="10" velocity="3"/></joint></robot>"""


@pytest.fixture(scope="module")
def toy_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("urdf") / "toy.urdf"
    path.write_text(TOY)
    return path


def states(dof, batch=6, seed=0, scale=1.5):
    rng = np.random.default_rng(seed)
    return tuple(rng.uniform(-scale, scale, (batch, dof)) for _ in range(3))


def pin_each(fn, model, *arrays):
    """Pinocchio called directly, sample by sample (no lagrax code on this path)."""
    data = model.createData()
    return np.stack([np.array(fn(model, data, *(a[b] for a in arrays))) for b in range(arrays[0].shape[0])])


def closed_form_friction(qd, d, c, s, v, eps=1e-2):
    return d * qd + (c + s * np.exp(-((qd / v) ** 2))) * np.tanh(qd / eps)


per_joint = st.floats(0.0, 3.0) | st.lists(st.floats(0.0, 3.0), min_size=2, max_size=2)


# ---- friction and armature: closed forms -------------------------------------------------


def rnea_without_armature(path, q, qd, qdd):
    plain = robots.urdf(path).pinocchio_model
    assert not np.any(plain.armature)
    return pin_each(pin.rnea, plain, q, qd, qdd)


@given(d=per_joint, c=per_joint, s=per_joint, v=st.floats(0.01, 2.0), a=per_joint, seed=st.integers(0, 2**16))
@settings(max_examples=10)
def test_friction_and_armature_closed_form(toy_path, d, c, s, v, a, seed):
    """ID = rnea without armature + a qdd + d qd + (c + s exp(-(qd/v)^2)) tanh(qd/eps); FD inverts it."""
    toy = robots.urdf(toy_path, damping=d, coulomb=c, stribeck=s, stribeck_velocity=v, armature=a)
    q, qd, qdd = states(2, seed=seed)
    fric = closed_form_friction(qd, *np.broadcast_arrays(d, c, s, v), 1e-2)
    tau = np.asarray(batched(toy).inverse_dynamics(q, qd, qdd))
    expected = rnea_without_armature(toy_path, q, qd, qdd) + np.broadcast_to(a, 2) * qdd + fric
    np.testing.assert_allclose(tau, expected, atol=1e-10)
    np.testing.assert_allclose(batched(toy).forward_dynamics(q, qd, tau), qdd, atol=1e-9)


def test_armature_in_every_quantity(toy_path):
    """M = crba without armature + diag(a); ID = M qdd + c + g + friction; T has a qd^2 / 2."""
    a = np.array([0.3, 0.05])
    toy = robots.urdf(toy_path, damping=0.2, coulomb=0.1, armature=a)
    plain = robots.urdf(toy_path).pinocchio_model
    q, qd, qdd = states(2, seed=3)
    M = np.asarray(batched(toy).mass_matrix(q))
    M0 = pin_each(pin.crba, plain, q)
    M0 = np.triu(M0) + np.swapaxes(np.triu(M0, 1), -1, -2)
    np.testing.assert_allclose(M, M0 + np.diag(a), atol=1e-12)
    c, g = batched(toy).coriolis(q, qd), batched(toy).gravity(q)
    zero = np.zeros_like(q)
    np.testing.assert_allclose(g, pin_each(pin.rnea, plain, q, zero, zero), atol=1e-12)  # unchanged
    np.testing.assert_allclose(c + g, pin_each(pin.rnea, plain, q, qd, zero), atol=1e-12)
    fric = closed_form_friction(qd, 0.2, 0.1, 0.0, 0.1)
    tau = np.asarray(batched(toy).inverse_dynamics(q, qd, qdd))
    np.testing.assert_allclose(tau, np.einsum("bij,bj->bi", M, qdd) + c + g + fric, atol=1e-10)
    T0 = pin_each(pin.computeKineticEnergy, plain, q, qd)
    np.testing.assert_allclose(batched(toy).kinetic_energy(q, qd), T0 + 0.5 * (a * qd**2).sum(-1), atol=1e-12)
    # the mechanics core, from M(q) and V(q) only, agrees
    np.testing.assert_allclose(batched(toy.core_system()).inverse_dynamics(q, qd, qdd), tau, atol=1e-9)


@needs_urdfs
@pytest.mark.parametrize("name", ["panda", "ur5"])
def test_realistic_robot_dynamics_and_jvps(name):
    """Every Pinocchio quantity carries the armature; the custom JVPs still match finite differences."""
    robot = lagrax.system(name, realistic=True, stribeck=0.2, stribeck_velocity=0.3)
    n, preset = robot.dof, robots.REALISTIC[name]
    plain = lagrax.system(name).pinocchio_model
    q, qd, qdd = states(n, batch=3, seed=1, scale=1.0)
    a = np.asarray(preset["armature"])
    M0 = pin_each(pin.crba, plain, q)
    M0 = np.triu(M0) + np.swapaxes(np.triu(M0, 1), -1, -2)
    np.testing.assert_allclose(batched(robot).mass_matrix(q), M0 + np.diag(a), atol=1e-12)
    fric = closed_form_friction(qd, np.asarray(preset["damping"]), np.asarray(preset["coulomb"]), 0.2, 0.3)
    tau = np.asarray(batched(robot).inverse_dynamics(q, qd, qdd))
    np.testing.assert_allclose(tau, pin_each(pin.rnea, plain, q, qd, qdd) + a * qdd + fric, atol=1e-9)
    np.testing.assert_allclose(batched(robot).forward_dynamics(q, qd, tau), qdd, atol=1e-8)

    rng = np.random.default_rng(2)
    v, w, u = rng.normal(size=(3, n))
    x = (q[0], qd[0], qdd[0])
    h = 1e-6
    _, dM = jax.jvp(robot.mass_matrix, (x[0],), (v,))
    fd = (robot.mass_matrix(x[0] + h * v) - robot.mass_matrix(x[0] - h * v)) / (2 * h)
    np.testing.assert_allclose(dM, fd, atol=1e-7)
    for fn, third in ((robot.inverse_dynamics, x[2]), (robot.forward_dynamics, tau[0])):

        def along(t, fn=fn, third=third):
            return fn(x[0] + t * v, x[1] + t * w, third + t * u)

        _, jvp = jax.jvp(along, (0.0,), (1.0,))
        np.testing.assert_allclose(jvp, (along(h) - along(-h)) / (2 * h), rtol=1e-6, atol=1e-6)
    _, dT = jax.jvp(robot.kinetic_energy, x[:2], (v, w))
    fd = (
        robot.kinetic_energy(x[0] + h * v, x[1] + h * w) - robot.kinetic_energy(x[0] - h * v, x[1] - h * w)
    ) / (2 * h)
    np.testing.assert_allclose(dT, fd, rtol=1e-6, atol=1e-7)


@needs_urdfs
def test_realistic_preset_values_and_overrides():
    panda = lagrax.system("panda", realistic=True)
    params = dict(panda.info.params)
    assert params["realistic"] is True and params["coulomb"] == robots.REALISTIC["panda"]["coulomb"]
    assert params["armature"] == robots.REALISTIC["panda"]["armature"] and params["stribeck"] == 0.0
    np.testing.assert_array_equal(panda.pinocchio_model.armature, robots.REALISTIC["panda"]["armature"])
    # a value given explicitly wins over the preset; the others stay preset
    tuned = dict(lagrax.system("panda", realistic=True, damping=0.0).info.params)
    assert tuned["damping"] == 0.0 and tuned["coulomb"] == params["coulomb"]
    # default: everything off, no friction model at all
    plain = lagrax.system("ur5")
    assert plain.friction_model is None and not np.any(plain.pinocchio_model.armature)
    assert dict(plain.info.params)["realistic"] is False
    for name, dof in (("panda", 7), ("ur5", 6)):
        for values in robots.REALISTIC[name].values():
            assert len(values) == dof and all(v > 0 for v in values)


# ---- bad values --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given, match",
    [
        (dict(damping=-0.1), "damping must be non-negative"),
        (dict(coulomb=(0.1, 0.2, 0.3)), r"coulomb takes one value or one per joint \(2\), got 3"),
        (dict(armature=float("nan")), "armature must be non-negative finite"),
        (dict(stribeck_velocity=0.0), "stribeck_velocity must be positive"),
        (dict(damping="abc"), "damping must be a number or 2 numbers"),
        (dict(damping=(0.1, "x")), "damping must be a number"),
        (dict(armature=True), "armature must be a number"),
    ],
)
def test_bad_effect_values_are_parameter_errors(toy_path, given, match):
    with pytest.raises(ParameterError, match=match):
        robots.urdf(toy_path, **given)


def test_plant_effects_checks_realistic_and_names():
    with pytest.raises(ParameterError, match="realistic must be true or false, got 'yes'"):
        robots.plant_effects("panda", 7, {}, realistic="yes")
    with pytest.raises(ParameterError, match="no realistic preset"):
        robots.plant_effects("toy", 2, {}, realistic=True)
    with pytest.raises(UnknownNameError, match="friction"):
        robots.plant_effects("toy", 2, {"friction": 1.0})
    effects = robots.plant_effects("toy", 2, {"coulomb": [0.1, 0.2]})
    np.testing.assert_array_equal(effects["coulomb"], [0.1, 0.2])
    assert effects["stribeck_velocity"].tolist() == [0.1, 0.1] and not effects["armature"].any()


BAD_URDFS = {
    "garbage.urdf": ("this is <not xml", "not well-formed XML"),
    "norobot.urdf": ("<foo/>", "Could not find the 'robot' element"),
    "nolimit.urdf": (
        '<robot name="r"><link name="a"/><link name="b"/><joint name="j" type="revolute">'
        '<parent link="a"/><child link="b"/></joint></robot>',
        "does not specify limits",
    ),
    "badmass.urdf": (
        '<robot name="r"><link name="a"><inertial><mass value="heavy"/>'
        '<inertia ixx="1" iyy="1" izz="1" ixy="0" ixz="0" iyz="0"/></inertial></link></robot>',
        "mass [heavy] is not a float",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_URDFS))
def test_unreadable_urdf_is_a_clear_error(tmp_path, capfd, name):
    text, detail = BAD_URDFS[name]
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(LagraxError, match="cannot read URDF") as info:
        lagrax.system("urdf", path=str(path))
    assert detail in str(info.value) and "\n" not in str(info.value)
    assert capfd.readouterr().err == ""  # the parser's complaints are in the message, not on stderr


def test_missing_urdf_paths(tmp_path):
    with pytest.raises(LagraxError, match="URDF file not found: 'no/such.urdf'"):
        lagrax.system("urdf", path="no/such.urdf")
    with pytest.raises(LagraxError, match="is a directory"):
        lagrax.system("urdf", path=str(tmp_path))


def cli_error(capfd, *argv):
    code = main(list(argv))
    err = capfd.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_cli_bad_urdfs_and_params(tmp_path, toy_path, capfd):
    out = str(tmp_path / "x.npz")
    assert "URDF file not found: 'bad.urdf'" in cli_error(
        capfd, "generate", "--system", "urdf", "-p", "path=bad.urdf", "--out", out
    )
    garbage = tmp_path / "garbage.urdf"
    garbage.write_text("<robot")
    err = cli_error(capfd, "generate", "--system", "urdf", "-p", f"path={garbage}", "--out", out)
    assert "cannot read URDF" in err and "not well-formed XML" in err
    toy = ["generate", "--system", "urdf", "-p", f"path={toy_path}", "--out", out]
    assert "damping must be non-negative" in cli_error(capfd, *toy, "-p", "damping=-1")
    assert "one per joint (2), got 3" in cli_error(capfd, *toy, "-p", "armature=0.1,0.2,0.3")
    assert "empty entry" in cli_error(capfd, *toy, "-p", "coulomb=0.1,,0.2")
    assert "coulomb must be a number" in cli_error(capfd, *toy, "-p", "coulomb=lots")
    assert "given twice" in cli_error(capfd, *toy, "-p", "coulomb=1", "-p", "coulomb=2")
    assert "--dt and --rate" in cli_error(capfd, *toy, "--dt", "0.01", "--rate", "500")
    assert "must include q and tau" in cli_error(capfd, *toy, "--measured", "q")
    assert "unknown measured signal 'qdot'" in cli_error(capfd, *toy, "--measured", "q,qdot,tau")
    assert not (tmp_path / "x.npz").exists()


# ---- sensors in generate -----------------------------------------------------------------


@pytest.fixture(scope="module")
def ur5_clean():
    if not HAVE_URDFS:
        pytest.skip("example-robot-data is not installed")
    ur5 = lagrax.system("ur5", realistic=True)
    return ur5, generate(ur5, trajectories=2, duration=1.0, rate=500, seed=3)


def test_rate_sets_the_sample_period(ur5_clean):
    ur5, clean = ur5_clean
    assert clean.dt == 0.002 and clean.metadata["rate"] == 500.0 and len(clean) == 2 * 501
    np.testing.assert_allclose(np.diff(clean.t[:501]), 0.002, rtol=1e-12)
    assert clean.metadata["sensors"]["measured"] == ["q", "qd", "qdd", "tau"]
    with pytest.raises(LagraxError, match="not both"):
        generate(ur5, dt=0.01, rate=100)
    with pytest.raises(LagraxError, match="rate must be a positive number"):
        generate(ur5, rate=-5)


def test_tau_is_the_drive_torque(ur5_clean):
    """tau = rigid body (rnea without armature) + armature qdd + friction, along the true motion."""
    ur5, clean = ur5_clean
    preset = {k: np.asarray(v) for k, v in robots.REALISTIC["ur5"].items()}
    plain = lagrax.system("ur5").pinocchio_model
    rigid = pin_each(pin.rnea, plain, clean.q[::50], clean.qd[::50], clean.qdd[::50])
    expected = rigid + preset["armature"] * clean.qdd[::50]
    expected += closed_form_friction(clean.qd[::50], preset["damping"], preset["coulomb"], 0.0, 0.1)
    np.testing.assert_allclose(clean.tau[::50], expected, atol=1e-9)
    np.testing.assert_allclose(
        clean.inertial
        + clean.coriolis
        + clean.gravity
        + np.asarray(batched(ur5).friction(clean.q, clean.qd)),
        clean.tau,
        atol=1e-9,
    )


def test_noise_levels_of_q_and_tau(ur5_clean):
    ur5, clean = ur5_clean
    noisy = generate(ur5, trajectories=2, duration=1.0, rate=500, seed=3, q_noise=1e-3, tau_noise=0.5)
    # 6012 draws each: the sample std is within 3 % of the true one with overwhelming probability
    dq, dtau = noisy.q - clean.q, noisy.tau - clean.tau
    assert abs(dq.std() / 1e-3 - 1) < 0.05 and abs(dq.mean()) < 1e-4
    assert abs(dtau.std() / 0.5 - 1) < 0.05 and abs(dtau.mean()) < 0.05
    # velocities, accelerations and the ground truth are untouched
    for field in ("qd", "qdd", "mass_matrix", "inertial", "energy"):
        np.testing.assert_array_equal(getattr(noisy, field), getattr(clean, field))
    sensors = noisy.metadata["sensors"]
    assert sensors["q_noise"] == 1e-3 and sensors["tau_noise"] == 0.5 and sensors["estimated"] == []
    # noise= is shorthand for both (the same draws as before q_noise/tau_noise existed)
    both = generate(ur5, trajectories=2, duration=1.0, rate=500, seed=3, noise=1e-3)
    same = generate(ur5, trajectories=2, duration=1.0, rate=500, seed=3, q_noise=1e-3, tau_noise=1e-3)
    np.testing.assert_array_equal(both.q, same.q)
    np.testing.assert_array_equal(both.tau, same.tau)
    assert both.metadata["noise"] == 1e-3
    only_tau = generate(ur5, trajectories=2, duration=1.0, rate=500, seed=3, noise=1e-3, q_noise=0.0)
    np.testing.assert_array_equal(only_tau.q, clean.q)
    with pytest.raises(LagraxError, match="tau_noise must be a non-negative number"):
        generate(ur5, tau_noise=-1.0)


def test_measured_q_and_tau_reestimates_derivatives(ur5_clean):
    """Encoder-like noise (1e-5 rad) at 500 Hz: the Savitzky-Golay estimates (11 samples, cubic)
    are within 1 % (qd) and 5 % (qdd) RMS of the true values, relative to their RMS."""
    ur5, clean = ur5_clean
    logged = generate(ur5, trajectories=2, duration=1.0, rate=500, seed=3, q_noise=1e-5, measured="q,tau")
    for field, tol in (("qd", 0.01), ("qdd", 0.05)):
        err = getattr(logged, field) - getattr(clean, field)
        rel = np.sqrt(np.mean(err**2) / np.mean(getattr(clean, field) ** 2))
        assert 0 < rel < tol, (field, rel)
    # the ground truth stays that of the true motion, and tau is measured (noise-free here)
    for field in ("tau", "mass_matrix", "inertial", "coriolis", "gravity", "energy", "p", "pdot"):
        np.testing.assert_array_equal(getattr(logged, field), getattr(clean, field))
    sensors = logged.metadata["sensors"]
    assert sensors["measured"] == ["q", "tau"] and sensors["estimated"] == ["qd", "qdd"]
    assert sensors["derivatives"] == {"method": "savgol", "window": 11, "polyorder": 3}
    # qd measured too: only qdd is estimated
    partly = generate(ur5, trajectories=2, duration=1.0, rate=500, seed=3, measured=["q", "qd", "tau"])
    np.testing.assert_array_equal(partly.qd, clean.qd)
    assert partly.metadata["sensors"]["estimated"] == ["qdd"]
    with pytest.raises(LagraxError, match="window must be an odd number"):
        generate(ur5, measured="q,tau", savgol_window=10)


def test_cli_rate_noise_and_measured(tmp_path, toy_path, capfd):
    out = tmp_path / "toy.npz"
    argv = ["generate", "-s", "urdf", "-p", f"path={toy_path}"]
    argv += ["-p", "armature=0.05,0.02", "-p", "coulomb=0.1"]
    argv += ["--out", str(out), "--trajectories", "2", "--duration", "0.2", "--rate", "1000"]
    argv += ["--q-noise", "1e-4", "--tau-noise", "0.01", "--measured", "q,tau", "--savgol-window", "7"]
    assert main(argv) == 0, capfd.readouterr().err
    ds = load_dataset(out)
    assert ds.dt == 0.001 and len(ds) == 2 * 201
    sensors = ds.metadata["sensors"]
    assert (
        sensors["q_noise"] == 1e-4 and sensors["tau_noise"] == 0.01 and sensors["derivatives"]["window"] == 7
    )
    params = dict(ds.info.params)
    assert params["armature"] == (0.05, 0.02) and params["coulomb"] == 0.1
