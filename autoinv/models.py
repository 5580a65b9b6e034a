"""Classifier and teacher registry: small nets, CIFAR ResNets and WideResNets, a small ViT, 1-D nets, torchvision.

Any torchvision classification model is available as ``tv:NAME``.

The Orbit-transfer experiments' networks (Nix et al., 2022, supplement Tables 3-5) are registered here too:

- 1-D (MNIST-1D, signals ``(B, 1, L)``): ``circconv1d_teacher`` (:class:`CircConvTeacher1d`, two circular
  convolutions and a global max over positions; exactly invariant to circular shifts), ``mlp_maxpool1d``
  (:class:`MLPMaxPool1d`, fully connected 600 → 400 viewed as ``(K, L)`` and max-pooled over positions) and
  ``mlp_linear1d`` (:class:`MLPLinear1d`, the same two layers and a linear head);
- 2-D (images): ``cnn2d_teacher`` (:class:`CNNTeacher2d`, three 3x3 convolutions, Table 4), ``mlp2d_student``
  (:class:`MLPStudent2d`, 512 → 128 → 32 → K with dropout) and ``p4cnn`` (:class:`P4CNN`, a p4 group-convolutional
  network invariant to quarter turns; Cohen and Welling, 2016, Table 5).

Models take float inputs: images ``(B, C, H, W)`` from ``data.to_float`` (optionally ``data.normalize``d) or signals
``(B, C, L)``, and return logits ``(B, num_classes)``. Every CNN here is a ``PooledNet``: ``forward(x)`` is
``head(features(x).mean(spatial))``, so ``cam_parts`` can give class activation maps.

Example:
    >>> model = create_model("resnet18", num_classes=10, in_shape=(3, 32, 32))
    >>> model(torch.rand(8, 3, 32, 32)).shape
    torch.Size([8, 10])
    >>> features, head = cam_parts(model)  # features(x): (8, 512, 4, 4); head: Linear(512, 10)
"""

import math
import urllib.error
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "MODELS",
    "CNNTeacher2d",
    "CircConvTeacher1d",
    "GroupConvP4",
    "LiftingConvP4",
    "MLPLinear1d",
    "MLPMaxPool1d",
    "MLPStudent2d",
    "ModelError",
    "P4CNN",
    "PooledNet",
    "cam_parts",
    "create_model",
    "list_models",
]


class ModelError(ValueError):
    """A user-facing model problem; the message is one line that says what to do."""


class PooledNet(nn.Module):
    """A ``body`` of feature maps, global average pooling, and a linear ``head``.

    Args:
        body: maps ``(B, C, H, W)`` to ``(B, D, h, w)`` (or ``(B, C, L)`` to ``(B, D, l)``).
        head: ``nn.Linear(D, num_classes)``.
    """

    def __init__(self, body: nn.Module, head: nn.Linear):
        super().__init__()
        self.body = body
        self.head = head

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Feature maps before global pooling: ``(B, D, h, w)`` for images, ``(B, D, l)`` for signals."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)`` for inputs ``(B, C, H, W)`` or ``(B, C, L)``."""
        return self.head(self.features(x).flatten(2).mean(2))


