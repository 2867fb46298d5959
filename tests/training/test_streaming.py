"""Training on streamed shards: chunked epochs that learn, resume bit for bit, combine
with ensembles, and refuse what streaming cannot do; the command line takes a shard
directory as --data."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from tests.helpers import assert_clean_error
from tests.helpers import leaves

import lagrax
from lagrax.core.errors import DatasetError
from lagrax.models import make_model
from lagrax.data.shards import generate_shards
from lagrax.training import TrainConfig, train
from lagrax.training import streaming

pytestmark = pytest.mark.usefixtures("cheap_compilation")  # compiling is most of their time

jax.config.update("jax_enable_x64", True)

CFG = dict(batch_size=64, lr=1e-2, lbfgs_epochs=0, inverse=1.0, seed=3, checkpoint_every=1)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    out = tmp_path_factory.mktemp("shards") / "pendulum"
    return generate_shards(lagrax.system("pendulum"), out, 1500, shard_size=400, seed=1, progress=False)


@pytest.fixture(autouse=True, scope="module")
def small_chunks():
    with pytest.MonkeyPatch.context() as patch:  # (for the module: a shared run uses it)
        patch.setattr(streaming, "CHUNK_SAMPLES", 256)  # several chunks per epoch
        yield


def model_for(shards, seed=3):
    s = shards.sample(len(shards))
    model = make_model("delan", shards.info, key=jax.random.PRNGKey(seed), width=8, depth=1, dtype="float64")
    return model.with_data_statistics(s.q, s.qd, s.qdd, s.tau)


@pytest.fixture(scope="module")
def learned(shards, tmp_path_factory):
    """Eight streamed epochs, checkpointed after each: ``(config, run directory, result)``."""
    cfg, run_dir = TrainConfig(epochs=8, **CFG), tmp_path_factory.mktemp("streamed") / "a"
    return cfg, run_dir, train(model_for(shards), shards, None, cfg, run_dir=run_dir, progress=False)


def test_a_streamed_run_learns_in_chunked_epochs(shards, learned):
    _, _, result = learned
    plan = streaming.Stream.of(shards, TrainConfig(**CFG).loss_weights(), TrainConfig(**CFG))
    assert plan.chunk_size == 256 and plan.n_chunks == 6  # 1,500 samples: 5 full chunks and a wrapped one
    assert result.steps == 8 * plan.n_chunks * (256 // 64)
    losses = [h["loss"] for h in result.history]
    assert losses[-1] < 0.25 * losses[0], losses
    assert result.epoch_traces == 1  # one compiled epoch serves every chunk


@pytest.mark.slow
def test_a_killed_streamed_run_resumes_bit_for_bit(shards, learned, tmp_path):
    cfg, _, straight = learned

    class Killed(Exception):
        pass

    def kill(epoch, _model, _record):
        if epoch == 2:
            raise Killed

    with pytest.raises(Killed):
        train(model_for(shards), shards, None, cfg, run_dir=tmp_path / "b", progress=False, callback=kill)
    resumed = train(model_for(shards), shards, None, cfg, run_dir=tmp_path / "b", resume=True, progress=False)
    for x, y in zip(leaves(straight.model), leaves(resumed.model)):
        np.testing.assert_array_equal(x, y)


@pytest.mark.slow
def test_streamed_ensembles_share_the_chunks_and_shuffle_their_own(shards):
    """The members read one stream (the chunk order of the run's seed); member 0 is the run
    of that seed alone, the others shuffle each chunk with their own keys."""
    together = train(
        model_for(shards), shards, None, TrainConfig(epochs=2, **CFG), progress=False, ensemble=2
    )
    alone = train(model_for(shards), shards, None, TrainConfig(epochs=2, **CFG), progress=False)
    for x, y in zip(leaves(alone.model), leaves(together.model.member(0))):
        np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-12)
    a, b = leaves(together.model.member(0)), leaves(together.model.member(1))
    assert any(not np.allclose(x, y) for x, y in zip(a, b))


def test_what_streaming_cannot_do_is_refused(shards):
    with pytest.raises(DatasetError, match="L-BFGS"):
        train(model_for(shards), shards, None, TrainConfig(epochs=1, **{**CFG, "lbfgs_epochs": 2}))
    with pytest.raises(DatasetError, match="whole trajectories"):
        train(model_for(shards), shards, None, TrainConfig(epochs=1, **{**CFG, "rollout": 1.0}))


def test_cli_trains_on_a_shard_directory(cli, shards, tmp_path):
    run = tmp_path / "run"
    args = ["train", "-m", "delan", "-d", str(shards.path), "--width", "8", "--depth", "1", "--epochs", "2"]
    code, out, err = cli(*args, "-o", str(run))
    assert code == 0, err
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["lbfgs_epochs"] == 0  # the recipe without its full-batch phase
    assert lagrax.load_model(run).info.dof == 1
    code, _, err = cli(*args, "-o", str(tmp_path / "r2"), "--test-fraction", "0.2")
    assert_clean_error(code, err, "sharded dataset", "cannot be split")
    assert not (tmp_path / "r2").exists()
    code, _, err = cli(*args, "-o", str(tmp_path / "r3"), "--lbfgs-epochs", "3")
    assert_clean_error(code, err, "lbfgs_epochs = 0")
