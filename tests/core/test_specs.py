"""Model specs: the one source of every model's hyper-parameters.

Checks the tuned defaults, JSON round trips, the strict JSON reader, the string edge
(``from_options`` / ``make_model``), that a spec builds the same weights as
``make_model`` with the same key, that ``provides`` matches what the per-sample methods
actually do, and that a saved model loads with the same spec and predictions.
"""

import dataclasses
import inspect
import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lagrax
from lagrax.systems.batching import batched
from lagrax.core.errors import LagraxError, NotProvidedError, UnknownNameError
from lagrax.models import MODELS, make_model, make_spec, spec_class
from lagrax.models.delan import DeLaNSpec
from lagrax.models.friction import NoFriction
from lagrax.models.hnn import HNNSpec, Momentum, StructuredHNNSpec
from lagrax.models.lnn import LNNSpec
from lagrax.models.mlp import Heads, MLPSpec
from lagrax.models.spec import SpecError
from lagrax.core.options import Activation, FrictionKind, Init, Precision
from lagrax.systems.base import QUANTITIES

INFO = lagrax.SystemInfo.make("mixed", 2, joint_types=("revolute", "prismatic"))
KEY = jax.random.PRNGKey(0)

# one spec per kind with every field away from its default where it can be
NON_DEFAULT = [
    DeLaNSpec(
        width=8,
        depth=3,
        activation=Activation.SOFTPLUS,
        init=Init.ORTHOGONAL,
        shared=False,
        shift=0.5,
        epsilon=0.1,
        friction=FrictionKind.STRIBECK,
        precision=Precision.FLOAT64,
    ),
    LNNSpec(width=8, depth=1, activation=Activation.TANH, init=Init.XAVIER, friction=FrictionKind.VISCOUS),
    MLPSpec(width=8, depth=1, activation=Activation.ELU, init=Init.XAVIER, heads=Heads.FORWARD),
    HNNSpec(width=8, depth=1, init=Init.XAVIER, momentum=Momentum.CANONICAL, newton_steps=3),
    StructuredHNNSpec(width=8, depth=1, activation=Activation.TANH, shift=-1.0, epsilon=0.5),
]


def test_registry_names_the_spec_kinds():
    assert {name: spec_class(name).kind for name in MODELS} == {name: name for name in MODELS}
    from lagrax.models import DeLaNSpec as exported

    assert exported is DeLaNSpec
    assert DeLaNSpec(width=8).build(INFO, key=KEY).spec == make_spec("delan", width=8)
    with pytest.raises(UnknownNameError, match="Did you mean 'delan'"):
        make_model("delam", INFO, key=KEY)


def test_defaults_are_the_tuned_ones():
    """The factories' tuned defaults: DeLaN tanh, shared trunk, Xavier; LNN softplus with the
    paper's initialisation; MLP and HNN softplus with equinox's default; structured HNN
    softplus with Xavier. Everything float32, no friction, width 64, depth 2."""
    d = DeLaNSpec()
    assert (d.activation, d.init, d.shared, d.shift, d.epsilon) == (
        Activation.TANH,
        Init.XAVIER,
        True,
        0.0,
        1e-2,
    )
    assert (LNNSpec().activation, LNNSpec().init) == (Activation.SOFTPLUS, Init.LNN)
    assert (MLPSpec().activation, MLPSpec().init, MLPSpec().heads) == (
        Activation.SOFTPLUS,
        Init.DEFAULT,
        Heads.BOTH,
    )
    assert MLPSpec().normalization is None
    assert (HNNSpec().activation, HNNSpec().init, HNNSpec().momentum, HNNSpec().newton_steps) == (
        Activation.SOFTPLUS,
        Init.DEFAULT,
        Momentum.VELOCITY,
        8,
    )
    s = StructuredHNNSpec()
    assert (s.activation, s.init, s.shift, s.epsilon) == (Activation.SOFTPLUS, Init.XAVIER, 0.0, 1e-2)
    for cls in (DeLaNSpec, LNNSpec, MLPSpec, HNNSpec, StructuredHNNSpec):
        spec = cls()
        assert (spec.width, spec.depth, spec.precision) == (64, 2, Precision.FLOAT32)
        assert getattr(spec, "friction", FrictionKind.NONE) is FrictionKind.NONE


@pytest.mark.parametrize("spec", NON_DEFAULT + [cls() for cls in map(type, NON_DEFAULT)], ids=repr)
def test_json_round_trip(spec):
    text = json.dumps(spec.to_json())
    d = json.loads(text)
    assert d == spec.to_json()  # plain JSON types only
    back = type(spec).from_json(d)
    assert back == spec and hash(back) == hash(spec)
    assert set(d) == {f.name for f in dataclasses.fields(spec)}


