"""Global Token Generator: shrinks a stage's whole feature map to one window of
global query tokens, shared by every window of the same image."""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .mbconv import FusedMBConv

# The ImageNet windows of every published checkpoint are pretrain_img_size
# divided by these: (7, 7, 14, 7) at 224, (12, 12, 24, 12) at 384.
PRETRAIN_WINDOW_RATIOS = (32, 32, 16, 32)


def _is_exporting() -> bool:
    """``torch.compiler.is_exporting()``; False on a torch that lacks it
    (2.0, 2.1), which cannot run gcvit_mm's torch.export-based ONNX export
    either (:func:`gcvit_mm.deploy.exporter_unavailable`)."""
    compiler = getattr(torch, 'compiler', None)  # absent in torch 2.0
    is_exporting = getattr(compiler, 'is_exporting', None)
    return is_exporting is not None and is_exporting()


def imagenet_windows(pretrain_img_size: int) -> tuple:
    """The four windows the published checkpoints were pretrained with at
    ``pretrain_img_size``: (7, 7, 14, 7) at 224."""
    return tuple(pretrain_img_size // r for r in PRETRAIN_WINDOW_RATIOS)


def token_generator_layout(stage_index: int,
                           pretrain_img_size: int,
                           window_size: int,
                           pretrain_window_size: Optional[int] = None
                           ) -> tuple:
    """Number of (fused-MBConv blocks, max-pools) of a stage's generator.

    The stack comes from the pretraining geometry, not from the real input,
    so pretrained weights keep their meaning at any input size: each pool
    halves the stage's pretraining map until it is one pretraining window.
    At 224 with the ImageNet windows (7, 7, 14, 7) the stages reduce 56->7
    (3 pools), 28->7 (2), 14 (none) and 7 (none). Like the paper's
    dense-prediction code, the stride-16 stage pools once when its window
    differs from its pretraining resolution (e.g. window 24 on COCO);
    stride 32 never pools.

    From scratch there are no weights to keep: pass the training image size
    and windows as the "pretraining" geometry, and the tokens come out at
    exactly one window without a resize (at 128 px with windows
    (8, 8, 8, 4): 32->8, 16->8, 8, 4).

    Args:
        stage_index (int): 0..3, for strides 4, 8, 16, 32.
        pretrain_img_size (int): Image size the weights were trained at.
        window_size (int): This stage's window.
        pretrain_window_size (int, optional): This stage's window during
            pretraining. Default: the ImageNet window,
            ``imagenet_windows(pretrain_img_size)[stage_index]``.

    Returns:
        tuple[int, int]: (num_blocks, num_pools), num_pools <= num_blocks.
    """
    resolution = pretrain_img_size // (4 * 2**stage_index)
    if pretrain_window_size is None:
        pretrain_window_size = imagenet_windows(pretrain_img_size)[stage_index]
    num_pools = max(int(math.log2(resolution / pretrain_window_size)), 0)
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
        # Under torch.export always resized (bicubic at scale 1 is an exact
        # copy): the size test would be frozen into the exported graph, and
        # it is not evaluated at all there, so it adds no guard.
        w = self.window_size
        if _is_exporting() or x.shape[-2:] != (w, w):
            x = F.interpolate(x, size=(w, w), mode='bicubic')
        return x.flatten(2).transpose(1, 2)
