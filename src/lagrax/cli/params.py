"""``NAME=VALUE`` settings from the command line: ``-p`` (system parameters) and ``-O`` (model options).

One parser for both. A value is a boolean (``true``/``false``), ``none``, an integer, a
float or else the text itself; a comma-separated value is a tuple of such values (one per
joint, say). Whether a value suits its setting is the receiver's check (a system factory,
``Spec.from_options``), not this module's.
"""

from __future__ import annotations

from lagrax.core.errors import LagraxError

_WORDS = {"true": True, "false": False, "none": None}


def parse_value(text: str) -> bool | None | int | float | str:
    """``"2"`` -> 2, ``"0.5"`` -> 0.5, ``"true"`` -> True, ``"none"`` -> None, else the text."""
    text = text.strip()
    if text.lower() in _WORDS:
        return _WORDS[text.lower()]
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_params(items: list[str] | None, option: str = "--param") -> dict:
    """``["realistic=true", "damping=0.1,0.2", "path=arm.urdf"]`` -> ``{"realistic": True,
    "damping": (0.1, 0.2), "path": "arm.urdf"}``.

    ``option`` (``--param``, ``--option``) names the command-line option in the errors: an
    item without ``=`` or without a name, a name given twice, an empty entry in a list.
    """
    out: dict = {}
    for item in items or []:
        key, _, value = item.partition("=")
        key = key.strip()
        if not key or "=" not in item:
            raise LagraxError(f"{option} expects NAME=VALUE, got {item!r}")
        if key in out:
            raise LagraxError(f"{option} {key} is given twice")
        if "," in value:
            parts = value.split(",")
            if any(not x.strip() for x in parts):
                raise LagraxError(f"{option} {key}: empty entry in the list {value!r}")
            out[key] = tuple(parse_value(x) for x in parts)
        else:
            out[key] = parse_value(value)
    return out
