"""Closed-loop tracking control (lagrax.control.laws), its pure-JAX robot plant
(lagrax.systems.rigid_body) and online learning (lagrax.control.online)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lagrax
from lagrax.control.laws import (
    Controller,
    Gains,
    LoopSettings,
    PlantChange,
    default_gains,
    track,
    tracking_metrics,
)
from lagrax.core.errors import OutOfRangeError, ShapeError
from lagrax.control.online import OnlineSettings, Replay, online_track
from lagrax.systems.robots import example_robot_data_path
from lagrax.data.generators import reference_trajectories

pytestmark = pytest.mark.usefixtures("cheap_compilation")  # compiling is most of their time

pin = pytest.importorskip("pinocchio")

# robots lagrax has no factory for: the "hidden" check runs on them (slow: compiling each
# robot's closed loop takes a minute or more)
OTHER_URDFS = ["z1_description/urdf/z1.urdf", "xarm_description/urdf/xarm7.urdf"]
SLOW_URDFS = [pytest.param(name, marks=pytest.mark.slow) for name in OTHER_URDFS]
TWO_DOF = "asr_twodof_description/urdf/TwoDofs.urdf"  # a small arm: its loops compile in seconds


def robot(name: str):
    if name in ("panda", "ur5"):
        return lagrax.system(name, realistic=True)
    return lagrax.system("urdf", path=str(example_robot_data_path(name)))


def random_states(dof: int, count: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    return tuple(rng.uniform(-1.5, 1.5, (count, dof)) for _ in range(3))


# --------------------------------------------------------------------------------------
# The pure-JAX plant equals Pinocchio
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["panda", "ur5", *SLOW_URDFS])
def test_the_rigid_body_tree_equals_pinocchio(name):
    truth = robot(name)
    tree = truth.rigid_body_tree()
    q, qd, qdd = random_states(truth.info.dof)

    def quantities(system, q, qd, qdd):
        return (
            system.inverse_dynamics(q, qd, qdd),
            system.mass_matrix(q),
            system.gravity(q),
            system.potential_energy(q),
            system.forward_dynamics(q, qd, qdd),
        )

    mine = jax.jit(jax.vmap(lambda *x: quantities(tree, *x)))(q, qd, qdd)  # one compilation
    a = lagrax.batched(truth)
    theirs = quantities(a, q, qd, qdd)
    for got, want, atol in zip(mine, theirs, (1e-9, 1e-11, 1e-10, 1e-10, 1e-8)):
        np.testing.assert_allclose(got, want, atol=atol)


def test_a_payload_is_pinocchio_with_the_mass_added_to_the_last_link():
    truth = lagrax.system("panda")
    offset = np.array([0.0, 0.02, 0.1])
    heavy = truth.rigid_body_tree().with_payload(2.0, offset)
    model = truth.pinocchio_model.copy()
    last = model.njoints - 1
    model.inertias[last] = model.inertias[last] + pin.Inertia(2.0, offset, np.zeros((3, 3)))
    data = model.createData()
    q, qd, qdd = (x[0] for x in random_states(7, 1, seed=3))
    expected = pin.rnea(model, data, q, qd, qdd)
    np.testing.assert_allclose(heavy.inverse_dynamics(q, qd, qdd), expected, atol=1e-10)
    assert not np.allclose(truth.rigid_body_tree().inverse_dynamics(q, qd, qdd), expected, atol=1e-3)


# --------------------------------------------------------------------------------------
# Closed loop
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def arm():
    return lagrax.system("two_link_arm")


@pytest.fixture(scope="module")
def refs(arm):
    return reference_trajectories(arm.info, 2.0, 2e-3, count=3, seed=1)


SLOW = LoopSettings(rate=500.0)


def test_computed_torque_with_the_true_model_tracks_far_better_than_pd(arm, refs):
    errors = {}
    for controller in Controller:
        gains = default_gains(controller, arm, refs[0][0, 0], 10.0)
        trace = track(arm, arm, controller, gains, refs, SLOW)
        errors[controller] = tracking_metrics(trace, refs, SLOW.dt)["rmse_all"]
    # with the exact model only the zero-order hold (2 ms) is left
    assert errors[Controller.COMPUTED_TORQUE] < 1e-3
    assert errors[Controller.FEEDFORWARD_PD] < 1e-3
    assert errors[Controller.PD] > 20 * errors[Controller.COMPUTED_TORQUE]


def test_tracking_many_references_at_once_equals_one_at_a_time(arm, refs):
    gains = Gains.critical(2, 10.0)
    together = track(arm, arm, "computed-torque", gains, refs, SLOW)
    for b in range(3):
        alone = track(arm, arm, "computed-torque", gains, tuple(r[b : b + 1] for r in refs), SLOW)
        np.testing.assert_allclose(np.asarray(together.q[b]), np.asarray(alone.q[0]), rtol=1e-10, atol=1e-12)


def test_torque_limits_clip_and_noise_is_seeded(arm, refs):
    gains = Gains.critical(2, 10.0)
    limited = track(
        arm, arm, "computed-torque", gains, refs, LoopSettings(rate=500.0, torque_limit=(1.0, 0.5))
    )
    assert np.all(np.abs(np.asarray(limited.tau)) <= np.array([1.0, 0.5]) + 1e-12)
    noisy = LoopSettings(rate=500.0, q_noise=1e-3, qd_noise=1e-2)
    a, b = (track(arm, arm, "computed-torque", gains, refs, noisy, seed=s) for s in (0, 0))
    c = track(arm, arm, "computed-torque", gains, refs, noisy, seed=1)
    np.testing.assert_array_equal(np.asarray(a.q), np.asarray(b.q))
    assert not np.array_equal(np.asarray(a.q), np.asarray(c.q))


def test_a_plant_change_takes_effect_at_its_tick():
    plant = robot(TWO_DOF).rigid_body_tree()
    ref = reference_trajectories(plant.info, 0.4, 2e-3, count=1, seed=0)
    gains = Gains.critical(2, 10.0)
    heavy = plant.with_payload(3.0)

    def run(tick: int):  # the tick as an array: both runs are one compiled program
        return track(
            plant, plant, "computed-torque", gains, ref, SLOW, change=PlantChange(heavy, jnp.asarray(tick))
        )

    same, changed = run(10**6), run(100)  # a change after the end, and at tick 100
    q0, q1 = np.asarray(same.q[0]), np.asarray(changed.q[0])
    np.testing.assert_array_equal(q0[:101], q1[:101])  # the state at tick 100 is before the change acts
    assert np.max(np.abs(q0[110:] - q1[110:])) > 1e-6


@pytest.mark.parametrize("name", SLOW_URDFS)
def test_computed_torque_tracks_robots_lagrax_has_no_factory_for(name):
    plant = robot(name).rigid_body_tree()
    ref = reference_trajectories(plant.info, 0.5, 2e-3, count=2, seed=2)
    trace = track(plant, plant, "computed-torque", Gains.critical(plant.info.dof, 10.0), ref, SLOW)
    m = tracking_metrics(trace, ref, SLOW.dt)
    pd = track(plant, None, "pd", default_gains(Controller.PD, plant, ref[0][0, 0]), ref, SLOW)
    assert m["finite"] and m["rmse_all"] < 5e-3
    assert m["rmse_all"] < 0.1 * tracking_metrics(pd, ref, SLOW.dt)["rmse_all"]


# --------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------


def test_a_gain_of_the_wrong_size_or_sign_is_refused():
    with pytest.raises(ShapeError, match="controller gain kd has 3 values, the robot has 2 joints"):
        Gains.make(2, 1.0, [1.0, 2.0, 3.0])
    with pytest.raises(OutOfRangeError, match="kp must be finite and >= 0"):
        Gains.make(2, [1.0, -1.0], 1.0)


def test_a_reference_outside_the_joint_limits_is_refused_or_clipped():
    plant = robot(TWO_DOF).rigid_body_tree()
    q, qd, qdd = reference_trajectories(plant.info, 0.1, 2e-3, count=1, seed=0)
    q = q.copy()
    q[0, 10, 1] = 5.0
    gains = default_gains(Controller.PD, plant, q[0, 0])
    joint = plant.info.joint_names[1]
    with pytest.raises(OutOfRangeError, match=rf"{joint} = 5 at sample 10 of trajectory 0, limits"):
        track(plant, plant, "pd", gains, (q, qd, qdd), SLOW)
    trace = track(plant, None, "pd", gains, (q, qd, qdd), SLOW, clip=True)
    assert np.all(np.isfinite(np.asarray(trace.q)))


def test_a_model_for_another_robot_or_joint_order_is_refused():
    panda = lagrax.system("panda").rigid_body_tree()
    ref = reference_trajectories(panda.info, 0.1, 2e-3, count=1, seed=0)
    gains = Gains.critical(7, 10.0)
    ur5 = lagrax.make_model("delan", lagrax.system("ur5").info, key=jax.random.PRNGKey(0), width=8)
    with pytest.raises(ShapeError, match="the model has 6 joints"):
        track(panda, ur5, "computed-torque", gains, ref, SLOW)
    names = tuple(reversed(panda.info.joint_names))
    import dataclasses

    other = lagrax.make_model(
        "delan", dataclasses.replace(panda.info, joint_names=names), key=jax.random.PRNGKey(0)
    )
    with pytest.raises(ShapeError, match="another joint order"):
        track(panda, other, "computed-torque", gains, ref, SLOW)


# --------------------------------------------------------------------------------------
# Online learning
# --------------------------------------------------------------------------------------


def test_the_replay_buffer_keeps_the_newest_samples_and_draws_from_those_held():
    buf = Replay.empty(4, 1)
    for k in range(6):
        buf = buf.add(jnp.array([k]), jnp.zeros(1), jnp.zeros(1), jnp.zeros(1))
    assert int(buf.count) == 6 and sorted(np.asarray(buf.q[:, 0]).tolist()) == [2.0, 3.0, 4.0, 5.0]
    fresh = Replay.empty(100, 1).add(jnp.array([7.0]), jnp.zeros(1), jnp.zeros(1), jnp.zeros(1))
    assert set(np.asarray(fresh.draw(jax.random.PRNGKey(0), 50)["q"][:, 0]).tolist()) == {7.0}


@pytest.mark.slow
def test_online_learning_from_scratch_reaches_the_true_models_tracking(arm):
    """A new DeLaN learns while it controls the two-link arm (feed-forward PD, 250 Hz):
    over the last of six periods it tracks some 10x better than the same model not
    updated, and within 3x of the exact model's feed-forward."""
    one = reference_trajectories(arm.info, 4.0, 4e-3, count=1, seed=1)
    ref = tuple(np.concatenate([r[:, :-1]] * 6 + [r[:, -1:]], axis=1) for r in one)
    settings = LoopSettings(rate=250.0)
    model = lagrax.make_model("delan", arm.info, key=jax.random.PRNGKey(0), width=32, precision="float64")
    gains = default_gains(Controller.FEEDFORWARD_PD, arm, ref[0][0, 0], 10.0)
    trace, learning, learned = online_track(
        arm, model, "feedforward-pd", gains, ref, settings, OnlineSettings(lr=3e-3)
    )
    last = slice(5 * 1000, None)

    def late_rmse(q):
        return float(np.sqrt(np.mean((ref[0][0, last] - np.asarray(q)[last]) ** 2)))

    static = track(arm, model, "feedforward-pd", gains, ref, settings)
    exact = track(arm, arm, "feedforward-pd", gains, ref, settings)
    online = late_rmse(trace.q)
    assert online < 0.1 * late_rmse(static.q[0])
    assert online < 3 * late_rmse(exact.q[0])
    assert int(np.sum(np.asarray(learning.updated))) > 5000
    changed = [
        not np.array_equal(a, b)
        for a, b in zip(
            jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_array)),
            jax.tree_util.tree_leaves(eqx.filter(learned, eqx.is_array)),
        )
    ]
    assert sum(changed) > len(changed) // 2  # the returned model is the learned one


