"""The code keeps the structure its style notes promise (checked on the source, not by eye).

* no function in ``src/`` is longer than 80 lines;
* no module reaches into another object's underscore names (``obj._x`` for an ``obj`` other
  than ``self``/``cls``, or ``from module import _x``);
* every public per-sample method of the protocol is annotated and documented.
"""

import ast
import inspect

import jax
import pytest

import lagrax

from lagrax.systems.base import QUANTITIES, System
from tests.helpers import SRC

FILES = sorted(SRC.rglob("*.py"))
MAX_LINES = 80


def parsed():
    for path in FILES:
        yield path.relative_to(SRC.parent), ast.parse(path.read_text(), filename=str(path))


def test_there_are_sources():
    assert len(FILES) > 20


def test_no_function_is_longer_than_80_lines():
    long = [
        f"{path}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path, tree in parsed()
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > MAX_LINES
    ]
    assert not long, "functions over 80 lines:\n" + "\n".join(long)


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _owner_is_self(node: ast.Attribute) -> bool:
    value = node.value
    if isinstance(value, ast.Name):
        return value.id in ("self", "cls")
    # type(self)._X is the class's own
    return (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Name)
        and value.func.id == "type"
        and len(value.args) == 1
        and isinstance(value.args[0], ast.Name)
        and value.args[0].id == "self"
    )


def test_no_module_uses_another_ones_underscore_names():
    found = []
    for path, tree in parsed():
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and _private(node.attr) and not _owner_is_self(node):
                found.append(f"{path}:{node.lineno} .{node.attr}")
            if isinstance(node, ast.ImportFrom):
                found += [f"{path}:{node.lineno} import {a.name}" for a in node.names if _private(a.name)]
    assert not found, "underscore names used across modules or objects:\n" + "\n".join(found)


@pytest.mark.parametrize("name", QUANTITIES + ("solve_forward_dynamics",))
def test_protocol_methods_are_annotated_and_documented(name):
    method = getattr(System, name)
    assert inspect.getdoc(method), f"System.{name} has no docstring"
    signature = inspect.signature(method)
    for param in list(signature.parameters.values())[1:]:
        assert param.annotation is not inspect.Parameter.empty, f"System.{name}: {param.name} lacks a type"
    assert signature.return_annotation is not inspect.Signature.empty, (
        f"System.{name} has no return annotation"
    )


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def test_every_override_of_the_protocol_is_annotated():
    import importlib

    for module in ("lagrax.systems.classic", "lagrax.systems.particles", "lagrax.models"):
        importlib.import_module(module)
    for kind in ("delan", "lnn", "mlp", "hnn", "hnn_structured"):
        lagrax.make_model(kind, lagrax.system("pendulum").info, key=jax.random.PRNGKey(0))
    missing = []
    for cls in _subclasses(System):
        if not cls.__module__.startswith("lagrax."):
            continue
        for name in QUANTITIES + ("solve_forward_dynamics",):
            method = cls.__dict__.get(name)
            if method is None:
                continue
            params = list(inspect.signature(method).parameters.values())[1:]
            if any(p.annotation is inspect.Parameter.empty for p in params):
                missing.append(f"{cls.__module__}.{cls.__name__}.{name}")
    assert not missing, "protocol methods without type annotations:\n" + "\n".join(missing)


# The layers, in the order the data flows; a module may import its own layer and those before it.
LAYERS = ("core", "systems", "data", "models", "training", "analysis", "control", "benchmarks", "cli")


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "lagrax" or len(parts) < 2 or parts[1] not in LAYERS:
        return None
    return LAYERS.index(parts[1])


def _imports(tree: ast.AST):
    """Every ``lagrax`` module a source imports, at any depth (lazy imports count too)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "lagrax":
                yield from ((node.lineno, f"lagrax.{a.name}") for a in node.names)
            else:
                yield node.lineno, node.module
        elif isinstance(node, ast.Import):
            yield from ((node.lineno, a.name) for a in node.names)


def test_every_module_sits_in_a_layer():
    top = sorted(p.name for p in SRC.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists())
    assert set(top) <= {*LAYERS, "__init__.py"}, f"modules outside the layers: {top}"


def test_no_import_runs_back_up_the_layers():
    """systems -> data -> models -> training -> analysis -> control -> cli, never back."""
    backwards = []
    for path, tree in parsed():
        module = ".".join(path.with_suffix("").parts)
        own = _layer(module)
        if own is None:
            continue
        for lineno, name in _imports(tree):
            layer = _layer(name)
            if layer is not None and layer > own:
                backwards.append(f"{path}:{lineno} {LAYERS[own]} imports {name} ({LAYERS[layer]})")
    assert not backwards, "imports against the flow:\n" + "\n".join(backwards)