def _init_weights(module: nn.Module) -> None:
    """He init for convolutions (ReLU nets), unit BatchNorm, PyTorch's default for linear layers."""
    if isinstance(module, nn.Conv1d | nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def _conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    """3x3 convolution, BatchNorm, ReLU (spatial size kept)."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


def _small_cnn(num_classes: int, in_channels: int, width: int = 32) -> PooledNet:
    """Four conv blocks (32, 64, 128, 128 channels) with 2x max-pools between them: fast on CPU at 32x32 and 8x8.

    Feature maps: ``(B, C, H, W)`` → ``(B, 128, ceil(H / 8), ceil(W / 8))``.
    """
    # The fourth block widens the receptive field to most of a 32x32 image at little cost (it runs at 4x4);
    # ceil_mode keeps a 1-pixel map at 1 pixel, so tiny inputs (digits 8x8 -> 4 -> 2 -> 1) work.
    body = nn.Sequential(
        _conv_bn_relu(in_channels, width),
        nn.MaxPool2d(2, ceil_mode=True),
        _conv_bn_relu(width, 2 * width),
        nn.MaxPool2d(2, ceil_mode=True),
        _conv_bn_relu(2 * width, 4 * width),
        nn.MaxPool2d(2, ceil_mode=True),
        _conv_bn_relu(4 * width, 4 * width),
    )
    return PooledNet(body, nn.Linear(4 * width, num_classes)).apply(_init_weights)


class MLP(nn.Module):
    """Flatten, then ReLU hidden layers, then a linear head; for images and signals alike."""

    def __init__(self, num_classes: int, in_features: int, hidden: tuple[int, ...] = (512, 512)):
        super().__init__()
        sizes = (in_features, *hidden)
        layers = [nn.Flatten()]
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(sizes[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, *in_shape)`` → logits ``(B, num_classes)``."""
        return self.head(self.body(x))


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs with BatchNorm, identity or 1x1-projection shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, c_in, H, W)`` → ``(B, c_out, H / stride, W / stride)``."""
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class PreActBlock(nn.Module):
    """Pre-activation block (BN-ReLU before each conv), used by PreAct-ResNet and WideResNet."""

    def __init__(self, c_in: int, c_out: int, stride: int, dropout: float = 0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Conv2d(c_in, c_out, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, c_in, H, W)`` → ``(B, c_out, H / stride, W / stride)``."""
        out = torch.relu(self.bn1(x))
        # The projection shortcut reads the pre-activated input, as in He et al. (2016), "Identity mappings".
        shortcut = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(self.dropout(torch.relu(self.bn2(out))))
        return out + shortcut


def _resnet18(num_classes: int, in_channels: int, preact: bool = False) -> PooledNet:
    """CIFAR-style ResNet-18 (3x3 stem, no max-pool; He et al., 2016), or PreAct-ResNet-18 with ``preact``.

    PreAct follows He et al. (2016), "Identity mappings in deep residual networks".

    Feature maps: ``(B, C, H, W)`` → ``(B, 512, H / 8, W / 8)``.
    """
    block = PreActBlock if preact else BasicBlock
    layers = [nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)]
    if not preact:  # pre-activation blocks normalise their own input
        layers += [nn.BatchNorm2d(64), nn.ReLU(inplace=True)]
    c_in = 64
    for stage in range(4):
        c_out = 64 * 2**stage
        layers += [block(c_in, c_out, 2 if stage > 0 else 1), block(c_out, c_out, 1)]
        c_in = c_out
    if preact:  # the last pre-act block ends in a sum; normalise and rectify before pooling
        layers += [nn.BatchNorm2d(c_in), nn.ReLU(inplace=True)]
    return PooledNet(nn.Sequential(*layers), nn.Linear(c_in, num_classes)).apply(_init_weights)