def test_online_settings_are_checked():
    with pytest.raises(OutOfRangeError, match="online batch_size must be a whole number >= 1"):
        OnlineSettings(batch_size=0)
    with pytest.raises(OutOfRangeError, match="online lr must be positive"):
        OnlineSettings(lr=-1.0)


# --------------------------------------------------------------------------------------
# lagrax control
# --------------------------------------------------------------------------------------


def test_lagrax_control_writes_its_table_arrays_and_figures_and_keeps_them(cli, tmp_path):
    import json

    from tests.helpers import assert_clean_error

    out = tmp_path / "ctl.npz"
    code, stdout, err = cli(
        "control",
        "--system",
        "two_link_arm",
        "--duration",
        "1",
        "--rate",
        "500",
        "--count",
        "2",
        "--out",
        out,
    )
    assert code == 0, err
    rows = json.loads(out.with_suffix(".json").read_text())["rows"]
    assert list(rows) == ["analytic", "pd"]
    assert rows["analytic"]["rmse_all"] < 1e-3 < rows["pd"]["rmse_all"]
    for suffix in ("-tracking.png", "-errors.png"):
        assert (tmp_path / f"ctl{suffix}").stat().st_size > 10_000
    assert np.load(out)["q_0"].shape == (2, 501, 2)
    before = out.read_bytes()
    code, _, err = cli("control", "--system", "two_link_arm", "--duration", "1", "--out", out)
    assert_clean_error(code, err, "exists")
    assert out.read_bytes() == before


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--kp", "1,2,3", "--kd", "1"], ["controller gain kp has 3 values, the robot has 2 joints"]),
        (["--kp", "1"], ["give both --kp and --kd"]),
        (["--controller", "lqr"], ["unknown controller 'lqr'"]),
        (["--trajectory", "missing.npz"], ["missing.npz does not exist"]),
        (["--scratch", "delan"], ["add --online"]),
        (["--payload", "1"], ["--payload needs a robot from a urdf"]),
    ],
)
def test_lagrax_control_refuses_bad_input_in_one_line(cli, tmp_path, args, fragments):
    from tests.helpers import assert_clean_error

    code, _, err = cli(
        "control", "--system", "two_link_arm", "--duration", "0.2", "--out", tmp_path / "x.npz", *args
    )
    assert_clean_error(code, err, *fragments)
    assert not (tmp_path / "x.npz").exists()


