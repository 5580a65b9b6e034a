"""The method registry: one explicit dict from name to a module exposing ``Config`` and ``fit(cfg, run)``."""

from __future__ import annotations

from types import ModuleType

from autoinv.methods import cutmix, erm, manifold_mixup, mixup, saliencymix, transformmix

__all__ = ["METHODS", "get_method", "list_methods"]

METHODS: dict[str, ModuleType] = {
    "erm": erm,
    "mixup": mixup,
    "cutmix": cutmix,
    "manifold_mixup": manifold_mixup,
    "saliencymix": saliencymix,
    "transformmix": transformmix,
}


def list_methods() -> list[str]:
    """Registered method names."""
    return sorted(METHODS)


def get_method(name: str) -> ModuleType:
    """The method module registered as ``name``; ``KeyError`` with the known names otherwise."""
    if name not in METHODS:
        raise KeyError(f"unknown method {name!r}; known: {', '.join(list_methods())}")
    return METHODS[name]
