"""Datasets: file round trip and validation, the DeLaN reference file, trajectory splits,
the generators (excitation, passive, driven, characters) against the physics, and the
registry of kinds with their settings objects."""

import dataclasses
import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lagrax.data.dataset import Dataset, concatenate, load_dataset, save_dataset
from lagrax.core.errors import DatasetError, FileExistsLagraxError, LagraxError, UnknownNameError
from lagrax.systems import system
from lagrax.data.signals import savgol_derivatives
from lagrax.data.generators import (
    KINDS,
    CharacterSettings,
    ExcitationSettings,
    PassiveSettings,
    Sensors,
    StatesSettings,
    generate,
)
from lagrax.systems.batching import batched

pytestmark = pytest.mark.usefixtures("cheap_compilation")  # compiling is most of their time


def central_difference(x, dt):
    """(x[k+1] - x[k-1]) / 2 dt at interior samples of one trajectory."""
    return (x[2:] - x[:-2]) / (2 * dt)


def assert_derivative(x, xdot, dt, rtol):
    """``xdot`` is the time derivative of ``x``: central differences agree to ``rtol`` of its range."""
    err = np.abs(central_difference(x, dt) - xdot[1:-1]).max()
    assert err < rtol * np.abs(xdot).max(), (err, np.abs(xdot).max())


@pytest.fixture(scope="module")
def limited_pendulum():
    """The double pendulum with position and velocity limits (the registry one has none)."""
    dp = system("double_pendulum")
    info = dataclasses.replace(
        dp.info, position_limits=((-1.0, 0.5), (-0.5, 2.0)), velocity_limits=(1.5, 2.5)
    )
    return dataclasses.replace(dp, info=info)


@pytest.fixture(scope="module")
def excitation_data(limited_pendulum):
    return generate(limited_pendulum, kind="excitation", trajectories=4, duration=2.0, dt=0.005, seed=3)


@pytest.fixture(scope="module")
def arm():
    return system("two_link_arm")


@pytest.fixture(scope="module")
def character_data(arm):
    return generate(arm, kind="characters", letters="aeilmz", dt=0.01, seed=1)


def synthetic(n_traj=7, length=5, dof=2, labels=True):
    """A small dataset without physics, for format and split tests."""
    rng = np.random.default_rng(0)
    N = n_traj * length
    return Dataset(
        t=np.tile(np.arange(length) * 0.1, n_traj),
        q=rng.standard_normal((N, dof)),
        qd=rng.standard_normal((N, dof)),
        qdd=rng.standard_normal((N, dof)),
        trajectory=np.repeat(np.arange(n_traj), length),
        tau=rng.standard_normal((N, dof)),
        labels=[chr(ord("a") + i) for i in range(n_traj)] if labels else None,
        metadata={
            "system": system("double_pendulum").info.to_json() if dof == 2 else {"dof": dof},
            "dt": 0.1,
        },
    )


# --------------------------------------------------------------------------------------
# Format
# --------------------------------------------------------------------------------------


def test_save_load_round_trip(excitation_data, tmp_path):
    path = save_dataset(excitation_data, tmp_path / "d.npz")
    back = load_dataset(path)
    for f in (
        "t",
        "q",
        "qd",
        "qdd",
        "trajectory",
        "tau",
        "mass_matrix",
        "inertial",
        "coriolis",
        "gravity",
        "energy",
        "p",
        "pdot",
    ):
        np.testing.assert_array_equal(getattr(back, f), getattr(excitation_data, f), err_msg=f)
    assert back.metadata == excitation_data.metadata
    assert back.info == excitation_data.info
    assert back.dt == 0.005 and back.n_trajectories == 4


def test_save_refuses_overwrite_and_writes_atomically(tmp_path):
    ds = synthetic()
    path = save_dataset(ds, tmp_path / "d.npz")
    before = path.read_bytes()
    with pytest.raises(FileExistsLagraxError, match="exists"):
        save_dataset(synthetic(n_traj=3), path)
    assert path.read_bytes() == before
    save_dataset(synthetic(n_traj=3), path, force=True)
    assert load_dataset(path).n_trajectories == 3
    assert [p.name for p in tmp_path.iterdir()] == ["d.npz"]  # no temp files left behind


def test_labels_round_trip(tmp_path):
    ds = synthetic()
    back = load_dataset(save_dataset(ds, tmp_path / "d.npz"))
    assert back.labels == ds.labels and back.label(3) == "d"