@pytest.mark.parametrize(
    "kind, text", [("urdf", "<robot name='x'><link name='a'></robot>"), ("mjcf", "<mujoco><worldbody>")]
)
def test_lagrax_control_refuses_a_urdf_that_does_not_parse(cli, tmp_path, kind, text):
    from tests.helpers import assert_clean_error

    if kind == "mjcf":
        pytest.importorskip("mujoco")
    bad = tmp_path / f"bad.{'xml' if kind == 'mjcf' else kind}"
    bad.write_text(text)
    code, _, err = cli("control", "--system", kind, "-p", f"path={bad}", "--out", tmp_path / "x.npz")
    assert_clean_error(code, err, bad.name)
    assert not (tmp_path / "x.npz").exists()


def test_an_mjcf_arm_is_controlled_through_mujoco():
    pytest.importorskip("mujoco")
    pusher = lagrax.system("pusher")
    ref = reference_trajectories(pusher.info, 0.3, 2e-3, count=2, seed=0)
    ct = track(pusher, pusher, "computed-torque", Gains.critical(pusher.info.dof, 10.0), ref, SLOW)
    pd = track(pusher, None, "pd", default_gains(Controller.PD, pusher, ref[0][0, 0]), ref, SLOW)
    error = tracking_metrics(ct, ref, SLOW.dt)["rmse_all"]
    assert error < 5e-3 and error < 0.1 * tracking_metrics(pd, ref, SLOW.dt)["rmse_all"]


