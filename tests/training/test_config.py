"""TrainConfig (lagrax.training.config): a frozen record of typed settings, built on the
model specs' machinery, and the recipes that live with the models."""

from __future__ import annotations

import dataclasses

import pytest

from lagrax.core.errors import UnknownNameError
from lagrax.core.options import Precision, Schedule
from lagrax.models import MODELS, spec_class
from lagrax.models.spec import Recipe
from lagrax.training import ConfigError, TrainConfig, recipe


def test_a_config_is_frozen_and_changed_by_checked_copies():
    cfg = TrainConfig(epochs=5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.epochs = 6  # type: ignore[misc]
    assert cfg.replace(epochs=6).epochs == 6 and cfg.epochs == 5
    assert dataclasses.replace(cfg, schedule="constant").schedule is Schedule.CONSTANT
    with pytest.raises(ConfigError, match="epochs must be at least 1"):
        cfg.replace(epochs=0)
    assert hash(cfg) == hash(TrainConfig(epochs=5))


def test_types_come_from_the_annotations():
    cfg = TrainConfig(lr=1, clip_norm=None, patience=3)
    assert isinstance(cfg.lr, float) and cfg.clip_norm is None and cfg.patience == 3
    for bad, named in [
        (dict(patience=2.5), "TrainConfig.patience must be an integer or none, got 2.5"),
        (dict(clip_norm="1"), "TrainConfig.clip_norm must be a finite number or none"),
        (dict(steps_per_epoch=True), "steps_per_epoch"),
        (dict(inverse=float("nan")), "TrainConfig.inverse must be a finite number"),
    ]:
        with pytest.raises(ConfigError, match=named):
            TrainConfig(**bad)


def test_strings_from_the_command_line_are_parsed_by_field():
    overrides = TrainConfig.parse_overrides(["epochs=5", "lr=1e-3", "patience=none", "dtype=float64"])
    assert overrides == {"epochs": 5, "lr": 1e-3, "patience": None, "dtype": Precision.FLOAT64}
    cfg = TrainConfig.from_strings({"schedule": "constant", "forward": "0.5"}, base={"epochs": 3})
    assert (cfg.epochs, cfg.schedule, cfg.forward) == (3, Schedule.CONSTANT, 0.5)
    with pytest.raises(ConfigError, match="training option 'epochs' must be an integer, got 'many'"):
        TrainConfig.parse_overrides(["epochs=many"])
    with pytest.raises(UnknownNameError, match="unknown training option 'lrate'"):
        TrainConfig.parse_overrides(["lrate=1"])
    with pytest.raises(ConfigError, match="key=value"):
        TrainConfig.parse_overrides(["epochs"])


def test_each_models_recipe_lives_with_its_spec_and_makes_a_valid_config():
    for name in MODELS:
        tuned = spec_class(name).RECIPE
        assert isinstance(tuned, Recipe)
        settings, options = recipe(name, None)
        assert settings == dict(tuned.settings) and options == dict(tuned.options)
        TrainConfig.from_dict(settings)
        spec_class(name).from_options(**options)
        if tuned.arm is not None:
            TrainConfig.from_dict(dict(tuned.arm.settings))
            spec_class(name).from_options(**tuned.arm.options)
    assert recipe("delan", None)[0]["lbfgs_epochs"] == 100 and recipe("hnn", None) == ({}, {})
    with pytest.raises(UnknownNameError, match="Did you mean 'delan'"):
        recipe("delam", None)


def test_under_actuated_driven_data_get_the_forward_loss_and_no_inverse_loss_on_the_unactuated_joint():
    import dataclasses as dc

    import numpy as np

    import lagrax
    from lagrax.data.generators import generate
    from lagrax.data.dataset import unactuated_joints

    cart = generate(lagrax.system("cartpole"), kind="excitation", trajectories=2, duration=0.2, dt=0.01)
    assert unactuated_joints(cart) == (1,)
    settings, _ = recipe("delan", cart)
    assert settings["inverse"] == 1.0 and settings["forward"] > 0.0
    # ... and the inverse loss leaves out the pole, whose torque is zero in every sample
    from lagrax.training.losses import data_scales

    assert float(data_scales(cart).tau[1]) == 0.0 and float(data_scales(cart).tau[0]) > 0.0
    # an imported log with no system info: the joint whose torque is zero everywhere
    bare = dc.replace(cart, metadata={})
    assert unactuated_joints(bare) == (1,)
    arm = generate(lagrax.system("two_link_arm"), kind="excitation", trajectories=2, duration=0.2, dt=0.01)
    assert unactuated_joints(arm) == () and np.all(arm.tau != 0)
    settings, _ = recipe("delan", arm)
    assert settings.get("inverse", 1.0) > 0.0 and not settings.get("forward")
