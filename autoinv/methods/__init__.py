"""The method registry: one explicit dict from name to the module exposing ``Config`` and ``fit(cfg, run)``.

Modules are named, not imported, so the CLIs can parse and check their arguments without torch; ``get_method``
imports a method when it is needed.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["METHODS", "get_method", "list_methods"]

METHODS: dict[str, str] = {
    "erm": "autoinv.methods.erm",
    "mixup": "autoinv.methods.mixup",
    "cutmix": "autoinv.methods.cutmix",
    "manifold_mixup": "autoinv.methods.manifold_mixup",
    "saliencymix": "autoinv.methods.saliencymix",
    "transformmix": "autoinv.methods.transformmix",
    "orbit": "autoinv.methods.orbit",
    "student_ce": "autoinv.methods.orbit.student_ce",
    "student_aug": "autoinv.methods.orbit.student_aug",
    "kd": "autoinv.methods.orbit.kd",
    "hidden_match": "autoinv.methods.orbit.hidden_match",
    "rdl": "autoinv.methods.orbit.rdl",
    "cka": "autoinv.methods.orbit.cka",
    "attention": "autoinv.methods.orbit.attention",
    "transinv": "autoinv.methods.transinv",
    "ft": "autoinv.methods.transinv.ft",
    "flowinv": "autoinv.methods.flowinv",
    "augerino": "autoinv.methods.flowinv.augerino",
    "instaaug": "autoinv.methods.flowinv.instaaug",
}


def list_methods() -> list[str]:
    """Registered method names."""
    return sorted(METHODS)


def get_method(name: str) -> ModuleType:
    """The method module registered as ``name``, else the module at import path ``name`` (imported now).

    A user's own method is a module path (``mypkg.my_method``); a search brings it along (``autoinv.cluster``).
    ``KeyError`` with the known names when neither exists.
    """
    if name in METHODS:
        return importlib.import_module(METHODS[name])
    if isinstance(name, str) and name and all(part.isidentifier() for part in name.split(".")):
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as error:
            if not error.name or not (name == error.name or name.startswith(error.name + ".")):
                raise  # the module exists but one of its own imports is missing
    raise KeyError(f"unknown method {name!r}; known: {', '.join(list_methods())} (or an importable module path)")
