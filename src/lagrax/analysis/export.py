"""Exporting a trained model for runtimes outside Python: ONNX and StableHLO files.

A control loop on a robot runs in C++ (ros2_control) or another runtime, not in a Python
process with JAX. :func:`export_model` writes a chosen set of the model's per-sample
functions (:data:`FUNCTIONS`: inverse and forward dynamics, ``M``, ``c``, ``g`` and the
energies) as one program with fixed input shapes, a single state ``(n,)`` or a batch
``(B, n)``:

* ``onnx``: an ONNX graph made by ``jax2onnx`` and run by ``onnxruntime`` (extra ``export``);
* ``stablehlo``: ``jax.export``'s serialised StableHLO, which plain JAX loads and runs
  without lagrax (``jax.export.deserialize(data).call(q, qd, qdd)``).

The program computes in float64: a float32 model's parameters are widened exactly. The
data normalisation a model keeps (the MLP's input and output standardisation) is part of
its functions, so the file takes and gives physical units. Next to the file, ``F.json``
holds the metadata (joint names and order, units, inputs and outputs, the model's spec
and system, the check); an ONNX file also carries it in its ``metadata_props``
(``"lagrax"``).

Every export is checked before anything is written: the file, read back, must agree
with the JAX model to :data:`TOLERANCE` relative (the largest difference over the largest
magnitude, per function) on :data:`CHECK_STATES` random states drawn uniformly from the
range of the run's data; otherwise an :class:`ExportError` and no file. Both files are
written atomically.

Not here: running a control loop on the exported file (``benchmarks/export.py`` does,
and ``docs/guide/deploying.md`` shows the C++ side).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from lagrax.core.errors import FileExistsLagraxError, LagraxError
from lagrax.core.fileio import atomic_write_bytes, atomic_write_text
from lagrax.core.options import Precision
from lagrax.core.version import __version__
from lagrax.models.ensemble import Ensemble
from lagrax.systems.base import System

FORMATS = ("onnx", "stablehlo")
#: Each exportable function and the inputs it takes, in order.
FUNCTIONS: dict[str, tuple[str, ...]] = {
    "inverse_dynamics": ("q", "qd", "qdd"),
    "forward_dynamics": ("q", "qd", "tau"),
    "mass_matrix": ("q",),
    "coriolis": ("q", "qd"),
    "gravity": ("q",),
    "kinetic_energy": ("q", "qd"),
    "potential_energy": ("q",),
}
INPUTS = ("q", "qd", "qdd", "tau")
#: The unit of each input and output, per joint type (revolute, prismatic); M mixes them.
UNITS = {
    "q": ("rad", "m"),
    "qd": ("rad/s", "m/s"),
    "qdd": ("rad/s^2", "m/s^2"),
    "tau": ("N m", "N"),
    "inverse_dynamics": ("N m", "N"),
    "forward_dynamics": ("rad/s^2", "m/s^2"),
    "coriolis": ("N m", "N"),
    "gravity": ("N m", "N"),
    "mass_matrix": ("kg m^2 (row i, column j: joint i's force unit per joint j's acceleration unit)",) * 2,
    "kinetic_energy": ("J",) * 2,
    "potential_energy": ("J",) * 2,
}
TOLERANCE = 1e-6
CHECK_STATES = 1000


class ExportError(LagraxError, ValueError):
    """A model cannot be exported: an operation the format cannot express, a mismatch, bad options."""


@dataclasses.dataclass(frozen=True)
class Exported:
    """What :func:`export_model` wrote: the file, its metadata file, and the check's errors."""

    path: Path
    metadata_path: Path
    functions: tuple[str, ...]
    max_relative_error: dict[str, float]


def metadata_path(out: str | Path) -> Path:
    """The metadata file next to an export: ``F.json``."""
    out = Path(out)
    return out.with_name(out.name + ".json")


def check_writable(out: str | Path, force: bool) -> None:
    """Refuse to overwrite an export (``F`` or ``F.json``) unless ``force``."""
    for path in (Path(out), metadata_path(out)):
        if path.is_dir():
            raise FileExistsLagraxError(f"{path} is a directory; give a file name for the export")
        if path.exists() and not force:
            raise FileExistsLagraxError(f"{path} exists; refusing to overwrite it (use --force)")