def _write(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_concatenated_datasets_keep_every_sample_and_distinct_trajectories(limited_pendulum):
    short = generate(limited_pendulum, "excitation", trajectories=2, duration=0.3, dt=0.05, seed=0)
    long = generate(limited_pendulum, "excitation", trajectories=3, duration=0.6, dt=0.05, seed=1)
    both = concatenate([short, long])
    assert len(both) == len(short) + len(long) and both.n_trajectories == 5
    np.testing.assert_array_equal(both.q, np.concatenate([short.q, long.q]))
    np.testing.assert_array_equal(both.select_trajectories([2]).q, long.select_trajectories([0]).q)
    assert both.info == short.info and len(both.metadata["parts"]) == 2
    other = generate(system("double_pendulum"), "excitation", trajectories=1, duration=0.3, dt=0.05)
    with pytest.raises(DatasetError, match="another system"):
        concatenate([short, other])
    with pytest.raises(DatasetError, match="fields"):
        concatenate([short, dataclasses.replace(long, tau=None)])
    with pytest.raises(DatasetError, match="at least one"):
        concatenate([])


def test_validation_messages(tmp_path):
    ds = synthetic()
    base = {f: getattr(ds, f) for f in ("t", "q", "qd", "qdd", "trajectory", "tau")}
    meta = np.asarray('{"system": ' + __import__("json").dumps(ds.metadata["system"]) + "}")
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "missing.npz")
    missing = {k: v for k, v in base.items() if k != "qdd"}
    with pytest.raises(DatasetError, match="missing required keys.*qdd"):
        load_dataset(_write(tmp_path / "a.npz", **missing, metadata=meta))
    q = base["q"].copy()
    q[[1, 4, 9], 0] = np.nan
    q[2, 1] = np.inf
    with pytest.raises(DatasetError, match=r"'q' has 4 non-finite"):
        load_dataset(_write(tmp_path / "b.npz", **{**base, "q": q}, metadata=meta))
    with pytest.raises(DatasetError, match="inconsistent length.*'tau'"):
        load_dataset(_write(tmp_path / "c.npz", **{**base, "tau": base["tau"][:-1]}, metadata=meta))
    three = {k: (np.concatenate([v, v[:, :1]], axis=1) if v.ndim == 2 else v) for k, v in base.items()}
    with pytest.raises(DatasetError, match="3 joints but the metadata's system 'double_pendulum' has dof=2"):
        load_dataset(_write(tmp_path / "d.npz", **three, metadata=meta))
    (tmp_path / "e.npz").write_text("not a zip")
    with pytest.raises(DatasetError, match="not an .npz archive.*text file"):
        load_dataset(tmp_path / "e.npz")


# --------------------------------------------------------------------------------------
# The DeLaN reference file
# --------------------------------------------------------------------------------------


def test_delan_character_file(character_file):
    ds = load_dataset(character_file)
    assert len(ds) == 2913 and ds.n_trajectories == 20 and ds.dof == 2
    assert ds.dt == 0.04 and ds.info.name == "delan_character_arm"
    np.testing.assert_allclose(ds.tau, ds.inertial + ds.coriolis + ds.gravity, atol=1e-12)
    np.testing.assert_allclose(np.einsum("nij,nj->ni", ds.mass_matrix, ds.qdd), ds.inertial, atol=1e-12)
    train, test = ds.split(test_labels=["e", "q", "v"])
    assert len(test) == 454 and len(train) == 2459
    assert sorted(test.label(i) for i in test.trajectory_ids) == ["e", "q", "v"]
    # time restarts at 0 at each trajectory start
    for _, traj in ds.trajectories():
        assert traj.t[0] == 0.0 and np.allclose(np.diff(traj.t), 0.04)


# --------------------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------------------


@given(fraction=st.floats(0.1, 0.9), seed=st.integers(0, 2**31 - 1), n_traj=st.integers(2, 30))
def test_split_by_fraction_separates_whole_trajectories(fraction, seed, n_traj):
    ds = synthetic(n_traj=n_traj, length=3)
    n_test = int(round(fraction * n_traj))
    if n_test in (0, n_traj):
        with pytest.raises(DatasetError, match="empty"):
            ds.split(test_fraction=fraction, seed=seed)
        return
    train, test = ds.split(test_fraction=fraction, seed=seed)
    assert not set(train.trajectory) & set(test.trajectory)
    assert len(train) + len(test) == len(ds) and test.n_trajectories == n_test
    # every sample lands with its own trajectory's data, unchanged
    for part in (train, test):
        for i, traj in part.trajectories():
            np.testing.assert_array_equal(traj.q, ds.q[ds.trajectory == i])
    again = ds.split(test_fraction=fraction, seed=seed)[1]
    np.testing.assert_array_equal(again.trajectory, test.trajectory)  # seeded


