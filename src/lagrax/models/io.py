"""Saving and loading trained models: one run directory, two files.

* ``model.eqx``: the array leaves (``eqx.tree_serialise_leaves``);
* ``model.json``: what is needed to rebuild the skeleton the leaves go into,
  ``{"kind", "spec", "system", "lagrax_version", "model_sha256"}`` (the last is the
  checksum of ``model.eqx``, required on loading) with ``spec = model.spec.to_json()``,
  so that ``Spec.from_json(spec).build(SystemInfo.from_json(system), key=PRNGKey(0))``
  followed by ``eqx.tree_deserialise_leaves`` gives the model back. An
  :class:`~lagrax.models.ensemble.Ensemble` adds ``"ensemble": K`` (its member count)
  and is rebuilt as K stacked members. Reading the spec
  is strict: an unknown or a missing field is an error naming it, never a default.

This works for every model of :mod:`lagrax.models` (a static field ``spec``, a
:class:`~lagrax.models.spec.ModelSpec`). Each file is written to a temporary
file in the same folder and renamed into place, the JSON last, so a crash never
leaves a half-written file, and an existing model is only overwritten with ``force``.

Not here: optimiser state, training history or datasets (the training module owns
its run directory's other files).
"""

from __future__ import annotations

import json
from pathlib import Path

import equinox as eqx
import jax

from lagrax.core.version import __version__
from lagrax.core.errors import FileExistsLagraxError, LagraxError, ShapeError
from lagrax.core.fileio import atomic_write, file_sha256
from lagrax.core.options import Precision
from lagrax.systems.base import System, SystemInfo
from lagrax.models import MODELS, spec_class
from lagrax.models.ensemble import Ensemble
from lagrax.models.spec import ModelSpec

MODEL_FILE = "model.eqx"
META_FILE = "model.json"
META_KEYS = ("kind", "spec", "system")


def save_model(model: System, run_dir, *, force: bool = False) -> Path:
    """Write ``model`` to ``run_dir/model.eqx`` and ``run_dir/model.json``; returns ``run_dir``.

    Raises :class:`~lagrax.core.errors.FileExistsLagraxError` if a model is already saved
    there and ``force`` is false.
    """
    spec = model.spec if isinstance(model, System) and model.provides("spec") else None
    if not isinstance(spec, ModelSpec) or spec.kind not in MODELS:
        raise LagraxError(
            f"cannot save a {type(model).__name__}: only lagrax models (with a static field "
            f"'spec', a ModelSpec of a kind in {sorted(MODELS)}) can be saved"
        )
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise FileExistsLagraxError(f"{run_dir} exists and is not a directory")
    for name in (MODEL_FILE, META_FILE):
        if (run_dir / name).exists() and not force:
            raise FileExistsLagraxError(
                f"{run_dir / name} exists; refusing to overwrite the saved model (use --force / force=True)"
            )
    meta = {
        "kind": spec.kind,
        "spec": spec.to_json(),
        "system": model.info.to_json(),
        "lagrax_version": __version__,
    }
    if isinstance(model, Ensemble):
        meta["ensemble"] = model.size
    json.dumps(meta)  # fails before anything is written
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(run_dir / MODEL_FILE, lambda f: eqx.tree_serialise_leaves(f, model))
    meta["model_sha256"] = file_sha256(run_dir / MODEL_FILE)  # checked by load_model
    atomic_write(run_dir / META_FILE, lambda f: f.write(json.dumps(meta, indent=2).encode()))
    return run_dir


def _resolve_dir(run_dir) -> Path:
    path = Path(run_dir)
    if path.is_file() and path.name in (MODEL_FILE, META_FILE):
        path = path.parent
    if not path.is_dir():
        raise LagraxError(f"no saved model at {path}: the directory does not exist")
    for name in (META_FILE, MODEL_FILE):
        if not (path / name).is_file():
            raise LagraxError(f"no saved model at {path}: {name} is missing")
    return path


def read_model_metadata(run_dir) -> dict:
    """The parsed ``model.json`` of a run directory (kind, spec, system, version)."""
    path = _resolve_dir(run_dir) / META_FILE
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise LagraxError(f"{path} is not valid JSON ({e}); the saved model is corrupt") from None
    missing = [k for k in META_KEYS if not isinstance(meta, dict) or k not in meta]
    if missing:
        raise LagraxError(f"{path} lacks {', '.join(missing)}; the saved model is corrupt")
    return meta


