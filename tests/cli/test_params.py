"""The one ``NAME=VALUE`` parser of ``-p`` and ``-O``, and the commands' typed requests."""

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lagrax.cli.params import parse_params
from lagrax.core.errors import LagraxError

number = st.floats(allow_nan=False, allow_infinity=False, width=64)


@given(values=st.lists(number, min_size=1, max_size=8), flag=st.booleans())
def test_cli_parameter_values_parse_to_types(values, flag):
    text = ",".join(repr(v) for v in values)
    parsed = parse_params([f"damping={text}", f"realistic={str(flag).lower()}", "path=a/b.urdf", "n=3"])
    expected = tuple(values) if len(values) > 1 else values[0]
    assert parsed == {"damping": expected, "realistic": flag, "path": "a/b.urdf", "n": 3}
    assert parse_params(["x=TRUE", "y=none", "z=1e-3"]) == {"x": True, "y": None, "z": 1e-3}


@pytest.mark.parametrize(
    "items, fragment",
    [
        (["width"], "--option expects NAME=VALUE, got 'width'"),
        (["=3"], "--option expects NAME=VALUE, got '=3'"),
        (["width=8", "width=16"], "--option width is given twice"),
        (["damping=0.1,,0.2"], "--option damping: empty entry in the list"),
    ],
)
def test_bad_settings_name_the_option(items, fragment):
    with pytest.raises(LagraxError, match=fragment):
        parse_params(items, "--option")


def test_model_options_arrive_typed(cli, tmp_path):
    """``-O`` goes through the same parser as ``-p``: ``shared=false`` is False, not a string."""
    from lagrax.cli.train import TrainRequest, settings

    request = TrainRequest(model="delan", data=tmp_path / "d.npz", out=tmp_path / "r", width=8, epochs=2)
    request = dataclasses.replace(request, options=["shared=false", "epsilon=1e-3", "activation=softplus"])
    overrides, model_options = settings(request)
    assert overrides == {"epochs": 2}
    assert model_options == {"width": 8, "shared": False, "epsilon": 1e-3, "activation": "softplus"}
    code, _, err = cli("train", "-m", "delan", "-d", tmp_path / "d.npz", "-o", tmp_path / "r", "-O", "=3")
    assert code == 2 and "--option expects NAME=VALUE" in err


def test_requests_have_the_command_lines_defaults():
    """A request built in Python is the command run without options."""
    from lagrax.cli.rollout import RolloutRequest

    request = RolloutRequest(out="x.npz")
    assert request.random == 10 and request.solver == "tsit5" and request.params is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.seed = 1  # type: ignore[misc]


def test_the_help_lists_every_command_and_model(cli):
    import lagrax.cli
    from lagrax.cli.app import COMMANDS
    from lagrax.models import MODELS

    assert len(COMMANDS) == 13
    for name in COMMANDS:
        assert f"``lagrax {name}" in lagrax.cli.__doc__, name
    code, out, _ = cli("train", "--help")
    assert code == 0 and all(name in out for name in MODELS)
