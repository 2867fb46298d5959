"""Sharded datasets (lagrax.data.shards): the format round trip, seeded epoch chunks, lazy
memory-mapped reading, clear errors for damaged shards, and `generate --shard-size`."""

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import assert_clean_error
from lagrax.core.errors import DatasetError, FileExistsLagraxError, LagraxError
from lagrax.data.shards import MANIFEST, ShardedDataset, ShardWriter, generate_shards, shard_file
from lagrax.systems import SystemInfo

pytestmark = pytest.mark.usefixtures("cheap_compilation")  # compiling is most of their time

INFO = SystemInfo.make("toy", 3)


def _arrays(n: int, offset: int = 0) -> dict:
    """Rows whose q[:, 0] is their global index, so every row can be identified."""
    idx = np.arange(offset, offset + n, dtype=np.float64)
    q = np.stack([idx, idx * 2, -idx], 1)
    return dict(q=q, qd=q + 0.5, qdd=q - 0.25, tau=q * 3)


def _rewrite_checksum(path, shard: int, field: str) -> None:
    """Record a changed file's size and SHA-256 in the manifest: as a writer that wrote bad
    values would have (a flipped byte, not recorded, fails the checksum on reading)."""
    from lagrax.core.fileio import file_sha256

    manifest = json.loads((path / MANIFEST).read_text())
    entry = manifest["shards"][shard]
    file = path / shard_file(entry["name"], field)
    entry["files"][field].update(bytes=file.stat().st_size, sha256=file_sha256(file))
    (path / MANIFEST).write_text(json.dumps(manifest))


def _write(path, n: int, shard_size: int, pieces: int = 3, **kw):
    cuts = np.linspace(0, n, pieces + 1).astype(int)
    with ShardWriter(path, INFO, shard_size=shard_size, metadata={"kind": "states"}, **kw) as w:
        for a, b in zip(cuts[:-1], cuts[1:]):
            if b > a:
                w.append(**{k: v for k, v in _arrays(b - a, a).items()})
    return ShardedDataset.open(path)


@pytest.fixture
def data(tmp_path):
    return _write(tmp_path / "ds", 1000, 300)


def test_round_trip_equals_the_written_data(data):
    assert len(data) == 1000 and data.n_shards == 4 and data.dof == 3
    assert data.info.name == "toy" and set(data.fields) == {"q", "qd", "qdd", "tau"}
    everything = data.gather(np.arange(1000))
    for k, v in _arrays(1000).items():
        np.testing.assert_array_equal(everything[k], v)
    ds = data.sample(1000)  # evenly spaced: all of them
    np.testing.assert_array_equal(ds.q, _arrays(1000)["q"])
    assert ds.metadata["kind"] == "states" and ds.info.name == "toy"
    np.testing.assert_array_equal(np.unique(ds.trajectory), [0, 1, 2, 3])  # ids: the shards
    data.check()


def test_dtype_is_applied_and_recorded(tmp_path):
    data = _write(tmp_path / "f32", 100, 64, dtype="float32")
    assert data.gather([0])["q"].dtype == np.float32
    assert json.loads((tmp_path / "f32" / MANIFEST).read_text())["fields"]["q"]["dtype"] == "float32"


def _epoch(data, seed, epoch, chunk_size, **kw):
    return list(data.chunks(seed, epoch, chunk_size, **kw))