# ---- the model and its functions -----------------------------------------------------------


def select_member(model: System, member: int | None) -> System:
    """The model to export: an ensemble's mean (``member=None``) or its member ``member``."""
    if member is None:
        return model
    if not isinstance(model, Ensemble):
        raise ExportError(f"--member {member}: the model is a single {model.kind}, not an ensemble")
    if not 0 <= member < model.size:
        raise ExportError(
            f"--member {member} is out of range: the ensemble has members 0 to {model.size - 1}"
        )
    return model.member(member)


def resolve_functions(model: System, names: Sequence[str] | None) -> tuple[str, ...]:
    """The functions to export: ``names`` (each must be provided), or every one of
    :data:`FUNCTIONS` the model provides."""
    if names is None:
        chosen = tuple(f for f in FUNCTIONS if model.provides(f))
        if not chosen:
            raise ExportError(f"the {model.kind} model provides none of {', '.join(FUNCTIONS)}")
        return chosen
    unknown = [f for f in names if f not in FUNCTIONS]
    if unknown:
        raise ExportError(f"unknown function {unknown[0]!r} (exportable: {', '.join(FUNCTIONS)})")
    missing = [f for f in names if not model.provides(f)]
    if missing:
        raise ExportError(f"the {model.kind} model does not provide {', '.join(missing)}")
    if not names:
        raise ExportError("no functions to export")
    return tuple(dict.fromkeys(names))


def in_float64(model: System) -> System:
    """``model`` computing in float64: the same parameters, widened exactly, and its spec's
    precision set to float64 (models cast their inputs to it)."""
    spec = model.spec
    if spec.precision is Precision.FLOAT64:
        return model
    wide = dataclasses.replace(spec, precision=Precision.FLOAT64)
    one = model.members if isinstance(model, Ensemble) else model
    try:  # only its structure is needed: no arrays drawn, nothing compiled
        skeleton = eqx.filter_eval_shape(lambda: wide.build(model.info, key=jax.random.PRNGKey(0)))
    except TypeError:  # a build that reads concrete arrays (the rigid-body model's URDF kinematics)
        skeleton = wide.build(model.info, key=jax.random.PRNGKey(0))
    leaves = [Precision.FLOAT64.cast(x) for x in jax.tree_util.tree_leaves(one)]
    widened = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(skeleton), leaves)
    return Ensemble(widened) if isinstance(model, Ensemble) else widened


def used_inputs(functions: Sequence[str]) -> tuple[str, ...]:
    """The inputs the ``functions`` take, in the order of :data:`INPUTS`."""
    return tuple(i for i in INPUTS if any(i in FUNCTIONS[f] for f in functions))


def per_sample_program(model: System, functions: Sequence[str]) -> Callable[..., dict]:
    """``program(*inputs) -> {function: value}`` for one state (inputs: :func:`used_inputs`)."""
    inputs = used_inputs(functions)

    def program(*arrays):
        given = dict(zip(inputs, arrays))
        return {f: getattr(model, f)(*(given[i] for i in FUNCTIONS[f])) for f in functions}

    return program


def program_for(model: System, functions: Sequence[str], batch: int | None) -> Callable[..., dict]:
    """The per-sample program, or its ``vmap`` over a leading batch axis."""
    program = per_sample_program(model, functions)
    return program if batch is None else jax.vmap(program)


def input_shapes(n: int, count: int, batch: int | None) -> list[jax.ShapeDtypeStruct]:
    shape = (n,) if batch is None else (batch, n)
    return [jax.ShapeDtypeStruct(shape, jnp.float64)] * count


# ---- the formats ---------------------------------------------------------------------------


def _onnx_converter():
    """``jax2onnx.to_onnx``, or an :class:`ExportError` saying how to install it.

    The programs are traced to lax primitives before jax2onnx sees them
    (:func:`_convert_one`): jax2onnx patches ``equinox.nn.Linear`` with a primitive that
    cannot be differentiated while it traces, and the dynamics need derivatives of M and V.
    Its first conversion in a process imports all its plugins (flax's too): about 10 s of CPU.
    """
    try:
        import jax2onnx
        import onnxruntime  # noqa: F401  (the check runs the file in it)
    except ImportError:
        raise ExportError(
            "ONNX export needs jax2onnx and onnxruntime: pip install 'lagrax[export]'"
        ) from None
    return jax2onnx.to_onnx


