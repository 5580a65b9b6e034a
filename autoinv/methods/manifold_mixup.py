"""Manifold Mixup (Verma et al., 2019, https://arxiv.org/abs/1806.05236): Mixup of hidden states at a random layer.

For each batch a layer s is drawn uniformly from {0 (the input), 1, ..., ``mix_max_layer``}; the network runs
normally up to s, where the batch's hidden states are replaced by h' = λ h + (1 − λ) h[perm], and the labels are
mixed with the same λ and partners. Layer s ≥ 1 is the output of the network's s-th stage (the last module before
a change of feature-map shape), found once by a dry forward pass, and mixed through a forward hook, so any
registered model works without changes.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from autoinv import loop
from autoinv.config import BaseConfig, _check
from autoinv.methods.mixup import sample_pairing
from autoinv.models import create_model

__all__ = ["Config", "fit", "mixable_layers", "manifold_mixup_logits"]


@dataclasses.dataclass(frozen=True)
class Config(BaseConfig):
    """Manifold Mixup's knobs on top of the shared fields."""

    mix_alpha: float = 2.0
    """α of the Beta(α, α) distribution of λ (2.0 in the paper's CIFAR runs)."""
    mix_max_layer: int = 2
    """Deepest stage whose output may be mixed; 0 is Input Mixup (the paper uses {0, 1, 2} for ResNets)."""
    mix_prob: float = 1.0
    """Probability that a batch is mixed (otherwise it trains on the plain batch)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self, "mix_alpha", self.mix_alpha > 0, "must be > 0")
        _check(self, "mix_max_layer", self.mix_max_layer >= 0, "must be >= 0")
        _check(self, "mix_prob", 0.0 <= self.mix_prob <= 1.0, "must be in [0, 1]")


@torch.no_grad()
def mixable_layers(model: nn.Module, example: torch.Tensor) -> list[nn.Module]:
    """Stage outputs of ``model`` that Manifold Mixup may mix, in forward order.

    Candidates are the children of ``model.body`` when the model has one (the models in ``autoinv.models``), else
    the model's own children. A candidate ends a stage when the next candidate to run changes the spatial size of
    the hidden state (a downsampling; for flat states, any change of shape); the last candidate never counts, since
    mixing just before the head is close to mixing logits.

    Args:
        model: Classifier.
        example: One or two inputs (b, ...) for the dry forward pass.

    Returns:
        Modules whose outputs may be mixed (possibly empty: then only the input is mixed).
    """
    body = getattr(model, "body", None)
    candidates = list((body if isinstance(body, nn.Sequential) else model).children())
    calls: list[tuple[nn.Module, torch.Size]] = []
    handles = [m.register_forward_hook(lambda m, i, out: calls.append((m, _spatial(out)))) for m in candidates]
    was_training = model.training
    try:
        model.eval()  # a dry pass must not touch BatchNorm statistics
        model(example)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return [calls[i][0] for i in range(len(calls) - 1) if calls[i][1] != calls[i + 1][1]]


def _spatial(hidden: torch.Tensor) -> tuple[int, ...]:
    return tuple(hidden.shape[2:]) if hidden.dim() > 2 else tuple(hidden.shape[1:])


def manifold_mixup_logits(
    model: nn.Module, x: torch.Tensor, layer: nn.Module | None, lam: float, perm: torch.Tensor
) -> torch.Tensor:
    """Logits of ``model`` with the hidden state after ``layer`` (or the input, for ``None``) mixed with its partners.

    Args:
        model: Classifier.
        x: Network inputs (B, ...).
        layer: A module from :func:`mixable_layers`, or ``None`` for Input Mixup.
        lam: Weight of each sample's own state.
        perm: Partner index per sample (B,).

    Returns:
        Logits (B, K); pair them with labels λ y + (1 − λ) y[perm].
    """
    if layer is None:
        return model(lam * x + (1 - lam) * x[perm])
    handle = layer.register_forward_hook(lambda m, i, out: lam * out + (1 - lam) * out[perm])
    try:
        return model(x)
    finally:
        handle.remove()


def fit(cfg: Config, run: loop.Run) -> dict[str, float]:
    """Train the task network with Manifold Mixup; report ``val/acc`` per epoch."""
    device = loop.pick_device(cfg.device)
    data = loop.load_data(cfg, device)
    model = create_model(cfg.model, data.num_classes, data.shape).to(device)
    layers = [None, *mixable_layers(model, loop.prepare(data.x_train[:2]))][: cfg.mix_max_layer + 1]
    gen, rng = torch.Generator().manual_seed(cfg.seed + 2), np.random.default_rng(cfg.seed + 2)

    def loss_fn(model, x, y, generator):
        x = loop.prepare(x)
        if rng.random() >= cfg.mix_prob:
            return F.cross_entropy(model(x), y), {"mix/layer": 0.0}
        perm, lam = sample_pairing(len(x), cfg.mix_alpha, gen, rng, x.device)
        s = int(rng.integers(len(layers)))
        y_onehot = F.one_hot(y, data.num_classes).float()
        logits = manifold_mixup_logits(model, x, layers[s], lam, perm)
        return loop.soft_cross_entropy(logits, lam * y_onehot + (1 - lam) * y_onehot[perm]), {"mix/layer": float(s)}

    return loop.train_classifier(cfg, run, data, model, loss_fn)
