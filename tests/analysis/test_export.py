"""Exporting a trained model (lagrax export): the files read back without lagrax's model
code and agree with the JAX model, a mismatch writes nothing, and bad input is one line.

Cheap on purpose: the shared tiny DeLaN run, an untrained width-8 MLP, only the functions
a test needs in ONNX (jax2onnx's conversion time grows with the graph).
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lagrax.analysis.export as export
from lagrax.analysis.export import ExportError, export_model, export_run
from lagrax.models import make_model
from lagrax.models.ensemble import Ensemble
from lagrax.models.io import save_model
from lagrax.training.rundir import load_run
from tests.helpers import assert_clean_error, workspace_with

pytestmark = pytest.mark.usefixtures("cheap_compilation")  # compiling is most of their time

STATE = dict(
    q=np.array([0.3, -0.7]), qd=np.array([0.5, 0.2]), qdd=np.array([-1.0, 2.0]), tau=np.array([0.4, -0.3])
)
RANGES = {k: [[-1.0, 1.0], [-2.0, 2.0]] for k in export.INPUTS}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, tiny_run):
    return workspace_with(tmp_path_factory.mktemp("export"), tiny_run)


@pytest.fixture(scope="module")
def trained(workspace):
    """The shared run's DeLaN (float32), loaded once."""
    return load_run(workspace / "run").model


def test_onnx_round_trip_of_the_trained_delan_matches_jax(workspace, trained):
    onnxruntime = pytest.importorskip("onnxruntime")
    out = workspace / "id.onnx"
    exported = export_run(workspace / "run", out, fmt="onnx", functions=["inverse_dynamics", "mass_matrix"])
    assert max(exported.max_relative_error.values()) <= 1e-6
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["q", "qd", "qdd"]
    tau, mass = session.run(["inverse_dynamics", "mass_matrix"], {k: STATE[k] for k in ("q", "qd", "qdd")})
    model = trained
    want = model.inverse_dynamics(*(jnp.asarray(STATE[k], jnp.float32) for k in ("q", "qd", "qdd")))
    np.testing.assert_allclose(tau, want, rtol=1e-4)  # the JAX model in float32, the file in float64
    np.testing.assert_allclose(mass, model.mass_matrix(jnp.asarray(STATE["q"], jnp.float32)), rtol=1e-4)
    meta = json.loads((workspace / "id.onnx.json").read_text())
    embedded = {p.key: p.value for p in pytest.importorskip("onnx").load(str(out)).metadata_props}
    assert json.loads(embedded["lagrax"]) == meta
    assert meta["joint_names"] == ["theta1", "theta2"] and meta["model"]["kind"] == "delan"
    assert meta["outputs"][0]["units"] == ["N m", "N m"] and meta["check"]["states"] == 1000


def test_stablehlo_batch_loads_with_plain_jax_and_matches(workspace, trained):
    out = workspace / "all.stablehlo"
    exported = export_run(workspace / "run", out, fmt="stablehlo", batch=3)
    assert set(exported.functions) == set(export.FUNCTIONS)  # a DeLaN provides them all
    loaded = jax.export.deserialize(bytearray(out.read_bytes()))  # no lagrax needed for this
    Q = np.stack([STATE["q"], -STATE["q"], 2 * STATE["q"]])
    args = [Q, 0.5 * Q, -Q, Q]  # q, qd, qdd, tau
    values = loaded.call(*args)
    model = export.in_float64(trained)
    np.testing.assert_allclose(
        values["kinetic_energy"], jax.vmap(model.kinetic_energy)(Q, 0.5 * Q), rtol=1e-12
    )
    np.testing.assert_allclose(values["forward_dynamics"], jax.vmap(model.forward_dynamics)(Q, 0.5 * Q, Q))
    assert values["mass_matrix"].shape == (3, 2, 2)
    meta = json.loads((workspace / "all.stablehlo.json").read_text())
    assert meta["batch"] == 3 and meta["inputs"][0]["shape"] == [3, 2]