def _unsupported(e: Exception, kind: str, fmt: str) -> ExportError:
    match = re.search(r"primitive '([^']+)'", str(e))
    what = f"the operation {match.group(1)!r}" if match else f"its program ({type(e).__name__}: {e})"
    hint = " (try --format stablehlo)" if fmt == "onnx" else ""
    return ExportError(f"cannot export the {kind} model to {fmt}: the exporter cannot express {what}{hint}")


def _convert_one(convert, program: Callable, inputs, specs, output: str, kind: str):
    """One function's ONNX graph: traced to a jaxpr first, then converted."""
    from jax.extend import core as jcore

    closed = jax.make_jaxpr(program)(*specs)
    flat = jcore.jaxpr_as_fun(closed)
    try:
        return convert(
            lambda *a: flat(*a)[0],
            list(specs),
            model_name=f"lagrax_{kind}",
            enable_double_precision=True,
            input_names=list(inputs),
            output_names=[output],
        )
    except (NotImplementedError, ValueError, TypeError, KeyError, RuntimeError) as e:
        raise _unsupported(e, kind, "onnx") from None


def merge_graphs(models: Sequence[Any], inputs: Sequence[str]):
    """One ONNX model of several that share their input names: each one's nodes and
    initialisers prefixed apart, the inputs shared, every output kept."""
    from onnx import compose

    first, merged = models[0], None
    for k, m in enumerate(models):
        part = compose.add_prefix(m, f"f{k}_", rename_inputs=False, rename_outputs=False)
        if merged is None:
            merged = part
            continue
        merged.graph.node.extend(part.graph.node)
        merged.graph.initializer.extend(part.graph.initializer)
        merged.graph.value_info.extend(part.graph.value_info)
        merged.graph.output.extend(part.graph.output)
        known = {i.name for i in merged.graph.input}
        merged.graph.input.extend(i for i in part.graph.input if i.name not in known)
    order = {name: k for k, name in enumerate(inputs)}
    ordered = sorted(merged.graph.input, key=lambda i: order.get(i.name, len(order)))
    del merged.graph.input[:]
    merged.graph.input.extend(ordered)
    merged.ir_version = first.ir_version
    return merged


def to_onnx(model: System, functions: Sequence[str], batch: int | None):
    """The ONNX ``ModelProto`` of ``functions`` of ``model`` (inputs: :func:`used_inputs`).

    Each function is converted on its own and the graphs are merged: jax2onnx's time grows
    with the square of a graph's size (about 400 s for all seven functions of a small
    DeLaN in one graph, seconds each on their own).
    """
    convert = _onnx_converter()
    inputs = used_inputs(functions)
    specs = input_shapes(model.info.dof, len(inputs), batch)
    graphs = []
    for f in functions:
        program = program_for(model, [f], batch)
        own = [i for i in inputs if i in FUNCTIONS[f]]
        positions = [inputs.index(i) for i in own]
        graphs.append(
            _convert_one(
                convert,
                lambda *a, p=program, f=f: (p(*a)[f],),
                own,
                [specs[i] for i in positions],
                f,
                model.kind,
            )
        )
    return merge_graphs(graphs, inputs)


def onnx_session(data: bytes, threads: int = 1):
    """An ``onnxruntime.InferenceSession`` of an ONNX file's bytes, on ``threads`` CPU threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = threads
    options.log_severity_level = 3  # its warnings about unused initialisers are noise
    try:
        return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's own exception types (NOT_IMPLEMENTED, INVALID_GRAPH ...)
        found = re.search(r"implementation for (\w+)", str(e))
        what = f"the operation {found.group(1)!r}" if found else f"the graph ({e})"
        raise ExportError(f"onnxruntime cannot run the exported model: it cannot run {what}") from None


def to_stablehlo(program: Callable, specs: Sequence) -> bytes:
    """``jax.export``'s serialised StableHLO of ``program`` (CPU)."""
    try:
        return bytes(jax.export.export(jax.jit(program))(*specs).serialize())
    except (NotImplementedError, ValueError, TypeError) as e:
        raise ExportError(f"jax.export cannot export the program: {type(e).__name__}: {e}") from None


# ---- the check ------------------------------------------------------------------------------


