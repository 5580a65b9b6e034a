"""Read named layers' outputs through forward hooks, so teachers and students stay ordinary models."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["LayerError", "layer_names", "check_layers", "forward_with_layers"]


class LayerError(ValueError):
    """A layer name to match does not exist in the model; the message lists the available names."""


def layer_names(model: nn.Module) -> list[str]:
    """Names of all submodules of ``model`` (what ``model.named_modules()`` yields, without the root)."""
    return [name for name, _ in model.named_modules() if name]


def check_layers(model: nn.Module, names: tuple[str, ...], role: str) -> None:
    """Raise :class:`LayerError` in one line if any of ``names`` is not a submodule of ``model``.

    Args:
        model: The network.
        names: Layer names to match.
        role: ``"teacher"`` or ``"student"``, for the message.
    """
    available = layer_names(model)
    unknown = [n for n in names if n not in available]
    if unknown:
        raise LayerError(
            f"unknown {role} layer{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
            f"in {type(model).__name__}; available: {', '.join(available)}"
        )


def forward_with_layers(
    model: nn.Module, x: torch.Tensor, names: tuple[str, ...]
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Run ``model(x)`` and return its output with the outputs of the named submodules, in ``names`` order.

    Hooks live only for this call, so evaluation elsewhere pays nothing and holds no activations.

    Args:
        model: The network.
        x: Its input batch.
        names: Submodule names (checked with :func:`check_layers` beforehand).

    Returns:
        The model's output (logits ``(B, K)``) and one activation tensor per name.
    """
    modules = dict(model.named_modules())
    outputs: dict[str, torch.Tensor] = {}
    handles = [
        modules[name].register_forward_hook(lambda _m, _i, out, name=name: outputs.__setitem__(name, out))
        for name in names
    ]
    try:
        logits = model(x)
    finally:
        for handle in handles:
            handle.remove()
    return logits, [outputs[name] for name in names]