def _wide_resnet(num_classes: int, in_channels: int, depth: int, widen: int, dropout: float = 0.0) -> PooledNet:
    """WideResNet-``depth``-``widen`` for CIFAR (Zagoruyko & Komodakis, 2016): three stages of pre-act blocks.

    Feature maps: ``(B, C, H, W)`` → ``(B, 64 * widen, H / 4, W / 4)``.
    """
    if (depth - 4) % 6:
        raise ModelError(f"WideResNet depth must be 6n + 4 (e.g. 28, 40); got {depth}")
    widths = [16, 16 * widen, 32 * widen, 64 * widen]
    layers = [nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)]
    for stage in range(3):
        for j in range((depth - 4) // 6):
            c_in = widths[stage] if j == 0 else widths[stage + 1]
            layers.append(PreActBlock(c_in, widths[stage + 1], 2 if stage > 0 and j == 0 else 1, dropout))
    layers += [nn.BatchNorm2d(widths[3]), nn.ReLU(inplace=True)]
    return PooledNet(nn.Sequential(*layers), nn.Linear(widths[3], num_classes)).apply(_init_weights)


class ViT(nn.Module):
    """Small Vision Transformer for small images (Dosovitskiy et al., 2021).

    Patch embedding, class token, pre-norm encoder, linear head on the class token. It has no spatial feature maps,
    hence no ``cam_parts``.
    """

    def __init__(
        self,
        num_classes: int,
        in_shape: tuple[int, ...],
        patch: int = 4,
        dim: int = 192,
        depth: int = 6,
        heads: int = 3,
        mlp_ratio: int = 4,
    ):
        super().__init__()
        c, h, w = in_shape
        if h % patch or w % patch:
            raise ModelError(f"vit_small needs image sides divisible by its patch size {patch}; got {h}x{w}")
        self.patch_embed = nn.Conv2d(c, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + (h // patch) * (w // patch), dim))
        layer = nn.TransformerEncoderLayer(
            dim, heads, mlp_ratio * dim, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        for p in (self.pos_embed, self.cls_token):
            nn.init.trunc_normal_(p, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` → logits ``(B, num_classes)``."""
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)  # (B, N, dim)
        tokens = torch.cat([self.cls_token.expand(len(x), -1, -1), tokens], 1) + self.pos_embed
        return self.head(self.norm(self.encoder(tokens))[:, 0])


def _conv1d(num_classes: int, in_channels: int, width: int = 32) -> PooledNet:
    """1-D CNN for signals such as MNIST-1D: three conv-BN-ReLU layers (kernel 5) and one 2x max-pool.

    Feature maps: ``(B, C, L)`` → ``(B, 64, ceil(L / 2))``.
    """

    def block(c_in: int, c_out: int) -> list[nn.Module]:
        return [nn.Conv1d(c_in, c_out, 5, padding=2, bias=False), nn.BatchNorm1d(c_out), nn.ReLU(inplace=True)]

    body = nn.Sequential(
        *block(in_channels, width),
        *block(width, 2 * width),
        nn.MaxPool1d(2, ceil_mode=True),
        *block(2 * width, 2 * width),
    )
    return PooledNet(body, nn.Linear(2 * width, num_classes)).apply(_init_weights)


# ---------------------------------------------------------------------------------------------------------------------
# The Orbit-transfer experiments' networks (Nix et al., 2022, supplement Tables 3-5)
#
# Their layers to match are named submodules (conv1, fc2, block3...): transfer losses read them through forward hooks
# (autoinv.methods.orbit.hooks), so no network needs a special forward.


class CircConvTeacher1d(nn.Module):
    """Two circular 1-D convolutions and a global max: exactly invariant to circular shifts.

    The hooked layers ``conv1`` ``(B, 15, L)`` and ``conv2`` ``(B, K, L)`` are pre-activation outputs, so each is
    equivariant to the same circular shift as the input.

    Args:
        num_classes: Output size K; the second convolution has K channels.
        in_channels: Input channels (1 for MNIST-1D).
        channels: Channels of the first convolution.
        kernel_size: Odd kernel size of both convolutions.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, channels: int = 15, kernel_size: int = 5) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ModelError(f"kernel_size={kernel_size} must be odd so circular padding keeps positions aligned")
        pad = kernel_size // 2
        # No bias: a per-position constant would not matter for invariance, but the paper's student has none either.
        self.conv1 = nn.Conv1d(in_channels, channels, kernel_size, padding=pad, padding_mode="circular", bias=False)
        self.conv2 = nn.Conv1d(channels, num_classes, kernel_size, padding=pad, padding_mode="circular", bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Signals ``(B, C, L)`` → logits ``(B, K)``."""
        return self.conv2(self.conv1(x).relu()).amax(dim=2)


class MLPMaxPool1d(nn.Module):
    """Fully connected 600 → 400, viewed as ``(K, L)`` and max-pooled over positions (the max-pool student).

    Args:
        num_classes: K; the second layer has ``K * length`` units.
        length: Signal length L (40 for MNIST-1D).
        hidden: Units of the first layer (600 = 15 channels x 40 positions, the teacher's first layer size).
    """

    def __init__(self, num_classes: int = 10, length: int = 40, hidden: int = 600) -> None:
        super().__init__()
        self.num_classes, self.length = num_classes, length
        self.fc1 = nn.Linear(length, hidden, bias=False)
        self.fc2 = nn.Linear(hidden, num_classes * length, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Signals ``(B, 1, L)`` → logits ``(B, K)``."""
        h = self.fc2(self.fc1(x.flatten(1)).relu())  # (B, K * L), channel-major like the teacher's (K, L) map
        return h.view(len(h), self.num_classes, self.length).amax(dim=2)


class MLPLinear1d(nn.Module):
    """Fully connected 600 → 400, ReLU, and a linear head 400 → K (the linear-head student).

    Args:
        num_classes: K.
        length: Signal length L.
        hidden: Units of the first layer.
        hidden2: Units of the second layer (400 = 10 x 40, the teacher's second layer size).
    """

    def __init__(self, num_classes: int = 10, length: int = 40, hidden: int = 600, hidden2: int = 400) -> None:
        super().__init__()
        self.fc1 = nn.Linear(length, hidden, bias=False)
        self.fc2 = nn.Linear(hidden, hidden2, bias=False)
        self.head = nn.Linear(hidden2, num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Signals ``(B, 1, L)`` → logits ``(B, K)``."""
        return self.head(self.fc2(self.fc1(x.flatten(1)).relu()).relu())


class CNNTeacher2d(nn.Module):
    """Three 3x3 convolutions (128, 64, 64) with ReLU and dropout, max-pool 2 and 3, global average, linear head.

    Hook names: ``block1`` ``(B, 128, H-2, W-2)``, ``block2`` and ``block3`` (after their pooling).

    Args:
        num_classes: K.
        in_channels: Image channels.
        channels: Channels of the three convolutions.
        dropout: Dropout after each block.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        channels: tuple[int, int, int] = (128, 64, 64),
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        c1, c2, c3 = channels
        self.block1 = nn.Sequential(nn.Conv2d(in_channels, c1, 3), nn.ReLU(), nn.Dropout(dropout))
        # ceil_mode keeps small inputs (8x8 digits) from pooling down to nothing.
        self.block2 = nn.Sequential(
            nn.Conv2d(c1, c2, 3), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True), nn.Dropout(dropout)
        )
        self.block3 = nn.Sequential(
            nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, ceil_mode=True), nn.Dropout(dropout)
        )
        self.head = nn.Linear(c3, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(B, C, H, W)`` with H, W ≥ 6 → logits ``(B, K)``."""
        return self.head(self.block3(self.block2(self.block1(x))).mean(dim=(2, 3)))


class MLPStudent2d(nn.Module):
    """Fully connected 512 → 128 → 32 → K with ReLU and dropout (the 2-D student of Tables 4 and 5).

    Hook names ``block1`` ``(B, 512)``, ``block2`` ``(B, 128)``, ``block3`` ``(B, 32)``.

    Args:
        num_classes: K.
        in_features: Flattened image size C*H*W.
        hidden: Units of the three hidden layers.
        dropout: Dropout after each hidden layer.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_features: int = 784,
        hidden: tuple[int, int, int] = (512, 128, 32),
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        h1, h2, h3 = hidden
        self.block1 = nn.Sequential(nn.Linear(in_features, h1), nn.ReLU(), nn.Dropout(dropout))
        self.block2 = nn.Sequential(nn.Linear(h1, h2), nn.ReLU(), nn.Dropout(dropout))
        self.block3 = nn.Sequential(nn.Linear(h2, h3), nn.ReLU(), nn.Dropout(dropout))
        self.head = nn.Linear(h3, num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(B, C, H, W)`` → logits ``(B, K)``."""
        return self.head(self.block3(self.block2(self.block1(x.flatten(1)))))


def _rotate(w: torch.Tensor, r: int) -> torch.Tensor:
    # Rotating the last two (spatial) axes by r quarter turns, counter-clockwise like torch.rot90.
    return torch.rot90(w, r, dims=(-2, -1))


class LiftingConvP4(nn.Module):
    """Z2 → p4 convolution: one filter bank correlated at the 4 rotations; output ``(B, C_out, 4, H', W')``.

    Args:
        in_channels: Image channels.
        out_channels: Output channels per rotation.
        kernel_size: Odd spatial kernel size; "same" zero padding keeps rotation equivariance exact.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(
            torch.randn(out_channels, in_channels, kernel_size, kernel_size) / (in_channels * kernel_size**2) ** 0.5
        )
        self.padding = kernel_size // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, H, W)`` → ``(B, C_out, 4, H, W)``."""
        w = torch.stack([_rotate(self.weight, r) for r in range(4)], dim=1)  # (C_out, 4, C_in, k, k)
        out = F.conv2d(x, w.flatten(0, 1), padding=self.padding)
        return out.view(len(x), -1, 4, *out.shape[-2:])


class GroupConvP4(nn.Module):
    """p4 → p4 convolution: the filter for output rotation r is rotated by r and cycled by r along input rotations.

    Args:
        in_channels: Input channels per rotation.
        out_channels: Output channels per rotation.
        kernel_size: Odd spatial kernel size ("same" zero padding).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        fan_in = in_channels * 4 * kernel_size**2
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 4, kernel_size, kernel_size) / fan_in**0.5)
        self.padding = kernel_size // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, 4, H, W)`` → ``(B, C_out, 4, H, W)``."""
        # Rotating a p4 feature map by r rotates space and shifts the rotation axis by r; the filters do the same.
        w = torch.stack([_rotate(torch.roll(self.weight, r, dims=2), r) for r in range(4)], dim=1)  # (O, 4, I, 4, k, k)
        out = F.conv2d(x.flatten(1, 2), w.flatten(0, 1).flatten(1, 2), padding=self.padding)
        return out.view(len(x), -1, 4, *out.shape[-2:])


class _P4Block(nn.Module):
    """p4 convolution → spatial max-pool 2x2 → ReLU, on ``(B, C, 4, H, W)``."""

    def __init__(self, conv: nn.Module, pool: bool) -> None:
        super().__init__()
        self.conv, self.pool = conv, pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if self.pool:
            b, c, r, h, w = y.shape
            y = F.max_pool2d(y.view(b, c * r, h, w), 2).view(b, c, r, h // 2, w // 2)
        return y.relu()


class P4CNN(nn.Module):
    """p4 G-CNN (supplement Table 5): lifting conv (k5), three group convs (k3), max over rotations, global average.

    Max-pooling 2x2 follows the first three blocks. Invariant to 90-degree rotations of inputs whose side is
    divisible by 8.

    Hook names ``block1``..``block3`` ``(B, C, 4, H', W')`` and ``block4`` ``(B, K, 4, H', W')``.

    Args:
        num_classes: K (the last group conv has K channels).
        in_channels: Image channels.
        channels: Channels of the first three blocks.
    """

    def __init__(
        self, num_classes: int = 10, in_channels: int = 1, channels: tuple[int, int, int] = (8, 32, 64)
    ) -> None:
        super().__init__()
        c1, c2, c3 = channels
        self.block1 = _P4Block(LiftingConvP4(in_channels, c1, 5), pool=True)
        self.block2 = _P4Block(GroupConvP4(c1, c2, 3), pool=True)
        self.block3 = _P4Block(GroupConvP4(c2, c3, 3), pool=True)
        self.block4 = GroupConvP4(c3, num_classes, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(B, C, H, W)`` → logits ``(B, K)``."""
        y = self.block4(self.block3(self.block2(self.block1(x))))  # (B, K, 4, H', W')
        return y.amax(dim=2).mean(dim=(2, 3))


# ---------------------------------------------------------------------------------------------------------------------
# Registry


def _image_shape(name: str, in_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """Check that ``in_shape`` is ``(C, H, W)``."""
    if len(in_shape) != 3:
        raise ModelError(f"model '{name}' takes images (C, H, W); got in_shape {in_shape}; for signals use conv1d")
    return in_shape


def _signal_shape(name: str, in_shape: tuple[int, ...]) -> tuple[int, int]:
    """Check that ``in_shape`` is ``(C, L)``."""
    if len(in_shape) != 2:
        raise ModelError(f"model '{name}' takes signals (C, L); got in_shape {in_shape}; for images use small_cnn")
    return in_shape


def _signal_length(name: str, in_shape: tuple[int, ...]) -> int:
    """Check that ``in_shape`` is one-channel ``(1, L)`` and return L."""
    channels, length = _signal_shape(name, in_shape)
    if channels != 1:
        raise ModelError(f"model '{name}' takes one-channel signals (1, L); got in_shape {in_shape}")
    return length


MODELS: dict[str, Callable[[int, tuple[int, ...]], nn.Module]] = {
    "small_cnn": lambda k, s: _small_cnn(k, _image_shape("small_cnn", s)[0]),
    "mlp": lambda k, s: MLP(k, math.prod(s), hidden=(512, 512)),
    "resnet18": lambda k, s: _resnet18(k, _image_shape("resnet18", s)[0]),
    "preactresnet18": lambda k, s: _resnet18(k, _image_shape("preactresnet18", s)[0], preact=True),
    "wrn_28_10": lambda k, s: _wide_resnet(k, _image_shape("wrn_28_10", s)[0], depth=28, widen=10),
    "wrn_40_2": lambda k, s: _wide_resnet(k, _image_shape("wrn_40_2", s)[0], depth=40, widen=2),
    "vit_small": lambda k, s: ViT(k, _image_shape("vit_small", s)),
    "conv1d": lambda k, s: _conv1d(k, _signal_shape("conv1d", s)[0]),
    "mlp1d": lambda k, s: MLP(k, math.prod(_signal_shape("mlp1d", s)), hidden=(256, 256)),
    # The Orbit experiments' teachers and students.
    "circconv1d_teacher": lambda k, s: CircConvTeacher1d(k, in_channels=_signal_shape("circconv1d_teacher", s)[0]),
    "mlp_maxpool1d": lambda k, s: MLPMaxPool1d(k, length=_signal_length("mlp_maxpool1d", s)),
    "mlp_linear1d": lambda k, s: MLPLinear1d(k, length=_signal_length("mlp_linear1d", s)),
    "cnn2d_teacher": lambda k, s: CNNTeacher2d(k, in_channels=_image_shape("cnn2d_teacher", s)[0]),
    "mlp2d_student": lambda k, s: MLPStudent2d(k, in_features=math.prod(_image_shape("mlp2d_student", s))),
    "p4cnn": lambda k, s: P4CNN(k, in_channels=_image_shape("p4cnn", s)[0]),
}
"""Name → constructor ``(num_classes, in_shape) -> nn.Module``; ``tv:NAME`` models are built by ``create_model``."""


def list_models() -> list[str]:
    """Registered model names; any torchvision classifier is also available as ``tv:NAME``."""
    return list(MODELS)


def create_model(name: str, num_classes: int, in_shape: tuple[int, ...], pretrained: bool = False) -> nn.Module:
    """Build a classifier by name.

    Args:
        name: a key of ``MODELS`` or ``"tv:NAME"`` for ``torchvision.models.get_model(NAME)``.
        num_classes: number of output logits.
        in_shape: per-sample input shape, ``(C, H, W)`` for images or ``(C, L)`` for signals.
        pretrained: load torchvision's default weights (``tv:`` models only); the classifier is replaced and a first
            convolution for other than 3 channels is re-made from the mean of its RGB filters.

    Returns:
        A model mapping float ``(B, *in_shape)`` to logits ``(B, num_classes)``, on CPU, in train mode.

    Raises:
        ModelError: unknown name, unsuitable ``in_shape``, or weights that cannot be downloaded.
    """
    in_shape = tuple(in_shape)
    if name.startswith("tv:"):
        return _torchvision_model(name[3:], num_classes, in_shape, pretrained)
    if name not in MODELS:
        raise ModelError(f"unknown model '{name}'; known: {', '.join(MODELS)}, or tv:NAME for a torchvision model")
    if pretrained:
        raise ModelError(f"model '{name}' has no pretrained weights; pass pretrained=False or use a tv: model")
    return MODELS[name](num_classes, in_shape)


def _torchvision_model(name: str, num_classes: int, in_shape: tuple[int, ...], pretrained: bool) -> nn.Module:
    """A torchvision classifier with ``num_classes`` outputs and a first convolution for ``in_shape[0]`` channels."""
    import torchvision  # here, not at the top: it takes a second to import and few runs need it

    if name not in torchvision.models.list_models(module=torchvision.models):
        raise ModelError(
            f"unknown torchvision model '{name}'; see torchvision.models.list_models(torchvision.models) for names"
        )
    _image_shape(f"tv:{name}", in_shape)
    # Inception-style models add auxiliary logits in train mode; a plain logits tensor keeps every loop simple.
    extra = {"aux_logits": False} if name in ("googlenet", "inception_v3") else {}
    if not pretrained:
        model = torchvision.models.get_model(name, weights=None, num_classes=num_classes, **extra)
    else:
        try:
            model = torchvision.models.get_model(name, weights="DEFAULT", **extra)
        except (OSError, RuntimeError, urllib.error.URLError) as e:
            raise ModelError(
                f"could not download pretrained weights for tv:{name} ({type(e).__name__}); "
                "put them in the torch hub cache or pass pretrained=False"
            ) from e
        _replace_last(model, lambda m: isinstance(m, nn.Linear | nn.Conv2d), lambda m: _resized(m, num_classes, None))
    if in_shape[0] != 3:
        _replace_first(model, lambda m: isinstance(m, nn.Conv2d) and m.in_channels == 3, in_shape[0], pretrained)
    return model


def _resized(layer: nn.Linear | nn.Conv2d, out: int | None, into: int | None) -> nn.Linear | nn.Conv2d:
    """A fresh copy of ``layer`` with ``out`` outputs or ``into`` inputs (``None`` keeps that side)."""
    if isinstance(layer, nn.Linear):
        return nn.Linear(into or layer.in_features, out or layer.out_features, bias=layer.bias is not None)
    return nn.Conv2d(
        into or layer.in_channels,
        out or layer.out_channels,
        layer.kernel_size,
        layer.stride,
        layer.padding,
        layer.dilation,
        layer.groups,
        layer.bias is not None,
    )


def _replace_last(model: nn.Module, match: Callable[[nn.Module], bool], make: Callable[[nn.Module], nn.Module]) -> None:
    """Swap the last submodule (in registration order) that ``match``es for ``make(old)``; that is the classifier."""
    name = [n for n, m in model.named_modules() if match(m)][-1]
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent), child, make(model.get_submodule(name)))


def _replace_first(model: nn.Module, match: Callable[[nn.Module], bool], channels: int, pretrained: bool) -> None:
    """Re-make the first matching convolution for ``channels`` inputs, from its RGB filters' mean when pretrained."""
    name = next(n for n, m in model.named_modules() if match(m))
    old = model.get_submodule(name)
    new = _resized(old, None, channels)
    if pretrained:
        with torch.no_grad():
            # Mean over RGB, rescaled so a grey image repeated on every channel gives the same activations.
            new.weight.copy_(old.weight.mean(1, keepdim=True).expand_as(new.weight) * (3 / channels))
            if old.bias is not None:
                new.bias.copy_(old.bias)
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent), child, new)


def cam_parts(model: nn.Module) -> tuple[Callable[[torch.Tensor], torch.Tensor], nn.Linear]:
    """Split a global-pool + linear classifier into feature maps and head, for class activation maps (CAMs).

    ``head(features(x).mean((2, 3)))`` equals ``model(x)``; the CAM of class ``k`` is
    ``einsum("bdhw,d->bhw", features(x), head.weight[k])``.

    Args:
        model: a ``PooledNet`` from this module, or a torchvision model with ``avgpool`` + ``fc`` (ResNet family,
            RegNet).

    Returns:
        ``(features, head)``: ``features(x)`` maps ``(B, C, H, W)`` to ``(B, D, h, w)`` (``(B, C, L)`` to
        ``(B, D, l)`` for 1-D nets) and ``head`` is the ``nn.Linear`` with ``in_features == D``.

    Raises:
        ModelError: the model's head is not global-average-pool + one linear layer.
    """
    if isinstance(model, PooledNet):
        return model.features, model.head
    if isinstance(getattr(model, "fc", None), nn.Linear) and isinstance(
        getattr(model, "avgpool", None), nn.AdaptiveAvgPool2d
    ):
        children = list(model.named_children())
        end = [n for n, _ in children].index("avgpool")
        return nn.Sequential(*(m for _, m in children[:end])), model.fc
    raise ModelError(
        f"model '{type(model).__name__.lower()}' has no global-pool + linear head, so it cannot give class activation "
        "maps; use e.g. small_cnn, resnet18, preactresnet18, wrn_28_10, tv:resnet50"
    )
