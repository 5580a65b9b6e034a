"""The method registry: one explicit dict from name to a module exposing ``Config`` and ``fit(cfg, run)``."""

from __future__ import annotations

from types import ModuleType

from autoinv.methods import cutmix, erm, flowinv, manifold_mixup, mixup, orbit, saliencymix, transformmix, transinv
from autoinv.methods.flowinv import augerino, instaaug
from autoinv.methods.orbit import attention, cka, hidden_match, kd, rdl, student_aug, student_ce
from autoinv.methods.transinv import ft

__all__ = ["METHODS", "get_method", "list_methods"]

METHODS: dict[str, ModuleType] = {
    "erm": erm,
    "mixup": mixup,
    "cutmix": cutmix,
    "manifold_mixup": manifold_mixup,
    "saliencymix": saliencymix,
    "transformmix": transformmix,
    "orbit": orbit,
    "student_ce": student_ce,
    "student_aug": student_aug,
    "kd": kd,
    "hidden_match": hidden_match,
    "rdl": rdl,
    "cka": cka,
    "attention": attention,
    "transinv": transinv,
    "ft": ft,
    "flowinv": flowinv,
    "augerino": augerino,
    "instaaug": instaaug,
}


def list_methods() -> list[str]:
    """Registered method names."""
    return sorted(METHODS)


def get_method(name: str) -> ModuleType:
    """The method module registered as ``name``; ``KeyError`` with the known names otherwise."""
    if name not in METHODS:
        raise KeyError(f"unknown method {name!r}; known: {', '.join(list_methods())}")
    return METHODS[name]
