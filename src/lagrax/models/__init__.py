"""Learnable models. Each is a :class:`~lagrax.systems.System`, so a trained model is
used exactly like a ground-truth system.

Every model kind has a spec (:class:`~lagrax.models.spec.ModelSpec`), a frozen
dataclass whose typed fields are its hyper-parameters. Two ways to build one:

* ``spec.build(info, key=key)``, e.g. ``DeLaNSpec(width=128).build(info, key=key)``
  (the spec classes ``DeLaNSpec``, ``LNNSpec``, ``MLPSpec``, ``HNNSpec`` and
  ``StructuredHNNSpec`` can be imported from here);
* ``make_model(name, info, key=key, **options)``, the string edge used by the command
  line, the trainer and the benchmarks: options arrive as strings and numbers
  (``dtype="float32"``, ``friction="viscous"``) and are parsed by ``Spec.from_options``.

The registry :data:`MODELS` holds the spec classes themselves.
"""

from __future__ import annotations

from typing import Any

from lagrax.core.errors import UnknownNameError
from lagrax.models.clnn import CLNNSpec
from lagrax.models.delan import DeLaNSpec
from lagrax.models.hnn import HNNSpec, StructuredHNNSpec
from lagrax.models.hybrid import HybridSpec
from lagrax.models.lnn import LNNSpec
from lagrax.models.mlp import MLPSpec
from lagrax.models.rigid_body import RigidBodySpec

# name -> (spec class, one-line description)
MODELS: dict[str, tuple[type, str]] = {
    "delan": (DeLaNSpec, "Deep Lagrangian Network: learned M(q) = L L^T and V(q)"),
    "lnn": (LNNSpec, "Lagrangian Neural Network: black-box L(q, qd)"),
    "mlp": (MLPSpec, "feed-forward baseline: forward and inverse heads"),
    "hnn": (HNNSpec, "Hamiltonian Neural Network: black-box H(q, p)"),
    "clnn": (
        CLNNSpec,
        "constrained Lagrangian network (Finzi et al. 2020): known kinematics, learned masses and V(x)",
    ),
    "hnn_structured": (StructuredHNNSpec, "structured HNN: H = 1/2 p^T M^-1(q) p + V(q)"),
    "rigid_body": (
        RigidBodySpec,
        "known kinematics (a URDF), learned physically consistent inertias, armature and friction",
    ),
    "hybrid": (HybridSpec, "rigid_body plus a DeLaN residual: M = M_rb + L L^T, V = V_rb + V_net, friction"),
}


def spec_class(name: str) -> type:
    """The spec class of model ``name`` (an :class:`UnknownNameError` with did-you-mean if unknown)."""
    if name not in MODELS:
        raise UnknownNameError.for_name("model", str(name), MODELS)
    return MODELS[name][0]


def make_spec(name: str, **options: Any):
    """The spec of model ``name`` from option values (strings, numbers or option members)."""
    return spec_class(name).from_options(**options)


def make_model(name: str, info, *, key, **options: Any):
    """Build model ``name`` for a system described by ``info`` (a SystemInfo).

    ``options`` are the spec's fields by name (``dtype`` is accepted for ``precision``),
    as strings, numbers or option members; an unknown one is an error naming it.
    """
    spec = make_spec(name, **options)
    info, key = _system_info(info), _prng_key(key)
    _check_fits(spec, info, key)
    return spec.build(info, key=key)


def _check_fits(spec, info, key) -> None:
    """Refuse a model whose parameters alone exceed the machine's memory (a width of 10**9)
    before XLA aborts on it."""
    from lagrax.core.memory import check_fits

    nbytes = parameter_bytes(spec, info, key)
    if nbytes is not None:
        check_fits(nbytes, f"a {spec.kind} model of these settings", "choose a smaller width or depth")


def parameter_bytes(spec, info, key=None) -> int | None:
    """The bytes of the arrays of ``spec.build(info, key=key)``, from their shapes alone
    (``filter_eval_shape``: nothing is allocated or compiled); None for a model whose
    building needs concrete values."""
    import equinox as eqx
    import jax

    key = jax.random.PRNGKey(0) if key is None else key
    try:
        shapes = eqx.filter_eval_shape(lambda k: spec.build(info, key=k), key)
    except jax.errors.JAXTypeError:  # a build that does host-side work on the values
        return None
    return sum(x.size * x.dtype.itemsize for x in jax.tree_util.tree_leaves(shapes) if hasattr(x, "dtype"))


def _system_info(info):
    """``info`` itself, or a system's ``.info``; else a SpecError saying what is expected."""
    from lagrax.systems.base import System, SystemInfo
    from lagrax.models.spec import SpecError

    if isinstance(info, System):
        return info.info
    if not isinstance(info, SystemInfo):
        raise SpecError(
            f"make_model needs the system's info (a lagrax SystemInfo, e.g. lagrax.system('pendulum').info), "
            f"got {type(info).__name__}"
        )
    return info


def _prng_key(key):
    """``key`` if it is a JAX PRNG key (typed or raw ``uint32[2]``); else a SpecError."""
    import jax
    import jax.numpy as jnp

    from lagrax.models.spec import SpecError

    if isinstance(key, jax.Array) and (
        jnp.issubdtype(key.dtype, jax.dtypes.prng_key) or (key.shape == (2,) and key.dtype == jnp.uint32)
    ):
        return key
    raise SpecError(f"key must be one JAX PRNG key, e.g. jax.random.PRNGKey(0), got {key!r}")


__all__ = [
    "MODELS",
    "spec_class",
    "make_spec",
    "make_model",
    "parameter_bytes",
    "CLNNSpec",
    "DeLaNSpec",
    "HNNSpec",
    "HybridSpec",
    "LNNSpec",
    "MLPSpec",
    "RigidBodySpec",
    "StructuredHNNSpec",
]