def data_ranges(q, qd, qdd=None, tau=None) -> dict[str, list[list[float]]]:
    """``{input: [[lo, hi] per joint]}`` of training data (``(N, n)`` arrays; None: absent)."""
    given = dict(q=q, qd=qd, qdd=qdd, tau=tau)
    return {
        k: np.stack([np.nanmin(v, axis=0), np.nanmax(v, axis=0)], axis=1).tolist()
        for k, v in given.items()
        if v is not None
    }


def random_states(ranges: Mapping[str, Any], inputs: Sequence[str], count: int, seed: int = 0) -> dict:
    """``count`` states drawn uniformly from ``ranges`` (:func:`data_ranges`), ``{input: (count, n)}``."""
    missing = [i for i in inputs if i not in ranges]
    if missing:
        raise ExportError(f"the training data has no {', '.join(missing)}: cannot check the export on it")
    rng = np.random.default_rng(seed)
    states = {}
    for name in inputs:
        lo, hi = np.asarray(ranges[name], dtype=np.float64).T
        states[name] = rng.uniform(lo, hi, size=(count, lo.size))
    return states


def _in_batches(states: Mapping[str, np.ndarray], inputs: Sequence[str], batch: int | None):
    """The states as the program's calls take them: one state each, or padded batches."""
    count = len(next(iter(states.values())))
    if batch is None:
        return [[states[i][k] for i in inputs] for k in range(count)]
    calls = []
    for start in range(0, count, batch):
        rows = np.arange(start, start + batch) % count  # the last batch wraps around to fill it
        calls.append([states[i][rows] for i in inputs])
    return calls