# --------------------------------------------------------------------------------------
# A loop that blows up stops, and says when and why
# --------------------------------------------------------------------------------------


def test_a_loop_stops_at_its_first_non_finite_state_and_holds_it(arm, refs):
    from lagrax.control.laws import FAULTS, divergence

    wild = Gains.make(2, 1e12, 0.0)  # 500 Hz: each step multiplies the error by ~1e6
    trace = track(arm, arm, "pd", wild, refs, SLOW)
    fault = np.asarray(trace.fault)
    assert np.all(np.isfinite(np.asarray(trace.q))) and np.all(np.isfinite(np.asarray(trace.tau)))
    k = int(np.argmax(fault[0] != 0))
    assert 0 < k < 200 and np.all(fault[0, k:] == 2) and np.all(fault[0, :k] == 0)
    assert np.all(np.asarray(trace.q)[0, k:] == np.asarray(trace.q)[0, k])  # held
    assert np.all(np.asarray(trace.tau)[0, k:] == 0.0)
    stopped = divergence(trace, SLOW.dt)
    assert stopped["cause"] == FAULTS[2] and stopped["references"] == 3
    assert stopped["t"] == pytest.approx(min(np.argmax(f != 0) for f in fault) * SLOW.dt)
    m = tracking_metrics(trace, refs, SLOW.dt)
    assert m["finite"] is False and m["rmse_all"] is None and m["diverged"] == stopped