def test_split_errors():
    ds = synthetic(n_traj=4)
    with pytest.raises(UnknownNameError, match="Known: a, b, c, d"):
        ds.split(test_labels=["a", "x"])
    with pytest.raises(DatasetError, match="no training"):
        ds.split(test_labels="abcd")
    with pytest.raises(DatasetError, match="exactly one"):
        ds.split()
    with pytest.raises(DatasetError, match="empty test"):
        ds.split(test_fraction=0.1)
    unlabelled = synthetic(labels=False)  # trajectories are named by their ids
    with pytest.raises(UnknownNameError, match="unknown trajectory label 'a'. Known: 0, 1"):
        unlabelled.split(test_labels="a")
    train, test = unlabelled.split(test_labels=["1"])
    assert test.trajectory_ids.tolist() == [1] and 1 not in train.trajectory_ids
    sub = ds.select_trajectories([2, 0])
    assert sub.n_trajectories == 2 and sub.label(2) == "c"
    with pytest.raises(DatasetError, match="no trajectories with ids"):
        ds.select_trajectories([9])


# --------------------------------------------------------------------------------------
# Generators
# --------------------------------------------------------------------------------------


def test_excitation_within_limits_and_consistent(excitation_data, limited_pendulum):
    ds = excitation_data
    lim = np.asarray(limited_pendulum.info.position_limits)
    assert np.all(ds.q >= lim[:, 0]) and np.all(ds.q <= lim[:, 1])
    assert np.all(np.abs(ds.qd) <= np.asarray(limited_pendulum.info.velocity_limits))
    # the excitation uses a good part of the range, not a trivially small motion
    assert np.all(np.ptp(ds.q, axis=0) > 0.3 * (lim[:, 1] - lim[:, 0]))
    np.testing.assert_allclose(
        ds.tau, batched(limited_pendulum).inverse_dynamics(ds.q, ds.qd, ds.qdd), atol=1e-10
    )
    # closed-form double pendulum torque (absolute angles, point masses, m = l = 1, g = 9.8)
    q1, q2 = ds.q.T
    w1, w2 = ds.qd.T
    a1, a2 = ds.qdd.T
    d = q1 - q2
    tau1 = 2 * a1 + np.cos(d) * a2 + np.sin(d) * w2**2 + 2 * 9.8 * np.sin(q1)
    tau2 = a2 + np.cos(d) * a1 - np.sin(d) * w1**2 + 9.8 * np.sin(q2)
    np.testing.assert_allclose(ds.tau, np.stack([tau1, tau2], 1), atol=1e-10)
    for _, traj in ds.trajectories():
        assert_derivative(traj.q, traj.qd, ds.dt, 1e-3)
        assert_derivative(traj.qd, traj.qdd, ds.dt, 1e-3)


def test_ground_truth_fields(excitation_data):
    ds = excitation_data
    np.testing.assert_allclose(ds.tau, ds.inertial + ds.coriolis + ds.gravity, atol=1e-10)
    np.testing.assert_allclose(np.einsum("nij,nj->ni", ds.mass_matrix, ds.qdd), ds.inertial, atol=1e-12)
    np.testing.assert_allclose(np.einsum("nij,nj->ni", ds.mass_matrix, ds.qd), ds.p, atol=1e-12)
    for _, traj in ds.trajectories():  # pdot is the time derivative of p along the motion
        assert_derivative(traj.p, traj.pdot, ds.dt, 5e-3)
    # exactly: d/dt (M qd) = M qdd + Mdot qd, with Mdot_12 = -sin(q1 - q2)(w1 - w2) here
    mdot12 = -np.sin(ds.q[:, 0] - ds.q[:, 1]) * (ds.qd[:, 0] - ds.qd[:, 1])
    pdot = ds.inertial + np.stack([mdot12 * ds.qd[:, 1], mdot12 * ds.qd[:, 0]], 1)
    np.testing.assert_allclose(ds.pdot, pdot, atol=1e-10)
    # dE/dt = qd . tau for this frictionless system
    for _, traj in ds.trajectories():
        power = np.sum(traj.qd * traj.tau, axis=1)
        assert_derivative(traj.energy, power, ds.dt, 5e-3)
    assert ds.metadata["kind"] == "excitation" and ds.metadata["seed"] == 3
    assert ds.metadata["generator"]["harmonics"] == 5 and "lagrax_version" in ds.metadata


