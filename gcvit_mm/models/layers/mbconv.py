"""Fused-MBConv with squeeze-excitation: the conv unit GC ViT uses in its stem,
its down-samplers and its global token generators."""
import torch
import torch.nn as nn


class SqueezeExcitation(nn.Module):
    """Channel gating: global average pool -> Linear(C, C/4) -> GELU ->
    Linear(C/4, C) -> sigmoid -> scale.

    The two projections are ``nn.Linear`` without bias (the paper's layout);
    timm stores them as 1x1 convs, which the checkpoint converter squeezes.

    Args:
        channels (int): Number of input and output channels C.
        reduction_ratio (float): Hidden width as a fraction of C.
    """

    def __init__(self, channels: int, reduction_ratio: float = 0.25) -> None:
        super().__init__()
        hidden = int(channels * reduction_ratio)
        self.fc1 = nn.Linear(channels, hidden, bias=False)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        scale = x.mean(dim=(2, 3))
        scale = self.fc2(self.act(self.fc1(scale))).sigmoid()
        return x * scale[:, :, None, None]


class FusedMBConv(nn.Module):
    """Residual depthwise 3x3 conv -> GELU -> SE -> pointwise 1x1 conv.

    Args:
        channels (int): Number of input and output channels C.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.dw_conv = nn.Conv2d(
            channels, channels, 3, 1, 1, groups=channels, bias=False)
        self.act = nn.GELU()
        self.se = SqueezeExcitation(channels)
        self.pw_conv = nn.Conv2d(channels, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        return x + self.pw_conv(self.se(self.act(self.dw_conv(x))))