def test_mlp_spec_with_normalization_round_trips():
    rng = np.random.default_rng(0)
    q, qd, qdd, tau = rng.normal(size=(4, 50, 2))
    model = make_model("mlp", INFO, key=KEY, width=8).with_data_statistics(q, qd, qdd, tau)
    spec = model.spec
    assert spec.normalization is not None and spec.normalization.qd[0] == pytest.approx(qd.mean(0))
    assert MLPSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec


@pytest.mark.parametrize("spec", NON_DEFAULT, ids=lambda s: s.kind)
def test_from_json_is_strict(spec):
    d = spec.to_json()
    missing = dict(d)
    del missing["width"]
    with pytest.raises(SpecError, match="lacks the field.*'width'"):
        type(spec).from_json(missing)
    with pytest.raises(UnknownNameError, match="'widht'.*Did you mean 'width'"):
        type(spec).from_json({**d, "widht": 3})
    with pytest.raises(UnknownNameError, match="activation"):
        type(spec).from_json({**d, "activation": "tahn"})
    with pytest.raises(SpecError, match="'width' must be an integer, got 2.5"):
        type(spec).from_json({**d, "width": 2.5})


def test_from_options_parses_strings_and_numbers():
    """The CLI's -O values arrive as strings (or numbers): they become typed fields once."""
    spec = DeLaNSpec.from_options(
        width="32", depth=3.0, activation="softplus", shared="false", epsilon="1e-3", friction="coulomb"
    )
    assert spec == DeLaNSpec(
        width=32,
        depth=3,
        activation=Activation.SOFTPLUS,
        shared=False,
        epsilon=1e-3,
        friction=FrictionKind.COULOMB,
    )
    assert DeLaNSpec.from_options(dtype="float64").precision is Precision.FLOAT64  # the CLI's name
    assert DeLaNSpec.from_options(friction=None).friction is FrictionKind.NONE
    assert DeLaNSpec.from_options(activation=Activation.ELU).activation is Activation.ELU
    assert make_spec("hnn", momentum="canonical", newton_steps="4") == HNNSpec(
        momentum=Momentum.CANONICAL, newton_steps=4
    )


@pytest.mark.parametrize(
    "kind, options, error, message",
    [
        ("delan", dict(widht=3), UnknownNameError, "unknown delan option 'widht'. Did you mean 'width'"),
        ("lnn", dict(regularization=1e-6), UnknownNameError, "lnn option 'regularization'"),
        ("delan", dict(activation="tahn"), UnknownNameError, "Did you mean 'tanh'"),
        ("delan", dict(init="xavir"), UnknownNameError, "initialisation 'xavir'"),
        ("delan", dict(width="wide"), SpecError, "'width' must be an integer, got 'wide'"),
        ("delan", dict(depth=1.5), SpecError, "'depth' must be an integer"),
        ("delan", dict(shared="maybe"), SpecError, "'shared' must be true or false"),
        ("delan", dict(epsilon=0.0), SpecError, "epsilon must be > 0"),
        ("hnn_structured", dict(epsilon="-1"), SpecError, "epsilon must be > 0"),
        ("delan", dict(width=0), SpecError, "width must be >= 1"),
        ("hnn", dict(newton_steps=0), SpecError, "newton_steps must be >= 1"),
        ("mlp", dict(heads="sideways"), UnknownNameError, "heads"),
        ("delan", dict(dtype="float32", precision="float64"), SpecError, "given twice"),
        ("delan", dict(dtype="float16"), UnknownNameError, "dtype 'float16'"),
    ],
)
def test_from_options_errors_name_the_problem(kind, options, error, message):
    with pytest.raises(error, match=message):
        make_model(kind, INFO, key=KEY, **options)