def relative_errors(got: Mapping[str, np.ndarray], want: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Per function: the largest absolute difference over the largest magnitude (NaN -> inf)."""
    errors = {}
    for name, w in want.items():
        w, g = np.asarray(w), np.asarray(got[name])
        scale = max(float(np.max(np.abs(w))), np.finfo(np.float64).tiny)
        diff = float(np.max(np.abs(g - w))) if g.shape == w.shape else np.inf
        errors[name] = diff / scale if np.isfinite(diff) else np.inf
    return errors


def check_export(
    run: Callable[..., Sequence], reference: Callable[..., dict], states: Mapping, functions, batch
) -> dict[str, float]:
    """Run the read-back file ``run`` on ``states`` and compare with the JAX ``reference``
    (both take the inputs positionally); an :class:`ExportError` beyond :data:`TOLERANCE`."""
    inputs = used_inputs(functions)
    count = len(states[inputs[0]])
    outs = [run(*call) for call in _in_batches(states, inputs, batch)]
    got = {}
    for k, name in enumerate(functions):
        parts = [np.asarray(o[k]) for o in outs]
        got[name] = (np.stack(parts) if batch is None else np.concatenate(parts))[:count]
    want = jax.jit(jax.vmap(reference))(*(jnp.asarray(states[i]) for i in inputs))
    errors = relative_errors(got, want)
    bad = {k: v for k, v in errors.items() if not v <= TOLERANCE}
    if bad:
        worst = max(bad, key=bad.get)
        raise ExportError(
            f"the exported {worst} differs from the JAX model by {bad[worst]:.2e} relative "
            f"(tolerance {TOLERANCE:g}) on {count} states from the data's range; nothing was written"
        )
    return errors


def _onnx_runner(data: bytes, inputs, functions):
    session = onnx_session(data)
    taken = {i.name for i in session.get_inputs()}  # (an input no function reads is not in the graph)

    def run(*arrays):
        return session.run(list(functions), {k: a for k, a in zip(inputs, arrays) if k in taken})

    return run


def _stablehlo_runner(data: bytes, functions):
    call = jax.jit(jax.export.deserialize(bytearray(data)).call)

    def run(*arrays):
        values = call(*arrays)
        return [np.asarray(values[f]) for f in functions]

    return run


# ---- the file and its metadata -------------------------------------------------------------


def describe_io(model: System, names: Sequence[str], shapes: Mapping[str, tuple]) -> list[dict]:
    """Name, shape and units (per joint where they differ) of each input or output."""
    types = model.info.joint_types
    return [
        {
            "name": name,
            "shape": list(shapes[name]),
            "units": [UNITS[name][0 if t == "revolute" else 1] for t in types],
        }
        for name in names
    ]


def export_metadata(model: System, fmt: str, functions, batch, check: Mapping[str, Any]) -> dict:
    """The metadata of an export (``F.json``, and an ONNX file's ``metadata_props``)."""
    n, lead = model.info.dof, () if batch is None else (batch,)
    value_shape = {"mass_matrix": (n, n), "kinetic_energy": (), "potential_energy": ()}
    inputs = used_inputs(functions)
    return {
        "format": fmt,
        "lagrax_version": __version__,
        "dtype": "float64",
        "batch": batch,
        "joint_names": list(model.info.joint_names),
        "joint_types": list(model.info.joint_types),
        "inputs": describe_io(model, inputs, {i: lead + (n,) for i in inputs}),
        "outputs": describe_io(model, functions, {f: lead + value_shape.get(f, (n,)) for f in functions}),
        "model": {
            "kind": model.kind,
            "spec": model.spec.to_json(),
            "system": model.info.to_json(),
            "ensemble_size": model.size if isinstance(model, Ensemble) else None,
        },
        "normalization": "folded in: inputs and outputs are in physical units",
        "check": dict(check),
    }


def export_model(
    model: System,
    out: str | Path,
    *,
    fmt: str,
    ranges: Mapping[str, Any],
    functions: Sequence[str] | None = None,
    batch: int | None = None,
    force: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> Exported:
    """Export ``model``'s ``functions`` to ``out`` (format ``fmt``) and ``out.json``, checked first.

    ``ranges`` (:func:`data_ranges`) bound the random states of the check; ``batch`` fixes a
    leading batch axis (None: one state); ``extra`` is added to the metadata (where the
    model came from). Needs ``jax_enable_x64``.
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise ExportError(f"--batch must be a positive number of states, got {batch!r}")
    if not jax.config.jax_enable_x64:
        raise ExportError("exports compute in float64: call jax.config.update('jax_enable_x64', True) first")
    check_writable(out, force)
    functions = resolve_functions(model, functions)
    wide = in_float64(model)
    inputs = used_inputs(functions)
    if fmt == "onnx":
        proto = to_onnx(wide, functions, batch)
        data = proto.SerializeToString()
        runner = _onnx_runner(data, inputs, functions)
    else:
        specs = input_shapes(model.info.dof, len(inputs), batch)
        data = to_stablehlo(program_for(wide, functions, batch), specs)
        runner = _stablehlo_runner(data, functions)
    states = random_states(ranges, inputs, CHECK_STATES)
    errors = check_export(runner, per_sample_program(wide, functions), states, functions, batch)
    check = {
        "states": CHECK_STATES,
        "tolerance": TOLERANCE,
        "ranges": dict(ranges),
        "max_relative_error": errors,
    }
    meta = {**export_metadata(model, fmt, functions, batch, check), **dict(extra or {})}
    text = json.dumps(meta, indent=2) + "\n"
    if fmt == "onnx":
        entry = proto.metadata_props.add()
        entry.key, entry.value = "lagrax", text
        data = proto.SerializeToString()
    out = Path(out)
    atomic_write_bytes(out, data)
    atomic_write_text(metadata_path(out), text)
    return Exported(out, metadata_path(out), functions, errors)


def export_run(
    run_dir: str | Path,
    out: str | Path,
    *,
    fmt: str,
    functions: Sequence[str] | None = None,
    batch: int | None = None,
    member: int | None = None,
    data: str | Path | None = None,
    force: bool = False,
) -> Exported:
    """Export the model of a run directory (an ensemble's mean, or its member ``member``),
    checked on states from the range of its data file (or of ``data``)."""
    from lagrax.analysis.metrics import run_data_path
    from lagrax.data.dataset import load_dataset
    from lagrax.training.rundir import load_run

    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    check_writable(out, force)
    run = load_run(run_dir)
    model = select_member(run.model, member)
    ds = load_dataset(data if data is not None else run_data_path(run))
    ranges = data_ranges(ds.q, ds.qd, ds.qdd, ds.tau)
    extra = {"run": str(Path(run_dir).resolve()), "member": member}
    return export_model(
        model, out, fmt=fmt, ranges=ranges, functions=functions, batch=batch, force=force, extra=extra
    )
