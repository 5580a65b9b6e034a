"""Teachers and students of the Orbit-transfer experiments (Nix et al., 2022, supplement Tables 3-5).

Every network is an ordinary ``nn.Module`` whose layers to match are named submodules (``conv1``, ``fc2``,
``block3``...): transfer losses read their outputs through forward hooks (:mod:`autoinv.methods.orbit.hooks`), so
no network needs a special ``forward``. All take the prepared input batch and return logits ``(B, K)``.

1-D (MNIST-1D, signals ``(B, 1, L)``):
    - :class:`CircConvTeacher1d`: two circular convolutions (15 and 10 channels, kernel 5) and a global max over
      positions; exactly invariant to circular shifts of its input.
    - :class:`MLPMaxPool1d`: fully connected 600 → 400 whose output is viewed as ``(K, L)`` and max-pooled over
      positions, replicating the teacher's head.
    - :class:`MLPLinear1d`: the same two layers with a ReLU and a linear ``400 → K`` head.

2-D (images ``(B, C, H, W)``):
    - :class:`CNNTeacher2d`: three 3x3 convolutions (128, 64, 64), max-pooling after the last two, global average
      pooling and a linear head (Table 4).
    - :class:`MLPStudent2d`: fully connected 512 → 128 → 32 → K with dropout (Table 4).
    - :class:`P4CNN`: a p4 group-convolutional network (rotations by multiples of 90 degrees; Cohen and Welling,
      2016) with four group convolutions, max over rotations and global average pooling (Table 5).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "CircConvTeacher1d",
    "MLPMaxPool1d",
    "MLPLinear1d",
    "CNNTeacher2d",
    "MLPStudent2d",
    "P4CNN",
    "LiftingConvP4",
    "GroupConvP4",
    "NETS",
    "create_net",
]


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
            raise ValueError(f"kernel_size={kernel_size} must be odd so circular padding keeps positions aligned")
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


NETS = {
    "circconv1d_teacher": CircConvTeacher1d,
    "mlp_maxpool1d": MLPMaxPool1d,
    "mlp_linear1d": MLPLinear1d,
    "cnn2d_teacher": CNNTeacher2d,
    "mlp2d_student": MLPStudent2d,
    "p4cnn": P4CNN,
}
"""The Orbit experiments' architectures by name (the same names the lead may add to ``autoinv.models.MODELS``)."""


def create_net(name: str, num_classes: int, in_shape: tuple[int, ...]) -> nn.Module:
    """Build one of :data:`NETS` for inputs of per-sample shape ``in_shape`` (``(1, L)`` or ``(C, H, W)``).

    Raises:
        ValueError: unknown name, or a 1-D net asked for images (or the reverse).
    """
    if name not in NETS:
        raise ValueError(f"unknown orbit network {name!r}; known: {', '.join(NETS)}")
    one_d = name.endswith("1d") or name.startswith("circconv1d")
    if one_d != (len(in_shape) == 2):
        kind = "signals (C, L)" if one_d else "images (C, H, W)"
        raise ValueError(f"network {name!r} takes {kind}, but the data has per-sample shape {tuple(in_shape)}")
    if name == "circconv1d_teacher":
        return CircConvTeacher1d(num_classes, in_channels=in_shape[0])
    if name in ("mlp_maxpool1d", "mlp_linear1d"):
        if in_shape[0] != 1:
            raise ValueError(f"network {name!r} takes one-channel signals, got {in_shape[0]} channels")
        return NETS[name](num_classes, length=in_shape[1])
    if name == "mlp2d_student":
        return MLPStudent2d(num_classes, in_features=in_shape[0] * in_shape[1] * in_shape[2])
    return NETS[name](num_classes, in_channels=in_shape[0])