def test_noise_leaves_ground_truth_clean(limited_pendulum, excitation_data):
    noisy = generate(
        limited_pendulum, kind="excitation", trajectories=4, duration=2.0, dt=0.005, seed=3, noise=0.01
    )
    clean = excitation_data
    for f in ("qd", "qdd", "inertial", "coriolis", "gravity", "mass_matrix", "p", "pdot"):
        np.testing.assert_array_equal(getattr(noisy, f), getattr(clean, f), err_msg=f)
    for f in ("q", "tau"):
        err = getattr(noisy, f) - getattr(clean, f)
        assert 0.008 < err.std() < 0.012 and abs(err.mean()) < 2e-3


def test_passive_conserves_energy():
    s = system("double_pendulum")
    ds = generate(s, kind="passive", trajectories=3, duration=1.0, dt=0.02, seed=0)
    assert np.all(ds.tau == 0.0)
    for _, traj in ds.trajectories():
        e = traj.energy
        assert np.max(np.abs(e - e[0])) < 1e-7 * max(1.0, abs(e[0]))
        assert np.ptp(traj.q) > 0.1  # it actually moved
    # q starts uniform within [-pi, pi) (no position limits on this system)
    starts = ds.q[ds.t == 0.0]
    assert np.all(np.abs(starts) <= np.pi)


def test_underactuated_excitation_is_driven_on_actuated_joints_only():
    dp = system("double_pendulum")
    s = dataclasses.replace(dp, info=dataclasses.replace(dp.info, actuated=(True, False)))
    ds = generate(s, kind="excitation", trajectories=2, duration=1.0, dt=0.01, seed=0)
    assert np.all(ds.tau[:, 1] == 0.0) and np.abs(ds.tau[:, 0]).max() > 0.1
    np.testing.assert_allclose(batched(s).inverse_dynamics(ds.q, ds.qd, ds.qdd), ds.tau, atol=1e-9)
    assert "driven" in ds.metadata["generator"]


def test_savgol_recovers_sinusoid_derivatives():
    dt, w = 0.01, 2.0
    t = np.arange(300) * dt
    phases = np.array([0.0, 1.0])
    # two trajectories of different phase; the filter must not mix them at the seam
    q = np.concatenate([np.stack([np.sin(w * t + p), 0.5 * np.cos(w * t + p)], 1) for p in phases])
    traj = np.repeat([0, 1], len(t))
    qd, qdd = savgol_derivatives(np.tile(t, 2), q, traj, window=11, polyorder=4)
    qd_true = np.concatenate(
        [np.stack([w * np.cos(w * t + p), -0.5 * w * np.sin(w * t + p)], 1) for p in phases]
    )
    np.testing.assert_allclose(qd, qd_true, atol=1e-5)
    np.testing.assert_allclose(qdd, -(w**2) * q, atol=1e-3)
    ds = Dataset.from_positions(np.tile(t, 2), q, traj, window=11, polyorder=4)
    np.testing.assert_array_equal(ds.qd, qd)
    assert ds.n_trajectories == 2 and ds.metadata["derivatives"]["method"] == "savgol"


def test_characters(character_data, arm):
    ds = character_data
    assert [ds.label(i) for i in ds.trajectory_ids] == list("aeilmz")
    np.testing.assert_allclose(ds.tau, batched(arm).inverse_dynamics(ds.q, ds.qd, ds.qdd), atol=1e-10)
    np.testing.assert_allclose(ds.tau, ds.inertial + ds.coriolis + ds.gravity, atol=1e-10)
    lim = np.asarray(arm.info.position_limits)
    assert np.all(ds.q >= lim[:, 0]) and np.all(ds.q <= lim[:, 1])
    for i, traj in ds.trajectories():
        # smooth: qd, qdd are the derivatives of q (no jumps), starting and ending at rest
        assert_derivative(traj.q, traj.qd, ds.dt, 1e-2)
        assert_derivative(traj.qd, traj.qdd, ds.dt, 3e-2)  # tight turns: large jerk at 100 Hz
        assert np.abs(traj.qdd).max() < 20.0
        np.testing.assert_allclose(traj.qd[[0, -1]], 0.0, atol=1e-12)
        # the pen returns to where it started (closed outline) and draws something letter-sized
        xy = np.asarray(arm.forward_kinematics(traj.q))
        np.testing.assert_allclose(xy[0], xy[-1], atol=1e-9)
        assert 0.05 < np.ptp(xy[:, 1]) < 1.0