def read_spec(meta: dict, where: str = META_FILE) -> ModelSpec:
    """The :class:`~lagrax.models.spec.ModelSpec` of a parsed ``model.json`` (strict)."""
    kind = meta["kind"]
    if not isinstance(kind, str) or kind not in MODELS:
        raise LagraxError(f"{where}: unknown model kind {kind!r} (known: {', '.join(sorted(MODELS))})")
    try:
        return spec_class(kind).from_json(meta["spec"])
    except LagraxError as e:
        raise type(e)(f"{where}: invalid {kind} spec: {e}") from None
    except (TypeError, KeyError, ValueError, AttributeError) as e:
        raise LagraxError(
            f"{where}: its spec is not a {kind} model's ({type(e).__name__}: {e}); the saved model is corrupt"
        ) from None


def _describe(info: SystemInfo) -> str:
    return f"{info.name!r} ({info.dof} DoF: {', '.join(info.joint_types)})"


def _check_system(path: Path, info: SystemInfo, system: SystemInfo | System) -> None:
    other = system if isinstance(system, SystemInfo) else getattr(system, "info", None)
    if not isinstance(other, SystemInfo):
        raise LagraxError(f"load_model: system must be a SystemInfo or a System, got {type(system).__name__}")
    if other.dof != info.dof or tuple(other.joint_types) != tuple(info.joint_types):
        raise ShapeError(
            f"the model in {path} was trained for {_describe(info)}, "
            f"which does not match the requested system {_describe(other)}"
        )


def _skeleton(spec: ModelSpec, info: SystemInfo, ensemble, path: Path):
    """What the saved leaves go into: one model, or an ensemble of ``ensemble`` members."""
    if ensemble is None:
        return spec.build(info, key=jax.random.PRNGKey(0))
    if not isinstance(ensemble, int) or isinstance(ensemble, bool) or ensemble < 1:
        raise LagraxError(f"{path / META_FILE}: 'ensemble' must be a positive member count, got {ensemble!r}")
    return Ensemble.build(lambda key: spec.build(info, key=key), range(ensemble))


def load_model(run_dir, *, system: SystemInfo | System | None = None) -> System:
    """Rebuild the model saved in ``run_dir`` (a directory, or its ``model.eqx``/``model.json``).

    If ``system`` (a :class:`SystemInfo` or a :class:`System`) is given, the saved model
    must have the same number of joints and joint types, else
    :class:`~lagrax.core.errors.ShapeError` names both. An unknown or missing field of the
    saved spec is a :class:`~lagrax.core.errors.LagraxError` naming it. So is a
    ``model.eqx`` whose SHA-256 differs from ``model.json``'s ``model_sha256``, and a
    ``model.json`` without one: every lagrax that saves models records it, and without it
    a damaged file would load silently.
    """
    path = _resolve_dir(run_dir)
    meta = read_model_metadata(path)
    try:
        info = SystemInfo.from_json(meta["system"])
    except (TypeError, ValueError) as e:
        raise LagraxError(f"{path / META_FILE}: invalid system metadata ({e})") from None
    if system is not None:
        _check_system(path, info, system)
    spec = read_spec(meta, str(path / META_FILE))
    if spec.precision is Precision.FLOAT64 and not jax.config.jax_enable_x64:
        raise LagraxError(
            f"the model in {path} has float64 parameters; enable them first with "
            "jax.config.update('jax_enable_x64', True)"
        )
    expected = meta.get("model_sha256")
    if not isinstance(expected, str):  # without it a damaged model.eqx would load and predict garbage
        raise LagraxError(
            f"{path / META_FILE} lacks 'model_sha256' (the checksum of {MODEL_FILE}), so the model "
            "cannot be checked for damage; if you trust the file, add its SHA-256 there as "
            '"model_sha256", or save the model again'
        )
    if file_sha256(path / MODEL_FILE) != expected:
        raise LagraxError(
            f"{path / MODEL_FILE} is damaged: its SHA-256 does not match the one recorded in "
            f"{META_FILE} when it was saved"
        )
    skeleton = _skeleton(spec, info, meta.get("ensemble"), path)
    try:
        return eqx.tree_deserialise_leaves(path / MODEL_FILE, skeleton)
    except Exception as e:  # numpy/equinox raise assorted types for truncated or mismatched files
        raise LagraxError(
            f"{path / MODEL_FILE} could not be read into a {spec.kind} model ({type(e).__name__}: {e}); "
            "the file is corrupt or does not belong to this model.json"
        ) from None
