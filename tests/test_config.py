import dataclasses

import pytest

from autoinv.config import BaseConfig, ConfigError, build_config, parse_overrides, parse_value, to_dict


@dataclasses.dataclass(frozen=True)
class Demo(BaseConfig):
    mix_alpha: float = 1.0
    """α."""
    layers: tuple[int, ...] = (1, 2)
    """Layers."""
    name: str | None = None
    """Optional name."""


def test_strings_are_parsed_into_field_types():
    cfg = build_config(Demo, {"lr": "0.5", "epochs": "3", "amp": "false", "layers": "3,4", "mix_alpha": 2})
    assert cfg.lr == 0.5 and cfg.epochs == 3 and cfg.amp is False and cfg.layers == ("3", "4") and cfg.mix_alpha == 2.0


def test_unknown_and_bad_values_are_one_line_errors():
    with pytest.raises(ConfigError, match="unknown config key 'lrr'.*known keys: dataset"):
        build_config(Demo, {"lrr": 1})
    with pytest.raises(ConfigError, match="^epochs='x' is not a valid int$"):
        build_config(Demo, {"epochs": "x"})
    with pytest.raises(ConfigError, match="val_fraction=1.5 must be in"):
        build_config(Demo, {"val_fraction": 1.5})
    with pytest.raises(ConfigError, match="augment='nope'"):
        build_config(Demo, {"augment": "nope"})


def test_overrides_and_round_trip():
    assert parse_overrides(["lr=0.1", "model = resnet18"]) == {"lr": "0.1", "model": "resnet18"}
    with pytest.raises(ConfigError):
        parse_overrides(["lr"])
    cfg = Demo(layers=(5,))
    assert build_config(Demo, to_dict(cfg)) == cfg
    assert parse_value("name", None, str | None) is None
    assert parse_value("epochs", 3.0, int) == 3
