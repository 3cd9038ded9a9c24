"""GC ViT transformer block and stage."""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn.bricks import DropPath

from .reduce_size import ReduceSize
from .token_generator import GlobalTokenGenerator
from .window_attention import WindowAttention, window_partition, window_reverse

# How a block attends in the windows at the map's right/bottom border, which
# the map only partly fills (see GCViTBlock):
#   'fold': split the map into whole windows and the partial last row,
#       column and corner; partial windows query only their real tokens and
#       fold their padding into one key. Fastest, but it branches in Python
#       on the map size, so a traced/exported graph holds for one size only.
#   'pad': the paper's recipe as written: pad the map to whole windows,
#       attend in every window, crop. The padding amounts are symbolic
#       arithmetic on the size, with no branch on it: the path that
#       torch.export / ONNX export with dynamic shapes need.
BORDERS = ('fold', 'pad')


def check_border(border: str) -> str:
    """``border`` if it is one of :data:`BORDERS`, else a ValueError naming
    the choices."""
    if border not in BORDERS:
        raise ValueError(f'border must be one of {BORDERS}, got {border!r}')
    return border


def window_spans(size: int, window_size: int) -> List[Tuple[slice, int]]:
    """Split [0, size) into the span of whole windows and the span of the
    partial last window, each with its number of real rows per window."""
    whole = size - size % window_size
    spans = []
    if whole:
        spans.append((slice(0, whole), window_size))
    if whole < size:
        spans.append((slice(whole, size), size - whole))
    return spans


