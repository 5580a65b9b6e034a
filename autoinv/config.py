"""Flat, frozen method configs: the shared base, building from dicts, and parsing ``--set key=value``.

Every method declares one ``Config``: a frozen dataclass that extends :class:`BaseConfig` with prefixed fields
(``mix_lr``, ``teacher_arch``) instead of nested objects. A config is built from a plain dict with
:func:`build_config`, which rejects unknown keys and bad values with a one-line :class:`ConfigError`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

__all__ = ["BaseConfig", "ConfigError", "build_config", "config_fields", "parse_value", "parse_overrides", "to_dict"]

C = TypeVar("C", bound="BaseConfig")


class ConfigError(ValueError):
    """A user-facing config problem: unknown key, unparsable or out-of-range value."""


@dataclasses.dataclass(frozen=True)
class BaseConfig:
    """Fields every method shares. A method's ``Config`` subclasses this and adds its own prefixed fields."""

    dataset: str = "shapes"
    """Dataset name (``autoinv.data.list_datasets()``), or ``npz:PATH`` / ``folder:PATH``."""
    data_dir: str = ""
    """Root for datasets; empty means ``$AUTOINV_DATA`` or ``~/.cache/autoinv/data``."""
    val_fraction: float = 0.1
    """Fraction of the training set held out (with a fixed seed) for validation; the search metric uses it."""
    train_subset: int = 0
    """Use only the first N training samples (0 = all); for quick runs."""
    model: str = "small_cnn"
    """Task network (``autoinv.models.list_models()``)."""
    epochs: int = 10
    """Training epochs of the task network; one report per epoch, so ASHA's rungs count epochs."""
    steps_per_epoch: int = 0
    """Optimizer steps per epoch (0 = one pass over the training set); tests use 2."""
    batch_size: int = 128
    """Training batch size."""
    optimizer: str = "sgd"
    """``sgd`` (Nesterov momentum) or ``adam``."""
    lr: float = 0.05
    """Peak learning rate of the task network."""
    momentum: float = 0.9
    """SGD momentum."""
    weight_decay: float = 5e-4
    """L2 weight decay."""
    schedule: str = "cosine"
    """Learning-rate schedule over all epochs: ``cosine`` or ``constant``."""
    augment: str = "flip_crop"
    """Base augmentation of training images: none, flip_crop, randaugment, trivialaugment, autoaugment, augmix."""
    seed: int = 0
    """Random seed of the trial (data split stays fixed)."""
    device: str = "auto"
    """``auto`` (CUDA when visible), ``cpu`` or ``cuda``."""
    amp: bool = True
    """Mixed precision (bfloat16 autocast) on CUDA; ignored on CPU."""
    channels_last: bool = True
    """Channels-last memory format for image models on CUDA; ignored on CPU."""
    eval_batch_size: int = 1024
    """Batch size for evaluation."""
    eval_test: bool = False
    """Also evaluate the test split after the last epoch (final training sets it; searches never select on it)."""

    def __post_init__(self) -> None:
        _check(self, "val_fraction", 0.0 < self.val_fraction < 1.0, "must be in (0, 1)")
        _check(self, "epochs", self.epochs >= 1, "must be >= 1")
        _check(self, "batch_size", self.batch_size >= 1, "must be >= 1")
        _check(self, "steps_per_epoch", self.steps_per_epoch >= 0, "must be >= 0")
        _check(self, "train_subset", self.train_subset >= 0, "must be >= 0")
        _check(self, "lr", self.lr > 0, "must be > 0")
        _check(self, "weight_decay", self.weight_decay >= 0, "must be >= 0")
        _check(self, "optimizer", self.optimizer in ("sgd", "adam"), "must be sgd or adam")
        _check(self, "schedule", self.schedule in ("cosine", "constant"), "must be cosine or constant")
        _check(self, "device", self.device in ("auto", "cpu", "cuda"), "must be auto, cpu or cuda")
        augments = ("none", "flip_crop", "randaugment", "trivialaugment", "autoaugment", "augmix")
        _check(self, "augment", self.augment in augments, f"must be one of {', '.join(augments)}")


def _check(cfg: Any, field: str, ok: bool, why: str) -> None:
    if not ok:
        raise ConfigError(f"{field}={getattr(cfg, field)!r} {why}")


def config_fields(cls: type) -> dict[str, dataclasses.Field]:
    """Field name → dataclass field of a config class, in declaration order."""
    return {f.name: f for f in dataclasses.fields(cls)}


def build_config(cls: type[C], values: dict[str, Any], method: str = "") -> C:
    """Build ``cls(**values)``, turning unknown keys and bad values into one-line :class:`ConfigError` s.

    Args:
        cls: A method's ``Config`` class.
        values: Field values; strings are parsed into the field's type (so ``--set`` values work).
        method: The method's name, for the error message.
    """
    fields = config_fields(cls)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        where = f" of method '{method}'" if method else ""
        raise ConfigError(
            f"unknown config key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}{where}; "
            f"known keys: {', '.join(fields)}"
        )
    hints = typing.get_type_hints(cls)
    parsed = {key: parse_value(key, value, hints[key]) for key, value in values.items()}
    try:
        return cls(**parsed)
    except ConfigError:
        raise
    except (TypeError, ValueError) as error:
        raise ConfigError(str(error).splitlines()[0]) from None


def parse_value(key: str, value: Any, annotation: Any) -> Any:
    """Coerce ``value`` (often a string from the command line or YAML) to the field's annotated type."""
    kinds = _kinds(annotation)
    if value is None and type(None) in kinds:
        return None
    for kind in kinds:
        if kind is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
                return value.lower() in ("true", "1", "yes")
        elif kind is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            if isinstance(value, float) and value.is_integer():
                return int(value)
            if isinstance(value, str):
                try:
                    return int(value)
                except ValueError:
                    pass
        elif kind is float:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
            if isinstance(value, str):
                try:
                    return float(value)
                except ValueError:
                    pass
        elif kind is str:
            if isinstance(value, str):
                return value
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return str(value)
        elif kind is tuple:
            if isinstance(value, (list, tuple)):
                return tuple(value)
            if isinstance(value, str):
                return tuple(part.strip() for part in value.split(",") if part.strip())
    names = "/".join(getattr(k, "__name__", str(k)) for k in kinds)
    raise ConfigError(f"{key}={value!r} is not a valid {names}")


def _kinds(annotation: Any) -> tuple[type, ...]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return tuple(k for arg in typing.get_args(annotation) for k in _kinds(arg))
    if origin is tuple or annotation is tuple:
        return (tuple,)
    return (annotation,)


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    """Turn ``["lr=0.1", "model=resnet18"]`` into a dict of raw strings (parsed later by :func:`build_config`)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {pair!r} is not key=value")
        out[key.strip()] = value.strip()
    return out


def to_dict(cfg: Any) -> dict[str, Any]:
    """A config as a plain dict (tuples become lists so it round-trips through YAML)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}