def test_generate_rejects_bad_options(arm):
    dp = system("double_pendulum")
    with pytest.raises(UnknownNameError, match="unknown dataset kind 'spiral'"):
        generate(dp, kind="spiral")
    with pytest.raises(LagraxError, match="two-link arm"):
        generate(dp, kind="characters")
    with pytest.raises(UnknownNameError, match="unknown option"):
        generate(dp, kind="passive", harmonics=3)
    with pytest.raises(LagraxError, match="lowercase"):
        generate(arm, kind="characters", letters="A")
    with pytest.raises(LagraxError, match="positive"):
        generate(dp, kind="excitation", duration=-1.0)


def test_an_option_of_another_kind_is_named_with_the_kind():
    dp = system("double_pendulum")
    with pytest.raises(UnknownNameError, match=r"\['harmonics'\] for kind 'passive'"):
        generate(dp, kind="passive", harmonics=3)
    with pytest.raises(UnknownNameError, match="Did you mean 'harmonics'"):
        generate(dp, kind="excitation", harmonic=3)
    with pytest.raises(UnknownNameError, match="Did you mean 'passive'"):
        generate(dp, kind="pasive")
    # states have no time axis: no duration, dt or rate (None keeps a kind's default)
    for option in ("duration", "dt", "rate"):
        with pytest.raises(UnknownNameError, match=rf"\['{option}'\] for kind 'states'"):
            generate(dp, kind="states", samples=10, **{option: 1.0})
    with pytest.raises(LagraxError, match="not both"):
        generate(dp, kind="passive", dt=0.01, rate=100.0)


def test_the_registry_holds_each_kind_with_its_settings():
    assert tuple(KINDS) == ("passive", "excitation", "characters", "states")
    settings = {name: kind.settings for name, kind in KINDS.items()}
    assert settings == dict(
        passive=PassiveSettings,
        excitation=ExcitationSettings,
        characters=CharacterSettings,
        states=StatesSettings,
    )
    assert "harmonics" in KINDS["excitation"].options and "harmonics" not in KINDS["passive"].options
    assert "duration" not in KINDS["states"].options and "letters" in KINDS["characters"].options


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda: PassiveSettings(trajectories=0), "at least 1"),
        (lambda: PassiveSettings(trajectories=2.5), "whole number"),
        (lambda: PassiveSettings(duration=0.01, dt=0.01), "need at least 3"),
        (lambda: ExcitationSettings(harmonics=0), "harmonics"),
        (lambda: ExcitationSettings(base_frequency=-1.0), "base_frequency"),
        (lambda: ExcitationSettings(speed=0.0), "speed"),
        (lambda: ExcitationSettings(region="left"), "region"),
        (lambda: CharacterSettings(letters="aB"), "lowercase"),
        (lambda: CharacterSettings(dt=-0.1), "dt must be a positive"),
        (lambda: StatesSettings(samples=0), "samples"),
        (lambda: Sensors.from_options(noise=-1.0), "noise must be a non-negative"),
        (lambda: Sensors(measured="q"), "must include q and tau"),
        (lambda: Sensors(measured="q,tau", window=10), "odd number"),
    ],
)
def test_settings_are_checked_on_construction(make, fragment):
    with pytest.raises(LagraxError, match=fragment):
        make()


def test_a_settings_object_gives_the_same_data_as_keywords():
    pendulum = system("pendulum")
    by_name = generate(pendulum, "states", samples=20, trajectories=4, q_range=(-1, 1), seed=3, noise=0.1)
    settings = StatesSettings(samples=20, trajectories=4, q_range=(-1, 1))
    by_object = generate(pendulum, settings, seed=3, noise=0.1)
    for name in ("t", "q", "qd", "qdd", "tau", "trajectory", "energy"):
        np.testing.assert_array_equal(getattr(by_object, name), getattr(by_name, name))
    assert by_object.metadata["generator"] == by_name.metadata["generator"]
    assert by_object.metadata["kind"] == "states" and by_object.metadata["dt"] == 1.0
    with pytest.raises(LagraxError, match="in its settings object; got also samples"):
        generate(pendulum, settings, samples=30)


def test_written_files_get_normal_permissions(tmp_path):
    """Atomic writes go through a private temporary file; the result must still be readable
    by others as any file the user writes (0o666 minus the umask), and no temporary is left."""
    from lagrax.core.fileio import atomic_write_text

    mask = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "sub" / "a.txt", "hello")
    finally:
        os.umask(mask)
    assert path.read_text() == "hello"
    assert path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["a.txt"]


def test_a_generated_dataset_records_the_one_version():
    """The version has one home (lagrax.core.version); generated data records it."""
    from lagrax.core.version import __version__

    ds = generate(system("pendulum"), kind="passive", trajectories=1, duration=0.1, dt=0.05)
    assert ds.metadata["lagrax_version"] == __version__