def write_windows(out: torch.Tensor, windows: torch.Tensor,
                  window_hw: Tuple[int, int]) -> None:
    """Write per-head window outputs into the (B, H, W, C) view ``out``.

    ``windows`` is (B * nW, heads, wh*ww, head_dims), heads * head_dims = C,
    as attention returns it: merging the heads, :func:`window_reverse` and
    the crop into the output map all happen in this one copy.
    """
    B, H, W, C = out.shape
    heads, d = windows.shape[1], windows.shape[3]
    wh, ww = window_hw
    windows = windows.view(B, H // wh, W // ww, heads, wh, ww, d)
    out = out.view(B, H // wh, wh, W // ww, ww, heads, d)
    out.copy_(windows.permute(0, 1, 4, 2, 5, 3, 6))


class Mlp(nn.Sequential):
    """Linear -> GELU -> dropout -> Linear -> dropout, on (..., C)."""

    def __init__(self, embed_dims: int, hidden_dims: int,
                 drop: float = 0.) -> None:
        super().__init__()
        self.fc1 = nn.Linear(embed_dims, hidden_dims)
        self.act = nn.GELU()
        self.drop1 = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden_dims, embed_dims)
        self.drop2 = nn.Dropout(drop)


class GCViTBlock(nn.Module):
    """Pre-norm window-attention block with optional layer scale.

    x = x + drop_path(gamma1 * attn(norm1(x)));
    x = x + drop_path(gamma2 * mlp(norm2(x))).

    Maps of any size: the normed map is zero-padded right/bottom to a
    multiple of the window and cropped back after attention, as the paper's
    dense code does (padded tokens take part as keys, unmasked).

    Args:
        embed_dims (int): Channels C.
        num_heads (int): Attention heads.
        window_size (int): Window w.
        use_global (bool): Queries from global tokens (odd blocks).
        mlp_ratio (float): MLP hidden width / C.
        layer_scale (float, optional): Initial gamma; None disables it.
        qkv_bias (bool): Bias in the q/k/v projection.
        drop (float): Dropout after projections.
        attn_drop (float): Dropout on attention weights.
        drop_path (float): Stochastic depth rate.
        use_sdpa (bool): Attention kernel: PyTorch's fused attention, or
            (False) the plain softmax(q k^T + bias) v math.
        border (str): Border-window strategy, 'fold' or 'pad' (see
            :data:`BORDERS`), independent of the kernel; same outputs
            either way.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 window_size: int,
                 use_global: bool,
                 mlp_ratio: float = 3.,
                 layer_scale: Optional[float] = None,
                 qkv_bias: bool = True,
                 drop: float = 0.,
                 attn_drop: float = 0.,
                 drop_path: float = 0.,
                 use_sdpa: bool = True,
                 border: str = 'fold') -> None:
        super().__init__()
        self.window_size = window_size
        self.border = check_border(border)
        self.use_global = use_global
        self.norm1 = nn.LayerNorm(embed_dims)
        self.attn = WindowAttention(embed_dims, num_heads, window_size,
                                    use_global, qkv_bias, attn_drop, drop,
                                    use_sdpa)
        self.norm2 = nn.LayerNorm(embed_dims)
        self.mlp = Mlp(embed_dims, int(embed_dims * mlp_ratio), drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        if layer_scale is not None:
            self.gamma1 = nn.Parameter(layer_scale * torch.ones(embed_dims))
            self.gamma2 = nn.Parameter(layer_scale * torch.ones(embed_dims))
        else:
            self.gamma1 = self.gamma2 = None

    def _attention(self, x: torch.Tensor,
                   global_tokens: Optional[torch.Tensor]) -> torch.Tensor:
        """(B, H, W, C) -> (B, H, W, C), attention within w x w windows."""
        if self.border == 'fold':
            return self._attention_fast(x, global_tokens)
        return self._attention_reference(x, global_tokens)

    def _attention_reference(
            self, x: torch.Tensor,
            global_tokens: Optional[torch.Tensor]) -> torch.Tensor:
        """The paper's recipe as written: zero-pad the map right/bottom to
        whole windows, attend in every window, crop back.

        Written for export with dynamic shapes: the padded size is the
        window count times w, so under torch.export it is symbolic
        arithmetic that the window reshapes provably divide, and the map is
        padded even when the padding is zero (a branch on the size would be
        frozen into the graph, or make export fail).
        """
        B, H, W, C = x.shape
        w = self.window_size
        rows, cols = (H + w - 1) // w * w, (W + w - 1) // w * w
        x = F.pad(x, (0, 0, 0, cols - W, 0, rows - H))
        windows = self.attn(window_partition(x, w), global_tokens)
        x = window_reverse(windows, w, (rows, cols))
        return x[:, :H, :W, :]

    def _attention_fast(self, x: torch.Tensor,
                        global_tokens: Optional[torch.Tensor]) -> torch.Tensor:
        """Same result as :meth:`_attention_reference`, without computing
        what the padding would add.

        The map splits into at most four groups of windows: whole windows,
        and the partial last row / column / corner. A partial window is
        never padded: it attends with its real tokens, its padding folded
        into one key (:meth:`WindowAttention.attend_border`). At 800x1216
        with w=24 the stride-16 map is 50x76 but its padded windows cover
        72x96. The output projection runs once, on the assembled map.
        """
        B, H, W, C = x.shape
        w = self.window_size
        out = None  # allocated like the attention output (autocast dtype)
        for rows, qh in window_spans(H, w):
            for cols, qw in window_spans(W, w):
                windows = window_partition(x[:, rows, cols], (qh, qw))
                if qh < w or qw < w:
                    windows = self.attn.attend_border(
                        windows, global_tokens, (qh, qw))
                else:  # the whole windows: one group at most
                    windows = self.attn.attend(windows, global_tokens)
                if out is None:
                    out = windows.new_empty(B, H, W, C)
                write_windows(out[:, rows, cols], windows, (qh, qw))
        return self.attn.project(out)

    def forward(self,
                x: torch.Tensor,
                global_tokens: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(B, H, W, C) -> (B, H, W, C); global_tokens (B, w*w, C)."""
        y = self._attention(self.norm1(x), global_tokens)
        if self.gamma1 is not None:
            y = self.gamma1 * y
        x = x + self.drop_path(y)
        y = self.mlp(self.norm2(x))
        if self.gamma2 is not None:
            y = self.gamma2 * y
        return x + self.drop_path(y)


class GCViTStage(nn.Module):
    """Optional down-sampler, a global token generator, then blocks that
    alternate local (even) and global (odd) attention.

    Args:
        in_channels (int): Channels entering the stage.
        depth (int): Number of blocks.
        num_heads (int): Attention heads.
        window_size (int): Window w.
        generator_layout (tuple[int, int]): (num_blocks, num_pools) of the
            global token generator.
        downsample (bool): Start with a stride-2 ReduceSize (C -> 2C).
        drop_paths (Sequence[float]): Stochastic depth rate of each block.
        with_cp (bool): Gradient-checkpoint each block.
        **block_kwargs: Passed to :class:`GCViTBlock`.
    """

    def __init__(self,
                 in_channels: int,
                 depth: int,
                 num_heads: int,
                 window_size: int,
                 generator_layout: Sequence[int],
                 downsample: bool,
                 drop_paths: Sequence[float],
                 with_cp: bool = False,
                 **block_kwargs) -> None:
        super().__init__()
        self.downsample = ReduceSize(in_channels) if downsample else None
        channels = 2 * in_channels if downsample else in_channels
        self.with_cp = with_cp
        # Only odd blocks are global: a one-block stage has no use for
        # tokens, and unused parameters would break DDP.
        self.token_generator = GlobalTokenGenerator(
            channels, window_size, *generator_layout) if depth > 1 else None
        self.blocks = nn.ModuleList(
            GCViTBlock(
                channels,
                num_heads,
                window_size,
                use_global=i % 2 == 1,
                drop_path=drop_paths[i],
                **block_kwargs) for i in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, C, H', W'); H' = ceil(H/2) if downsample.

        The output is a permuted view of the blocks' (B, H', W', C) map:
        NCHW in channels-last memory, which the output norm and the next
        down-sampler's LayerNorm read without a copy.
        """
        if self.downsample is not None:
            x = self.downsample(x)
        global_tokens = (self.token_generator(x)
                         if self.token_generator is not None else None)
        x = x.permute(0, 2, 3, 1)
        for block in self.blocks:
            tokens = global_tokens if block.use_global else None
            if self.with_cp and torch.is_grad_enabled():
                x = cp.checkpoint(block, x, tokens, use_reentrant=False)
            else:
                x = block(x, tokens)
        return x.permute(0, 3, 1, 2)

