"""Importing robot logs: CSV tables and ROS 1 / ROS 2 bags of sensor_msgs/JointState.

The tests write their own logs of a known motion, q_i(t) = a_i sin(w_i t), with the
joints in a shuffled order in every bag message and an extra gripper joint, and check
that ``lagrax.data.importers`` maps the joints by name, estimates qd and qdd (away from the
ends of each trajectory) close to the analytic derivatives, keeps the logged effort as
tau, and that ``lagrax import`` writes the file and reports bad input in one line.
"""

from pathlib import Path

import numpy as np
import pytest

from lagrax.cli.app import main
from lagrax.data.dataset import load_dataset, save_dataset
from lagrax.core.errors import DatasetError, LagraxError
from lagrax.data.importers import describe_import, read_bag, read_csv, read_log

pytestmark = pytest.mark.usefixtures("cheap_compilation")  # compiling is most of their time

JOINTS = ("shoulder", "elbow", "wrist")
AMPLITUDE = np.array([0.8, 0.5, 0.3])
OMEGA = np.array([1.3, 2.1, 2.9])
DT = 0.01
N = 300
T0_NS = 1_700_000_000 * 10**9 + 123_456_789  # an epoch time, as a robot would stamp it
WINDOW = 11
# Tolerances away from the ends (the first and last WINDOW samples of each trajectory),
# relative to the largest analytic value: uniform samples / jittery samples resampled.
TOL_QD, TOL_QDD = 1e-4, 5e-3
TOL_QD_RESAMPLED, TOL_QDD_RESAMPLED = 3e-3, 3e-2


def truth(t):
    """q, qd, qdd (N, 3) and a torque tau_i = (i + 1) cos(w_i t) that differs per joint."""
    t = np.asarray(t)[:, None]
    s, c = np.sin(OMEGA * t), np.cos(OMEGA * t)
    tau = np.arange(1, 4) * c
    return AMPLITUDE * s, AMPLITUDE * OMEGA * c, -AMPLITUDE * OMEGA**2 * s, tau


def interior(ds):
    """Mask of samples at least WINDOW samples away from both ends of their trajectory."""
    mask = np.zeros(len(ds), bool)
    for i in ds.trajectory_ids:
        idx = np.flatnonzero(ds.trajectory == i)
        mask[idx[WINDOW:-WINDOW]] = True
    return mask


def assert_close(estimate, exact, rtol):
    err = np.abs(estimate - exact).max()
    assert err < rtol * np.abs(exact).max(), (err, np.abs(exact).max())


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_user_error(code, err, *fragments):
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for f in fragments:
        assert f in err, (f, err)


# --------------------------------------------------------------------------------------
# Writing bags
# --------------------------------------------------------------------------------------


def joint_state(typestore, stamp_ns, order, q, qd=None, tau=None, ros1=False):
    """A JointState message with the joints in ``order`` (indices into JOINTS, 3 = gripper)."""
    types = typestore.types
    sec, nanosec = divmod(int(stamp_ns), 10**9)
    stamp = types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec)
    header_type = types["std_msgs/msg/Header"]
    header = header_type(seq=0, stamp=stamp, frame_id="") if ros1 else header_type(stamp=stamp, frame_id="")

    def values(x, gripper):
        return np.array([gripper if i == 3 else x[i] for i in order], dtype=np.float64)

    return types["sensor_msgs/msg/JointState"](
        header=header,
        name=[(JOINTS + ("gripper_finger",))[i] for i in order],
        position=values(q, 0.04),
        velocity=np.array([], np.float64) if qd is None else values(qd, 0.0),
        effort=np.array([], np.float64) if tau is None else values(tau, -1.0),
    )


def twist(typestore):
    types = typestore.types
    vector = types["geometry_msgs/msg/Vector3"]
    return types["geometry_msgs/msg/Twist"](
        linear=vector(x=1.0, y=0.0, z=0.0), angular=vector(x=0.0, y=0.0, z=0.0)
    )