def test_the_mlp_with_its_normalisation_exports_to_onnx(workspace, trained):
    onnxruntime = pytest.importorskip("onnxruntime")
    info = trained.info
    rng = np.random.default_rng(0)
    data = {k: rng.normal(size=(50, 2)) * (1 + i) + i for i, k in enumerate(export.INPUTS)}
    mlp = make_model("mlp", info, key=jax.random.PRNGKey(0), width=8, depth=1, dtype="float64")
    mlp = mlp.with_data_statistics(data["q"], data["qd"], data["qdd"], data["tau"])
    out = workspace / "mlp.onnx"
    exported = export_model(mlp, out, fmt="onnx", ranges=export.data_ranges(**data))
    assert exported.functions == ("inverse_dynamics", "forward_dynamics")
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (qdd,) = session.run(["forward_dynamics"], STATE)
    np.testing.assert_allclose(qdd, mlp.forward_dynamics(STATE["q"], STATE["qd"], STATE["tau"]), rtol=1e-10)


def test_a_mismatch_is_an_error_and_writes_nothing(workspace, monkeypatch):
    serialise = export.to_stablehlo

    def off_by_1e5(program, specs):  # a file that computes something slightly else
        return serialise(lambda *a: jax.tree_util.tree_map(lambda x: x * (1 + 1e-5), program(*a)), specs)

    monkeypatch.setattr(export, "to_stablehlo", off_by_1e5)
    out = workspace / "bad.stablehlo"
    with pytest.raises(ExportError, match="differs from the JAX model by 1.0.e-05 relative"):
        export_run(workspace / "run", out, fmt="stablehlo", functions=["gravity"])
    assert not out.exists() and not export.metadata_path(out).exists()


def test_an_operation_onnx_cannot_express_is_named(workspace, trained):
    pytest.importorskip("onnxruntime")
    info = trained.info
    lnn = make_model("lnn", info, key=jax.random.PRNGKey(0), width=8, depth=1, dtype="float64")
    with pytest.raises(ExportError, match="cannot express the operation 'platform_index'"):
        export_model(lnn, workspace / "lnn.onnx", fmt="onnx", ranges=RANGES, functions=["forward_dynamics"])
    assert not (workspace / "lnn.onnx").exists()


def test_an_ensemble_exports_its_mean_or_one_member(workspace, cli, trained):
    ens = Ensemble.build(lambda key: make_model("delan", trained.info, key=key, width=8, depth=1), range(2))
    wide = export.in_float64(ens)
    for member, want in [(None, wide.gravity(STATE["q"])), (1, wide.member(1).gravity(STATE["q"]))]:
        out = workspace / f"ens{member}.stablehlo"
        export_model(
            export.select_member(ens, member), out, fmt="stablehlo", ranges=RANGES, functions=["gravity"]
        )
        got = jax.export.deserialize(bytearray(out.read_bytes())).call(STATE["q"])["gravity"]
        np.testing.assert_allclose(got, want, rtol=1e-12)
    save_model(ens, workspace / "ens")
    code, _, err = cli(
        "export", workspace / "ens", "-f", "stablehlo", "-o", workspace / "e2", "--member", "2"
    )
    assert_clean_error(code, err, "--member 2 is out of range", "members 0 to 1")


@pytest.mark.parametrize(
    "argv, fragments",
    [
        (["run", "--format", "tflite", "--out", "x.onnx"], ["unknown format 'tflite'", "onnx, stablehlo"]),
        (["dp.npz", "--format", "onnx", "--out", "x.onnx"], ["run directory", "does not exist"]),
        ([".", "--format", "stablehlo", "--out", "x"], ["holds no trained model"]),
        (["run", "--format", "stablehlo", "--out", "x", "--member", "0"], ["not an ensemble"]),
        (["run", "--format", "stablehlo", "--out", "x", "--functions", "mas_matrix"], ["unknown function"]),
        (["run", "--format", "stablehlo", "--out", "x", "--batch", "0"], ["--batch must be a positive"]),
    ],
)
def test_bad_input_is_one_line(workspace, cli, monkeypatch, argv, fragments):
    monkeypatch.chdir(workspace)
    code, _, err = cli("export", *argv)
    assert_clean_error(code, err, *fragments)


def test_an_existing_output_is_kept_without_force(workspace, cli, monkeypatch):
    monkeypatch.chdir(workspace)
    (workspace / "kept.stablehlo").write_text("mine")
    code, _, err = cli("export", "run", "-f", "stablehlo", "-o", "kept.stablehlo")
    assert_clean_error(code, err, "kept.stablehlo exists", "--force")
    assert (workspace / "kept.stablehlo").read_text() == "mine"
    code, _, err = cli(
        "export", "run", "-f", "stablehlo", "-o", "kept.stablehlo", "--functions", "gravity", "--force"
    )
    assert code == 0, err
    assert (workspace / "kept.stablehlo").read_bytes() != b"mine"
