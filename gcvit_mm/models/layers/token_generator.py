"""Global Token Generator: shrinks a stage's whole feature map to one window of
global query tokens, shared by every window of the same image."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .mbconv import FusedMBConv

# ImageNet windows are pretrain_img_size divided by these (7, 7, 14, 7 at 224).
PRETRAIN_WINDOW_RATIOS = (32, 32, 16, 32)


def token_generator_layout(stage_index: int, pretrain_img_size: int,
                           window_size: int) -> tuple:
    """Number of (fused-MBConv blocks, max-pools) of a stage's generator.

    The stack comes from the pretraining geometry, not from the real input,
    so ImageNet weights keep their meaning at any input size. At 224 with
    the ImageNet windows (7, 7, 14, 7) the stages reduce 56->7 (3 pools),
    28->7 (2), 14 (none) and 7 (none). Like the paper's dense-prediction
    code, the stride-16 stage pools once when its window differs from its
    pretraining resolution (e.g. window 24 on COCO); stride 32 never pools.

    Args:
        stage_index (int): 0..3, for strides 4, 8, 16, 32.
        pretrain_img_size (int): Image size the weights were trained at.
        window_size (int): This stage's window.

    Returns:
        tuple[int, int]: (num_blocks, num_pools), num_pools <= num_blocks.
    """
    resolution = pretrain_img_size // (4 * 2**stage_index)
    pretrain_window = pretrain_img_size // PRETRAIN_WINDOW_RATIOS[stage_index]
    num_pools = max(int(math.log2(resolution / pretrain_window)), 0)
    if num_pools == 0 and stage_index == 2 and window_size != resolution:
        num_pools = 1
    return max(num_pools, 1), num_pools


class GlobalTokenGenerator(nn.Module):
    """Repeated fused-MBConv (+ 3x3/2 max-pool), then a bicubic resize to one
    window when the pooled map is not already window x window.

    Args:
        channels (int): Channels C of the stage.
        window_size (int): Window w of the stage; output has w*w tokens.
        num_blocks (int): Number of fused-MBConv blocks.
        num_pools (int): How many of them (the first ones) are followed by a
            max-pool.
    """

    def __init__(self, channels: int, window_size: int, num_blocks: int,
                 num_pools: int) -> None:
        super().__init__()
        if not 0 <= num_pools <= num_blocks:
            raise ValueError(f'num_pools must be in [0, num_blocks], got '
                             f'{num_pools} pools for {num_blocks} blocks')
        self.window_size = window_size
        self.num_pools = num_pools
        self.mbconvs = nn.ModuleList(
            FusedMBConv(channels) for _ in range(num_blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> global tokens (B, w*w, C), row-major."""
        for i, mbconv in enumerate(self.mbconvs):
            x = mbconv(x)
            if i < self.num_pools:
                x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
        w = self.window_size
        if x.shape[-2:] != (w, w):
            x = F.interpolate(x, size=(w, w), mode='bicubic')
        return x.flatten(2).transpose(1, 2)