@given(
    n=st.integers(1, 400),
    shard_size=st.integers(8, 200),
    chunk_size=st.integers(1, 500),
    window=st.integers(1, 3),
    epoch=st.integers(0, 5),
)
def test_chunks_cover_every_sample_once_plus_the_wrap_around_fill(
    tmp_path_factory, n, shard_size, chunk_size, window, epoch
):
    data = _write(tmp_path_factory.mktemp("c") / "ds", n, shard_size)
    chunks = _epoch(data, 7, epoch, chunk_size, window=window)
    assert len(chunks) == data.n_chunks(chunk_size) == -(-n // chunk_size)
    assert all(c["q"].shape == (chunk_size, 3) and c["tau"].shape == (chunk_size, 3) for c in chunks)
    ids = np.concatenate([c["q"][:, 0] for c in chunks]).astype(int)
    np.testing.assert_array_equal(np.sort(ids[:n]), np.arange(n))  # each sample once ...
    np.testing.assert_array_equal(ids[n:], np.resize(ids[:n], len(ids) - n))  # ... then the fill
    rows = np.concatenate([c["tau"] for c in chunks])
    np.testing.assert_array_equal(rows, _arrays(n)["tau"][ids])  # fields stay aligned


def test_same_seed_and_epoch_give_identical_chunks_and_others_differ(data):
    a, b = _epoch(data, 3, 2, 128), _epoch(data, 3, 2, 128)
    for x, y in zip(a, b):
        for k in x:
            assert x[k].tobytes() == y[k].tobytes()
    order = lambda chunks: np.concatenate([c["q"][:, 0] for c in chunks])  # noqa: E731
    assert not np.array_equal(order(a), order(_epoch(data, 3, 3, 128)))
    assert not np.array_equal(order(a), order(_epoch(data, 4, 2, 128)))


def test_start_resumes_mid_epoch_bit_identically(data):
    full = _epoch(data, 11, 1, 96)
    resumed = _epoch(data, 11, 1, 96, start=4)
    assert len(resumed) == len(full) - 4
    for x, y in zip(full[4:], resumed):
        assert all(x[k].tobytes() == y[k].tobytes() for k in x)


def test_chunks_come_from_one_shard_and_shards_are_permuted(data):
    chunks = _epoch(data, 0, 0, 100)  # 300-row shards, 100-row chunks: 3 chunks per shard
    shard_of = [set((c["q"][:, 0] // 300).astype(int)) for c in chunks]
    assert all(len(s) == 1 for s in shard_of[:9])
    visits = [next(iter(s)) for s in shard_of[::3]]
    assert sorted(visits) == [0, 1, 2, 3]
    first = lambda e: tuple(int(c["q"][0, 0] // 300) for c in _epoch(data, 0, e, 300))  # noqa: E731
    assert len({first(e) for e in range(6)}) > 1  # the shard order changes with the epoch


def test_fields_can_be_selected(data):
    chunk = next(data.chunks(0, 0, 50, fields=("q", "tau")))
    assert set(chunk) == {"q", "tau"} and isinstance(chunk["q"], np.ndarray)
    assert not isinstance(chunk["q"], np.memmap)  # an in-memory copy, not a view of the file


def test_shards_are_memory_mapped_and_sample_reads_only_its_rows(tmp_path):
    data = _write(tmp_path / "ds", 1000, 1000)
    assert all(isinstance(a, np.memmap) for a in data.arrays(0).values())
    # damage the second half of the shard's q in place (same size): rows the sample never reads
    file = tmp_path / "ds" / shard_file("shard-00000", "q")
    q = np.load(file, mmap_mode="r+")
    q[500:] = np.nan
    q.flush()
    del q
    with pytest.raises(DatasetError, match=r"shard-00000.*'q'.*SHA-256"):
        ShardedDataset.open(tmp_path / "ds").gather([0])  # not the recorded bytes
    _rewrite_checksum(tmp_path / "ds", 0, "q")  # NaN as written
    fresh = ShardedDataset.open(tmp_path / "ds")
    head = fresh.gather(np.arange(0, 500, 7))
    np.testing.assert_array_equal(head["q"], _arrays(1000)["q"][0:500:7])
    with pytest.raises(DatasetError, match=r"shard-00000.*'q'.*NaN"):
        fresh.gather([999])
    with pytest.raises(DatasetError, match=r"shard-00000.*'q'.*NaN"):
        fresh.check()


def test_sample_is_seeded_and_sorted(data):
    a, b, c = data.sample(100, seed=1), data.sample(100, seed=1), data.sample(100, seed=2)
    np.testing.assert_array_equal(a.q, b.q)
    assert not np.array_equal(a.q, c.q)
    assert np.all(np.diff(a.q[:, 0]) > 0) and len(np.unique(a.q[:, 0])) == 100
    assert len(data.sample(10**6)) == 1000  # at most all of them


def test_nan_shard_is_named_when_read(tmp_path):
    data = _write(tmp_path / "ds", 600, 300)
    file = tmp_path / "ds" / shard_file("shard-00001", "qdd")
    a = np.load(file, mmap_mode="r+")
    a[10, 1] = np.nan
    a.flush()
    del a
    _rewrite_checksum(tmp_path / "ds", 1, "qdd")
    data = ShardedDataset.open(tmp_path / "ds")
    with pytest.raises(DatasetError, match=r"shard-00001 field 'qdd'.*NaN"):
        list(data.chunks(0, 0, 100))
    with pytest.raises(DatasetError, match="shard-00001"):
        data.sample(600)


def test_missing_truncated_and_corrupt_files_give_clear_errors(tmp_path):
    _write(tmp_path / "ds", 600, 300)
    (tmp_path / "ds" / shard_file("shard-00001", "tau")).unlink()
    with pytest.raises(DatasetError, match=r"shard-00001 lacks its 'tau' file"):
        ShardedDataset.open(tmp_path / "ds")
    _write(tmp_path / "ds2", 600, 300)
    file = tmp_path / "ds2" / shard_file("shard-00000", "q")
    file.write_bytes(file.read_bytes()[:-24])
    with pytest.raises(DatasetError, match=r"shard-00000 field 'q'.*bytes.*truncated"):
        ShardedDataset.open(tmp_path / "ds2")
    with pytest.raises(DatasetError, match="no shards.json"):
        ShardedDataset.open(tmp_path)
    with pytest.raises(DatasetError, match="does not exist"):
        ShardedDataset.open(tmp_path / "nowhere")
    (tmp_path / "ds2" / MANIFEST).write_text("{not json")
    with pytest.raises(DatasetError, match="not readable JSON"):
        ShardedDataset.open(tmp_path / "ds2")


def test_wrong_shape_in_a_shard_is_named(tmp_path):
    _write(tmp_path / "ds", 600, 300)
    file = tmp_path / "ds" / shard_file("shard-00001", "qd")
    np.save(file, np.zeros((300, 2)))  # 2 joints instead of 3
    _rewrite_checksum(tmp_path / "ds", 1, "qd")
    data = ShardedDataset.open(tmp_path / "ds")
    with pytest.raises(DatasetError, match=r"shard-00001 field 'qd'.*\(300, 2\).*\(300, 3\)"):
        data.arrays(1)


def test_writer_refuses_to_overwrite_without_force_and_cleans_up(tmp_path):
    _write(tmp_path / "ds", 100, 50)
    with pytest.raises(FileExistsLagraxError, match="refusing to overwrite"):
        _write(tmp_path / "ds", 100, 50)
    assert len(_write(tmp_path / "ds", 70, 50, force=True)) == 70
    with pytest.raises(RuntimeError):
        with ShardWriter(tmp_path / "crash", INFO, shard_size=10) as w:
            w.append(**_arrays(25))
            raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # nothing half-written left


def test_writer_rejects_bad_chunks(tmp_path):
    with ShardWriter(tmp_path / "ds", INFO, shard_size=10) as w:
        with pytest.raises(DatasetError, match="NaN"):
            w.append(**dict(_arrays(5), tau=np.full((5, 3), np.nan)))
        with pytest.raises(DatasetError, match=r"'qd' has shape \(5, 2\)"):
            w.append(**dict(_arrays(5), qd=np.zeros((5, 2))))
        with pytest.raises(DatasetError, match="missing fields"):
            w.append(q=np.zeros((5, 3)))
        w.append(**_arrays(5))
    with pytest.raises(LagraxError, match="shard_size"):
        ShardWriter(tmp_path / "x", INFO, shard_size=0)


def test_generate_shards_gives_inverse_dynamics_torques(tmp_path):
    from lagrax.systems import system

    truth = system("double_pendulum")
    data = generate_shards(
        truth, tmp_path / "dp", 1000, shard_size=400, seed=3, qdd_range=(-1, 1), chunk=256, progress=False
    )
    assert len(data) == 1000 and data.n_shards == 3 and data.gather([0])["q"].dtype == np.float32
    ds = data.sample(50, seed=0)
    assert np.all(np.abs(ds.qdd) <= 1)
    tau = np.stack(
        [np.asarray(truth.inverse_dynamics(*(x.astype(float) for x in s))) for s in zip(ds.q, ds.qd, ds.qdd)]
    )
    np.testing.assert_allclose(ds.tau, tau, rtol=1e-5, atol=1e-4)
    again = generate_shards(
        truth, tmp_path / "dp2", 1000, 400, 3, qdd_range=(-1, 1), chunk=256, progress=False
    )
    np.testing.assert_array_equal(again.gather(np.arange(1000))["tau"], data.gather(np.arange(1000))["tau"])


def test_cli_generate_with_shard_size(cli, tmp_path):
    out = tmp_path / "states"
    argv = ["generate", "--system", "double_pendulum", "--kind", "states", "--samples", "500", "--out", out]
    code, stdout, err = cli(*argv, "--shard-size", "200", "--qdd-range", "-2,2")
    assert code == 0, err
    data = ShardedDataset.open(out)
    assert len(data) == 500 and data.n_shards == 3 and "3 shards" in stdout
    assert_clean_error(*cli(*argv, "--shard-size", "200")[::2], "exists")
    code, _, err = cli(
        "generate", "-s", "double_pendulum", "--kind", "passive", "--shard-size", "9", "--out", out
    )
    assert_clean_error(code, err, "--kind states")
    assert_clean_error(*cli(*argv, "--qdd-range", "0,1")[::2], "--shard-size")
    assert_clean_error(*cli(*argv, "--shard-size", "9", "--noise", "0.1", "--force")[::2], "--noise")


def test_a_jax_key_seeds_the_order_like_an_integer(data):
    import jax

    for key in (jax.random.PRNGKey(5), jax.random.key(5)):
        a, b = _epoch(data, key, 0, 128), _epoch(data, key, 0, 128)
        assert all(x["q"].tobytes() == y["q"].tobytes() for x, y in zip(a, b))
    other = _epoch(data, jax.random.PRNGKey(6), 0, 128)
    assert not np.array_equal(a[0]["q"], other[0]["q"])
    with pytest.raises(LagraxError, match="seed"):
        next(data.chunks(-1, 0, 10))