def write_ros2_bag(path, storage="sqlite3"):
    """Jittery header stamps (+-20% of DT), bag times later by a random latency; effort, no velocity."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    typestore = get_typestore(Stores.ROS2_HUMBLE)
    rng = np.random.default_rng(0)
    t = DT * np.arange(N) + np.r_[0.0, rng.uniform(-0.2 * DT, 0.2 * DT, N - 1)]
    q, _, _, tau = truth(t)
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        joints = writer.add_connection("/joint_states", "sensor_msgs/msg/JointState", typestore=typestore)
        cmd = writer.add_connection("/cmd_vel", "geometry_msgs/msg/Twist", typestore=typestore)
        for k in range(N):
            stamp = T0_NS + int(round(t[k] * 1e9))
            msg = joint_state(typestore, stamp, rng.permutation(4), q[k], tau=tau[k])
            bag_ns = stamp + int(rng.uniform(1e6, 5e6))
            writer.write(joints, bag_ns, typestore.serialize_cdr(msg, "sensor_msgs/msg/JointState"))
            if k % 50 == 0:
                writer.write(
                    cmd, bag_ns, typestore.serialize_cdr(twist(typestore), "geometry_msgs/msg/Twist")
                )
    return path


def write_ros1_bag(path):
    """Zero header stamps (so the bag time is used), uniform; velocity, no effort; and a
    gripper-only message after every 10th, which the importer must skip."""
    from rosbags.rosbag1 import Writer
    from rosbags.typesys import Stores, get_typestore

    typestore = get_typestore(Stores.ROS1_NOETIC)
    rng = np.random.default_rng(1)
    t = DT * np.arange(N)
    q, qd, _, _ = truth(t)
    with Writer(path) as writer:
        conn = writer.add_connection("/joint_states", "sensor_msgs/msg/JointState", typestore=typestore)
        for k in range(N):
            msg = joint_state(typestore, 0, rng.permutation(4), q[k], qd=qd[k], ros1=True)
            writer.write(conn, T0_NS + k * 10**7, typestore.serialize_ros1(msg, "sensor_msgs/msg/JointState"))
            if k % 10 == 0:
                gripper = joint_state(typestore, 0, [3], q[k], ros1=True)
                data = typestore.serialize_ros1(gripper, "sensor_msgs/msg/JointState")
                writer.write(conn, T0_NS + k * 10**7 + 5 * 10**6, data)
    return path


@pytest.fixture(scope="module")
def ros2_bag(tmp_path_factory):
    pytest.importorskip("rosbags")
    return write_ros2_bag(tmp_path_factory.mktemp("ros2") / "arm_log")


@pytest.fixture(scope="module")
def ros1_bag(tmp_path_factory):
    pytest.importorskip("rosbags")
    return write_ros1_bag(tmp_path_factory.mktemp("ros1") / "arm_log.bag")


# --------------------------------------------------------------------------------------
# Bags through the library
# --------------------------------------------------------------------------------------

ORDER = ["wrist", "shoulder", "elbow"]
PERM = [JOINTS.index(j) for j in ORDER]


def test_ros2_bag_maps_joints_by_name_and_resamples(ros2_bag):
    ds = read_bag(ros2_bag, joints=ORDER, window=WINDOW)
    assert ds.info.joint_names == tuple(ORDER) and ds.info.name == "arm_log"
    assert ds.n_trajectories == 1 and ds.dt == pytest.approx(DT, rel=1e-2)  # the median step
    meta = ds.metadata
    assert meta["import"]["resampled"] and meta["import"]["jitter"] > 0.1
    assert meta["source"]["time"] == "header.stamp" and meta["source"]["topic"] == "/joint_states"
    assert meta["derivatives"]["estimated"] == ["qd", "qdd"]
    np.testing.assert_allclose(np.diff(ds.t), ds.dt, rtol=1e-9)  # a uniform grid
    q, qd, qdd, tau = (x[:, PERM] for x in truth(ds.t))
    np.testing.assert_allclose(ds.q, q, atol=1e-4)  # linear interpolation error ~ a w^2 dt^2 / 8
    np.testing.assert_allclose(ds.tau, tau, atol=1e-3)  # effort -> tau by name
    m = interior(ds)
    assert_close(ds.qd[m], qd[m], TOL_QD_RESAMPLED)
    assert_close(ds.qdd[m], qdd[m], TOL_QDD_RESAMPLED)


def test_ros2_mcap_and_default_joint_order(tmp_path):
    pytest.importorskip("rosbags")
    bag = write_ros2_bag(tmp_path / "mcap_log", storage="mcap")
    ds = read_bag(bag, topic="joint_states")  # the leading slash may be left out
    # default: the first message's names and order, the gripper included
    first = ds.info.joint_names
    assert sorted(first) == sorted(JOINTS + ("gripper_finger",)) and ds.dof == 4
    np.testing.assert_allclose(ds.q[:, first.index("gripper_finger")], 0.04)
    np.testing.assert_allclose(ds.q[:, first.index("elbow")], truth(ds.t)[0][:, 1], atol=1e-4)


def test_ros1_bag_uses_bag_time_keeps_velocity_and_skips_partial_messages(ros1_bag):
    ds = read_bag(ros1_bag, joints=ORDER, window=WINDOW)
    meta = ds.metadata
    assert meta["source"]["format"] == "ros1 bag" and meta["source"]["time"].startswith("bag time")
    assert meta["import"]["skipped_messages"] == N // 10 and not meta["import"]["resampled"]
    assert meta["derivatives"]["estimated"] == ["qdd"] and ds.tau is None
    assert len(ds) == N and ds.dt == pytest.approx(DT)
    q, qd, qdd, _ = (x[:, PERM] for x in truth(ds.t))
    np.testing.assert_allclose(ds.q, q, atol=1e-12)
    np.testing.assert_allclose(ds.qd, qd, atol=1e-12)  # logged velocity, mapped by name
    assert_close(ds.qdd[interior(ds)], qdd[interior(ds)], TOL_QDD)


def test_bag_round_trip(ros1_bag, tmp_path):
    ds = read_log(ros1_bag, joints=["elbow"], name="elbow_only", prismatic=["elbow"])
    assert ds.info.joint_types == ("prismatic",) and ds.info.name == "elbow_only"
    back = load_dataset(save_dataset(ds, tmp_path / "elbow.npz"))
    for field in ("t", "q", "qd", "qdd", "trajectory"):
        np.testing.assert_array_equal(getattr(back, field), getattr(ds, field))
    assert back.tau is None and back.metadata == ds.metadata and back.info == ds.info


def test_bag_errors(ros2_bag, ros1_bag):
    with pytest.raises(DatasetError, match=r"no topic '/odom'.*/cmd_vel \(geometry_msgs/msg/Twist\)"):
        read_bag(ros2_bag, topic="/odom")
    with pytest.raises(DatasetError, match="carries geometry_msgs/msg/Twist messages, not sensor_msgs"):
        read_bag(ros2_bag, topic="/cmd_vel")
    with pytest.raises(DatasetError, match="names joint 'knee'; joints there: .*gripper_finger"):
        read_bag(ros1_bag, joints=["shoulder", "knee"])
    with pytest.raises(DatasetError, match="not uniformly spaced"):
        read_bag(ros2_bag, resample=False)


def test_missing_rosbags_says_how_to_install(ros1_bag, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "rosbags.highlevel", None)
    with pytest.raises(LagraxError, match=r"pip install 'lagrax\[ros\]'"):
        read_bag(ros1_bag)


# --------------------------------------------------------------------------------------
# CSV through the library
# --------------------------------------------------------------------------------------


def write_csv(path, columns: dict, comment=True):
    names = list(columns)
    table = np.column_stack([np.asarray(columns[c], dtype=object) for c in names])
    lines = ["# a robot log", ",".join(names)] if comment else [",".join(names)]
    lines += [",".join(str(x) for x in row) for row in table]
    Path(path).write_text("\n".join(lines) + "\n")
    return path


def two_runs():
    """Two runs of 120 samples each, time restarting at 0 for the second."""
    t = np.r_[DT * np.arange(120), DT * np.arange(120)]
    return t, truth(t)


@pytest.fixture
def csv_log(tmp_path):
    t, (q, qd, qdd, tau) = two_runs()
    columns = {"t": np.round(t, 6), "tau_elbow": tau[:, 1], "note": np.zeros(len(t))}
    for i in (2, 0, 1):  # header order: wrist, shoulder, elbow
        columns[f"q_{JOINTS[i]}"] = q[:, i]
    columns["tau_shoulder"], columns["tau_wrist"] = tau[:, 0], tau[:, 2]
    return write_csv(tmp_path / "arm.csv", columns)


def test_csv_splits_where_time_goes_back_and_estimates(csv_log):
    ds = read_csv(csv_log, joints=["elbow", "shoulder"])
    assert ds.n_trajectories == 2 and len(ds) == 240 and ds.info.joint_names == ("elbow", "shoulder")
    assert ds.metadata["source"] == {"format": "csv", "file": str(csv_log)}
    q, qd, qdd, tau = (x[:, [1, 0]] for x in truth(ds.t))
    np.testing.assert_allclose(ds.q, q, atol=1e-12)
    np.testing.assert_allclose(ds.tau, tau, atol=1e-12)
    m = interior(ds)
    assert_close(ds.qd[m], qd[m], TOL_QD)
    assert_close(ds.qdd[m], qdd[m], TOL_QDD)
    default = read_csv(csv_log)  # every q_ column, in header order
    assert default.info.joint_names == ("wrist", "shoulder", "elbow")


def test_csv_with_trajectory_column_and_logged_velocity(tmp_path):
    t = np.r_[DT * np.arange(40), 5 + DT * np.arange(30)]
    q, qd, _, _ = truth(t)
    ids = np.r_[np.full(40, 7), np.full(30, 3)]
    columns = {"trajectory": ids, "t": t, "q_a": q[:, 0], "qd_a": qd[:, 0]}
    ds = read_csv(write_csv(tmp_path / "runs.csv", columns, comment=False), window=7)
    assert ds.labels == ["7", "3"] and ds.trajectory_ids.tolist() == [0, 1]
    np.testing.assert_array_equal(ds.qd[:, 0], qd[:, 0])  # kept as logged
    assert ds.metadata["derivatives"]["estimated"] == ["qdd"] and ds.tau is None
    assert ds.metadata["import"]["trajectory_start_times"] == pytest.approx([0.0, 5.0])
    assert ds.t[40] == 0.0
    back = load_dataset(save_dataset(ds, tmp_path / "runs.npz"))
    assert back.labels == ds.labels and back.metadata == ds.metadata
    np.testing.assert_array_equal(back.qdd, ds.qdd)


def test_csv_jitter_needs_resampling(tmp_path):
    rng = np.random.default_rng(2)
    t = DT * np.arange(200) + rng.uniform(-0.1, 0.1, 200) * DT
    q = truth(t)[0]
    path = write_csv(tmp_path / "jitter.csv", {"t": t, "q_a": q[:, 0]})
    with pytest.raises(DatasetError, match=r"not uniformly spaced.*--resample"):
        read_csv(path)
    ds = read_csv(path, resample=True)
    assert ds.metadata["import"]["resampled"]
    np.testing.assert_allclose(np.diff(ds.t), ds.dt, rtol=1e-9)
    qd = truth(ds.t + t[0])[1][:, 0]
    assert_close(ds.qd[interior(ds), 0], qd[interior(ds)], TOL_QD_RESAMPLED)


@pytest.mark.parametrize(
    "columns, kwargs, message",
    [
        ({"t": [0, 1, 2], "q_a": [0, 1, 2]}, {"joints": ["b"]}, "no column 'q_b' for joint 'b'; joints with"),
        ({"time": [0, 1, 2], "q_a": [0, 1, 2]}, {}, "no time column 't'; its columns: time, q_a"),
        ({"t": [0, 1, 2], "q_a": [0, "x", 2]}, {}, "non-numeric value 'x' in column 'q_a', data row 2"),
        ({"t": [0, 1, 2], "q_a": [0, 1, "nan"]}, {}, "'nan' in column 'q_a', data row 3 (line 4)"),
        ({"t": [0, 1, 2], "q_a": [0, 1, 2]}, {}, "has 3 samples, fewer than the at least window=11"),
        ({"t": np.arange(12), "q_a": np.arange(12), "qd_a": np.arange(12), "q_b": np.arange(12)}, {}, "qd_b"),
        ({"t": [0, 1, 2], "q_a": [0, 1, 2]}, {"window": 4}, "window must be odd"),
        ({"t": np.arange(12), "q_a": np.arange(12)}, {"prismatic": ["b"]}, "unknown prismatic joint 'b'"),
    ],
)
def test_csv_errors(tmp_path, columns, kwargs, message):
    path = write_csv(tmp_path / "bad.csv", columns, comment=False)
    with pytest.raises(LagraxError) as info:
        read_csv(path, **kwargs)
    assert message in str(info.value) and "\n" not in str(info.value)


# --------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------


def test_cli_imports_a_bag_and_refuses_to_overwrite(ros2_bag, tmp_path, capsys):
    out = tmp_path / "arm.npz"
    code, stdout, _ = run(capsys, "import", ros2_bag, "--out", out, "--joints", "wrist,shoulder,elbow")
    assert code == 0, stdout
    assert f"wrote {out}: " in stdout and "1 trajectory, 3 joints (wrist, shoulder, elbow)" in stdout
    assert "estimated qd, qdd" in stdout and "resampled" in stdout and stdout.count("\n") == 1
    ds = load_dataset(out)
    assert ds.info.joint_names == ("wrist", "shoulder", "elbow") and ds.tau is not None
    assert describe_import(ds, out) in stdout.replace("\n", "")
    before = out.read_bytes()
    code, _, err = run(capsys, "import", ros2_bag, "--out", out, "--name", "other")
    assert_user_error(code, err, "exists", "--force")
    assert out.read_bytes() == before
    code, _, _ = run(capsys, "import", ros2_bag, "--out", out, "--name", "other", "--force")
    assert code == 0 and load_dataset(out).info.name == "other"


def test_cli_imports_a_csv(csv_log, tmp_path, capsys):
    out = tmp_path / "arm.npz"
    code, stdout, _ = run(capsys, "import", csv_log, "--out", out, "--window", "9", "--prismatic", "wrist")
    assert code == 0
    assert "240 samples, 2 trajectories, 3 joints" in stdout and "dt 0.01 s" in stdout
    ds = load_dataset(out)
    assert ds.metadata["derivatives"]["window"] == 9
    assert ds.info.joint_types == ("prismatic", "revolute", "revolute")


def test_cli_bad_input(ros2_bag, ros1_bag, tmp_path, capsys, monkeypatch):
    out = tmp_path / "x.npz"
    short = write_csv(tmp_path / "short.csv", {"t": [0, 1, 2], "q_a": [0, 1, 2]})
    garbage = tmp_path / "garbage.bag"
    garbage.write_bytes(b"not a bag")
    nan = write_csv(tmp_path / "nan.csv", {"t": np.arange(20), "q_a": [0.0] * 5 + ["NaN"] + [0.0] * 14})
    cases = [
        (["missing.csv"], "missing.csv does not exist"),
        ([tmp_path / "missing_bag"], "does not exist"),
        ([ros2_bag, "--topic", "/odom"], "no topic '/odom'; its topics: /cmd_vel (geometry_msgs/msg/Twist)"),
        ([ros2_bag, "--topic", "/cmd_vel"], "carries geometry_msgs/msg/Twist messages"),
        ([ros1_bag, "--joints", "shoulder,knee"], "no message on /joint_states names joint 'knee'"),
        ([short], "fewer than the at least window=11 samples"),
        ([short, "--joints", "b"], "no column 'q_b' for joint 'b'"),
        ([nan], "'NaN' in column 'q_a', data row 6 (line 8)"),
        ([short, "--format", "xml"], "unknown import format 'xml'"),
        ([tmp_path / "short.csv", "--format", "bag"], "is not a ROS bag"),
        ([garbage], "cannot read the bag"),
    ]
    for argv, message in cases:
        code, _, err = run(capsys, "import", *argv, "--out", out)
        assert_user_error(code, err, message)
        assert not out.exists()
    monkeypatch.setitem(__import__("sys").modules, "rosbags.highlevel", None)
    code, _, err = run(capsys, "import", ros1_bag, "--out", out)
    assert_user_error(code, err, "pip install 'lagrax[ros]'")