def test_a_model_with_a_non_finite_torque_stops_the_loop_at_that_tick(arm, refs):
    from lagrax.control.laws import FAULTS, describe_divergence, divergence

    model = lagrax.make_model("delan", arm.info, key=jax.random.PRNGKey(0), width=8)
    broken = jax.tree_util.tree_map(lambda a: a * np.nan if eqx.is_inexact_array(a) else a, model)
    trace = track(arm, broken, "computed-torque", Gains.critical(2, 10.0), refs, SLOW)
    assert np.all(np.asarray(trace.fault) == 1)
    stopped = divergence(trace, SLOW.dt)
    assert stopped == dict(t=0.0, cause=FAULTS[1], reference=0, references=3)
    assert describe_divergence(stopped) == f"diverged at t = 0 s ({FAULTS[1]})"
    fine = track(arm, arm, "computed-torque", Gains.critical(2, 10.0), refs, SLOW)
    assert divergence(fine, SLOW.dt) is None and np.all(np.asarray(fine.fault) == 0)


def test_lagrax_control_reports_diverged_rows_and_fails_only_when_every_learned_one_did(cli, tmp_path):
    import json

    from tests.helpers import assert_clean_error

    args = ["control", "--system", "two_link_arm", "--duration", "0.4", "--rate", "500"]
    wild = ["--kp", "1e12", "--kd", "0"]
    out = tmp_path / "baselines.npz"
    code, stdout, err = cli(*args, *wild, "--out", out)
    assert code == 0, err  # no learned row: nothing learned failed
    text = out.with_suffix(".json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    rows = json.loads(text)["rows"]
    assert rows["pd"]["finite"] is False and rows["pd"]["diverged"]["t"] > 0
    assert "diverged at t =" in stdout
    out = tmp_path / "online.npz"
    code, stdout, err = cli(*args, *wild, "--online", "--scratch", "delan", "--out", out)
    assert_clean_error(code, err, "every learned model's closed loop diverged")
    assert out.exists() and out.with_suffix(".json").exists()  # written first: nothing is lost
    rows = json.loads(out.with_suffix(".json").read_text())["rows"]
    assert {"delan (new)", "delan (new) online"} <= set(rows)
    assert all(r["diverged"] for r in rows.values())


def test_online_from_scratch_with_no_other_flag_starts_on_feedforward_pd_and_holds(cli, tmp_path):
    import json

    out = tmp_path / "scratch.npz"
    args = ["control", "--system", "two_link_arm", "--duration", "1", "--rate", "250", "--out", out]
    code, stdout, err = cli(*args, "--online", "--scratch", "delan")
    assert code == 0, err
    result = json.loads(out.with_suffix(".json").read_text())
    assert result["settings"]["controller"] == "feedforward-pd"
    rows = result["rows"]
    assert rows["delan (new) online"]["finite"] and rows["delan (new) online"]["updates"] > 100
    assert rows["delan (new) online"]["rmse_all"] < 2 * rows["pd"]["rmse_all"]


def test_automatic_gains_come_from_the_inertia_and_torque_limits():
    from lagrax.control.laws import MAX_BANDWIDTH_PER_HZ, SATURATION_ERROR, automatic_bandwidths
    from lagrax.control.laws import effective_inertia

    plant = robot(TWO_DOF).rigid_body_tree()
    q = np.array([0.3, -0.4])
    for rate in (1000.0, 100.0):
        w = automatic_bandwidths(plant, q, rate)
        gains = default_gains(Controller.PD, plant, q, rate=rate)
        inertia = effective_inertia(plant, q)
        limit = np.asarray(plant.info.torque_limits)
        assert np.all(w <= MAX_BANDWIDTH_PER_HZ * rate + 1e-12)
        # the gain reaches the torque limit at the saturation error, unless the rate caps it
        reach = np.asarray(gains.kp) * SATURATION_ERROR
        assert np.all(
            (np.isclose(reach, limit) | (reach < limit))
            & (np.isclose(w, MAX_BANDWIDTH_PER_HZ * rate) | np.isclose(reach, limit))
        )
        np.testing.assert_allclose(np.asarray(gains.kd), 2 * inertia * w)
        ct = default_gains(Controller.COMPUTED_TORQUE, plant, q, rate=rate)
        np.testing.assert_allclose(np.asarray(ct.kp), np.min(w) ** 2)
    free = lagrax.system("two_link_arm")  # no torque limits: the fallback bandwidth
    assert free.info.torque_limits is None
    np.testing.assert_allclose(np.asarray(default_gains(Controller.COMPUTED_TORQUE, free, q).kp), 100.0)
