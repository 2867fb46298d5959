"""Promise: a dataset file loads as a valid Dataset or fails with one DatasetError naming the
problem, never a traceback, a silent cast or garbage (README, "Promises")."""

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from tests.helpers import assert_clean_error, pendulum_data
from hypothesis import given
from hypothesis import strategies as st

from lagrax.data.dataset import Dataset, load_dataset, save_dataset
from lagrax.core.errors import DatasetError, LagraxError
from lagrax.systems import system

pytestmark = pytest.mark.usefixtures("cheap_compilation")  # compiling is most of their time


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A small valid dataset file (driven pendulum motion, integrated by NumPy) and its arrays."""
    path = tmp_path_factory.mktemp("data") / "good.npz"
    save_dataset(pendulum_data(n_traj=2, steps=7), path)
    return path, dict(np.load(path))


def _variant(tmp_path, arrays, name="bad.npz", **changes):
    out = {k: v for k, v in arrays.items()}
    for k, v in changes.items():
        if v is None:
            out.pop(k)
        else:
            out[k] = v
    path = tmp_path / name
    np.savez(path, **out)
    return path


def _with_meta(arrays, **entries):
    return np.asarray(json.dumps({**json.loads(str(arrays["metadata"])), **entries}))


def test_damaged_files_name_the_problem(good, tmp_path):
    path, _ = good
    raw = path.read_bytes()
    cases = {
        "empty.npz": (b"", "is empty"),
        "truncated.npz": (raw[: len(raw) // 2], "damaged"),
        "text.npz": (b"q,qd,qdd\n1,2,3\n", "text file"),
        "pickle.npz": (b"\x80\x04\x95 pickled", "pickled"),
    }
    flipped = bytearray(raw)
    for i in (len(raw) // 3, len(raw) // 2):
        flipped[i] ^= 0xFF
    cases["flipped.npz"] = (bytes(flipped), "damaged")
    for name, (content, fragment) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(DatasetError, match=fragment):
            load_dataset(tmp_path / name)
    (tmp_path / "folder.npz").mkdir()
    with pytest.raises(DatasetError, match="is a directory"):
        load_dataset(tmp_path / "folder.npz")


def test_an_unreadable_file_is_not_called_missing(good, monkeypatch):
    path, _ = good
    real_open = open

    def deny(file, *args, **kwargs):
        if Path(file) == path:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", deny)
    with pytest.raises(DatasetError, match="cannot read .*permission denied"):
        load_dataset(path)


@pytest.mark.parametrize(
    "dtype_change",
    [
        lambda q: q.astype(int),
        lambda q: q > 0,
        lambda q: q.astype(str),
        lambda q: q + 1j,
        lambda q: q.astype(object),
    ],
    ids=["int", "bool", "str", "complex", "object"],
)
def test_arrays_must_be_real_floats(good, tmp_path, dtype_change):
    _, arrays = good
    path = _variant(tmp_path, arrays, q=dtype_change(arrays["q"]))
    with pytest.raises(DatasetError, match="'q' has dtype|pickled"):
        load_dataset(path)


@pytest.mark.parametrize(
    "metadata, fragment",
    [
        (np.asarray("[1, 2]"), "JSON object"),
        (np.asarray("3"), "JSON object"),
        (np.asarray("{not json"), "not valid JSON"),
        (np.arange(3.0), "0-d string"),
    ],
)
def test_metadata_must_be_a_json_object(good, tmp_path, metadata, fragment):
    _, arrays = good
    with pytest.raises(DatasetError, match=fragment):
        load_dataset(_variant(tmp_path, arrays, metadata=metadata))


@pytest.mark.parametrize("dt", [-0.05, 0.0, float("inf"), "0.1", True])
def test_metadata_dt_must_be_positive_and_finite(good, tmp_path, dt):
    _, arrays = good
    metadata = (
        _with_meta(arrays, dt=dt)
        if np.isfinite(float(dt))
        else np.asarray(str(arrays["metadata"])[:-1] + ', "dt": Infinity}')
    )
    with pytest.raises(DatasetError, match="dt must be a positive finite number"):
        load_dataset(_variant(tmp_path, arrays, metadata=metadata))


@pytest.mark.parametrize("name", ["empty.npz", "text.npz", "truncated.npz"])
@pytest.mark.parametrize("command", ["plot", "train", "evaluate"])
def test_bad_files_through_the_cli(good, tmp_path, cli, name, command):
    path, _ = good
    raw = path.read_bytes()
    content = {"empty.npz": b"", "text.npz": b"hello\n", "truncated.npz": raw[: len(raw) // 2]}[name]
    bad = tmp_path / name
    bad.write_bytes(content)
    out = tmp_path / "out"
    argv = {
        "plot": ["plot", bad, "--out", tmp_path / "x.png"],
        "train": ["train", "--model", "delan", "--data", bad, "--out", out],
        "evaluate": ["evaluate", tmp_path / "no-run", "--data", bad],
    }[command]
    code, _, err = cli(*argv)
    assert_clean_error(code, err)
    assert not out.exists() and not (tmp_path / "x.png").exists()


@pytest.mark.parametrize(
    "option, value",
    [
        ("--duration", "inf"),
        ("--duration", "-1"),
        ("--dt", "0"),
        ("--dt", "nan"),
        ("--noise", "nan"),
        ("--noise", "-1"),
        ("--trajectories", "0"),
        ("--rate", "0"),
        ("--savgol-window", "2"),
    ],
)
def test_generate_refuses_bad_settings_before_writing(tmp_path, cli, option, value):
    out = tmp_path / "x.npz"
    code, _, err = cli("generate", "--system", "pendulum", "--out", out, option, value, "--measured", "q,tau")
    assert_clean_error(code, err, {"--savgol-window": "window"}.get(option, option.lstrip("-")))
    assert not out.exists()


# ---- fuzz: random bytes and random arrays -----------------------------------------------

KEYS = ["t", "q", "qd", "qdd", "trajectory", "tau", "metadata", "labels", "mass_matrix", "energy"]


def _check_loaded(ds: Dataset) -> None:
    """What every dataset load_dataset returns satisfies."""
    N, n = ds.q.shape
    assert N >= 1 and n >= 1
    for name in ("t", "q", "qd", "qdd", "tau"):
        a = getattr(ds, name)
        if a is not None:
            assert np.issubdtype(a.dtype, np.floating) and np.isfinite(a).all() and len(a) == N
    assert np.issubdtype(ds.trajectory.dtype, np.integer) and (ds.trajectory >= 0).all()
    assert isinstance(ds.metadata, dict)


def _load(tmp_path, content: bytes):
    path = tmp_path / "fuzz.npz"
    path.write_bytes(content)
    try:
        ds = load_dataset(path)
    except LagraxError:
        return
    _check_loaded(ds)


@given(st.binary(max_size=400))
def test_fuzz_random_bytes(tmp_path_factory, content):
    _load(tmp_path_factory.mktemp("fuzz"), content)


@given(st.dictionaries(st.sampled_from(KEYS), st.binary(max_size=64), max_size=5))
def test_fuzz_zip_of_junk_members(tmp_path_factory, members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for key, content in members.items():
            z.writestr(f"{key}.npy", content)
    _load(tmp_path_factory.mktemp("fuzz"), buffer.getvalue())


_DTYPES = st.sampled_from([np.float64, np.float32, np.int64, np.bool_, np.complex128, "U3"])
_VALUES = st.sampled_from([0.0, 1.5, -2.0, np.nan, np.inf, 7.0])


@st.composite
def _array(draw):
    shape = draw(st.sampled_from([(), (0,), (4,), (4, 2), (3, 2), (4, 1), (4, 2, 2), (4, 3)]))
    fill = draw(_VALUES)
    a = np.full(shape, fill)
    a = a.real.astype(draw(_DTYPES)) if np.isfinite(fill) else a
    return a


@given(st.dictionaries(st.sampled_from(KEYS), _array(), min_size=3, max_size=8), st.booleans())
def test_fuzz_random_arrays(tmp_path_factory, arrays, good_metadata):
    arrays = dict(arrays)
    if good_metadata:
        info = system("double_pendulum").info.to_json()
        arrays["metadata"] = np.asarray(json.dumps({"system": info, "dt": 0.1}))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    _load(tmp_path_factory.mktemp("fuzz"), buffer.getvalue())


def test_fuzz_can_also_produce_a_valid_dataset(good, tmp_path):
    """The fuzz checker accepts real data (it is not vacuous)."""
    path, _ = good
    _check_loaded(load_dataset(path))