def test_constructing_a_spec_checks_types():
    """Strings are parsed at the edge only: a spec built directly takes option members."""
    with pytest.raises(SpecError, match="must be a Activation.*from_options"):
        DeLaNSpec(activation="tanh")
    with pytest.raises(SpecError, match="width must be an integer"):
        LNNSpec(width=True)
    assert DeLaNSpec(shift=1).shift == 1.0 and isinstance(DeLaNSpec(shift=1).shift, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        DeLaNSpec().width = 3


@pytest.mark.parametrize("spec", NON_DEFAULT, ids=lambda s: s.kind)
def test_spec_build_equals_make_model(spec):
    """Building from the spec and from its JSON strings through make_model gives the same
    weights for the same key: the spec is the only source of the hyper-parameters."""
    a = spec.build(INFO, key=KEY)
    b = make_model(spec.kind, INFO, key=KEY, **spec.to_json())
    assert a.spec == b.spec == spec and a.kind == spec.kind
    la = jax.tree_util.tree_leaves(eqx.filter(a, eqx.is_inexact_array))
    lb = jax.tree_util.tree_leaves(eqx.filter(b, eqx.is_inexact_array))
    assert la and len(la) == len(lb)
    for x, y in zip(la, lb):
        assert x.dtype == spec.precision.dtype
        np.testing.assert_array_equal(x, y)
    with pytest.raises(AttributeError):
        a.kind = "other"
    assert not hasattr(a, "hyperparameters")


def test_models_without_friction_have_no_friction_parameters():
    for kind in ("delan", "lnn"):
        model = make_model(kind, INFO, key=KEY, width=8)
        assert isinstance(model.friction_model, NoFriction)
        assert jax.tree_util.tree_leaves(eqx.filter(model.friction_model, eqx.is_array)) == []
        np.testing.assert_array_equal(model.friction(jnp.ones(2), jnp.array([1.0, -2.0])), 0.0)
        with_friction = make_model(kind, INFO, key=KEY, width=8, friction="viscous")
        assert np.all(np.asarray(with_friction.friction(jnp.ones(2), jnp.array([1.0, -2.0]))) != 0)


# --------------------------------------------------------------------------------------
# Capabilities: provides(q) is True exactly when the per-sample method works
# --------------------------------------------------------------------------------------

CAPABILITY_MODELS = [
    ("delan", {}),
    ("delan", dict(shared=False, friction="coulomb")),
    ("lnn", {}),
    ("mlp", {}),
    ("mlp", dict(heads="forward")),
    ("mlp", dict(heads="inverse")),
    ("hnn", {}),
    ("hnn", dict(momentum="canonical")),
    ("hnn_structured", {}),
    ("clnn", {}),  # needs known kinematics: built for a chain pendulum
]


def _required_arguments(method) -> int:
    params = inspect.signature(method).parameters.values()
    return sum(p.default is inspect.Parameter.empty for p in params)


@pytest.mark.parametrize("kind, options", CAPABILITY_MODELS, ids=lambda x: str(x))
def test_provides_matches_the_per_sample_methods(kind, options):
    info = lagrax.system("chain_pendulum", n=3).info if kind == "clnn" else INFO
    model = make_model(kind, info, key=KEY, width=4, depth=1, **options)
    state = jax.ShapeDtypeStruct((info.dof,), jnp.float32)
    for quantity in QUANTITIES:
        method = getattr(model, quantity)
        args = [state] * _required_arguments(method)
        try:
            jax.eval_shape(method, *args)
            works = True
        except NotProvidedError:
            works = False
        assert model.provides(quantity) == works, (kind, options, quantity)
    with pytest.raises(UnknownNameError, match="quantity"):
        model.provides("mass_matrx")


# --------------------------------------------------------------------------------------
# Save / load through the spec
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", NON_DEFAULT, ids=lambda s: s.kind)
def test_load_model_gives_the_same_spec_and_predictions(tmp_path, spec):
    model = spec.build(INFO, key=jax.random.PRNGKey(5))
    model = jax.tree_util.tree_map(lambda x: x * 1.05 if eqx.is_inexact_array(x) else x, model)
    lagrax.save_model(model, tmp_path)
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["kind"] == spec.kind and meta["spec"] == spec.to_json()
    assert lagrax.SystemInfo.from_json(meta["system"]) == INFO
    assert meta["lagrax_version"] == lagrax.__version__
    loaded = lagrax.load_model(tmp_path)
    assert loaded.spec == spec and type(loaded) is type(model)
    rng = np.random.default_rng(1)
    q, qd, x = rng.normal(size=(3, 5, 2))
    method = "forward_dynamics" if model.provides("forward_dynamics") else "inverse_dynamics"
    if spec.kind == "hnn":  # a random black-box H has no canonical p(q, qd): compare H's flow
        method = "canonical_time_derivative"
    a = getattr(batched(model), method)(q, qd, x)
    b = getattr(batched(loaded), method)(q, qd, x)
    for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_array_equal(u, v)


def test_load_rejects_an_unknown_or_missing_spec_field(tmp_path):
    lagrax.save_model(make_model("delan", INFO, key=KEY, width=4), tmp_path)
    path = tmp_path / "model.json"
    meta = json.loads(path.read_text())
    path.write_text(json.dumps({**meta, "spec": {**meta["spec"], "regularization": 1e-6}}))
    with pytest.raises(LagraxError, match="model.json: invalid delan spec.*'regularization'"):
        lagrax.load_model(tmp_path)
    spec = dict(meta["spec"])
    del spec["epsilon"]
    path.write_text(json.dumps({**meta, "spec": spec}))
    with pytest.raises(LagraxError, match="lacks the field.*'epsilon'"):
        lagrax.load_model(tmp_path)
    path.write_text(json.dumps({k: v for k, v in meta.items() if k != "spec"}))
    with pytest.raises(LagraxError, match="lacks spec"):
        lagrax.load_model(tmp_path)
    path.write_text(json.dumps({**meta, "kind": "delam"}))
    with pytest.raises(LagraxError, match="unknown model kind 'delam'"):
        lagrax.load_model(tmp_path)
