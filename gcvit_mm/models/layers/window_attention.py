"""Window attention with relative position bias, local (q, k, v from the
window) or global (q from the stage's global tokens, k, v from the window)."""
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import bias_attention as fused_bias


def _pair(size: Union[int, Tuple[int, int]]) -> Tuple[int, int]:
    return (size, size) if isinstance(size, int) else tuple(size)


def window_partition(x: torch.Tensor,
                     window_size: Union[int, Tuple[int, int]]) -> torch.Tensor:
    """(B, H, W, C), H and W multiples of the window (wh, ww) ->
    (B * nW, wh*ww, C), image-major. ``x`` may be a strided view (a crop)."""
    B, H, W, C = x.shape
    wh, ww = _pair(window_size)
    x = x.view(B, H // wh, wh, W // ww, ww, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, wh * ww, C)


def window_reverse(windows: torch.Tensor,
                   window_size: Union[int, Tuple[int, int]],
                   hw: Tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`window_partition`: (B * nW, wh*ww, C) -> (B, H, W, C)."""
    H, W = hw
    wh, ww = _pair(window_size)
    C = windows.shape[-1]
    x = windows.view(-1, H // wh, W // ww, wh, ww, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, H, W, C)


def relative_position_index(window_size: int) -> torch.Tensor:
    """(w*w, w*w) index into a ((2w-1)^2, heads) bias table, Swin's layout."""
    coords = torch.stack(
        torch.meshgrid(
            torch.arange(window_size), torch.arange(window_size),
            indexing='ij')).flatten(1)  # (2, N)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)
    rel = rel + (window_size - 1)
    return rel[..., 0] * (2 * window_size - 1) + rel[..., 1]


class WindowAttention(nn.Module):
    """Multi-head attention inside w x w windows.

    A local block projects q, k, v from the window (``qkv``: C -> 3C). A
    global block projects only k, v (``kv``: C -> 2C); its queries are the
    global tokens of the window's own image.

    Args:
        embed_dims (int): Channels C.
        num_heads (int): Attention heads.
        window_size (int): Window w; N = w*w tokens per window.
        use_global (bool): Global block (queries from global tokens).
        qkv_bias (bool): Bias in the q/k/v projection.
        attn_drop (float): Dropout on attention weights.
        proj_drop (float): Dropout after the output projection.
        use_sdpa (bool): Use ``F.scaled_dot_product_attention``; False keeps
            the plain softmax(q k^T + bias) v reference path.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 window_size: int,
                 use_global: bool,
                 qkv_bias: bool = True,
                 attn_drop: float = 0.,
                 proj_drop: float = 0.,
                 use_sdpa: bool = True) -> None:
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims {embed_dims} is not divisible by '
                             f'num_heads {num_heads}')
        self.num_heads = num_heads
        self.head_dims = embed_dims // num_heads
        self.scale = self.head_dims**-0.5
        self.window_size = window_size
        self.use_global = use_global
        self.use_sdpa = use_sdpa
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window_size - 1)**2, num_heads))
        # Derived from window_size: not saved, so checkpoints stay
        # window-agnostic and the table can be resized on load.
        self.register_buffer(
            'relative_position_index',
            relative_position_index(window_size),
            persistent=False)
        if use_global:
            self.kv = nn.Linear(embed_dims, 2 * embed_dims, bias=qkv_bias)
        else:
            self.qkv = nn.Linear(embed_dims, 3 * embed_dims, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop)

    def relative_position_bias(self) -> torch.Tensor:
        """(1, heads, N, N) additive bias.

        4-D on purpose: with a 3-D float mask PyTorch's CPU dispatcher
        falls back to the slow math kernel; (1, heads, N, N) broadcasts over
        the windows without a copy and selects the fused flash kernel.
        Gathering along dim 1 of the (heads, (2w-1)^2) transposed table
        writes the result in its final layout (2.5x faster than gathering
        rows and permuting).
        """
        N = self.window_size**2
        table = self.relative_position_bias_table.t().contiguous()
        bias = table.index_select(1, self.relative_position_index.view(-1))
        return bias.view(1, self.num_heads, N, N)

    def _split_heads(self, x: torch.Tensor, parts: int) -> torch.Tensor:
        """(B_, N, parts*C) -> (parts, B_, heads, N, head_dims)."""
        B_, N, _ = x.shape
        x = x.view(B_, N, parts, self.num_heads, self.head_dims)
        return x.permute(2, 0, 3, 1, 4)

    def _crop_queries(self, x: torch.Tensor,
                      query_size: Optional[Tuple[int, int]]) -> torch.Tensor:
        """(..., N, D) over the w x w window -> (..., qh*qw, D) over its
        top-left qh x qw tokens (unchanged when None or the whole window)."""
        w = self.window_size
        if query_size is None or tuple(query_size) == (w, w):
            return x
        qh, qw = query_size
        return x.unflatten(-2, (w, w))[..., :qh, :qw, :].flatten(-3, -2)

    def _check_tokens(self, global_tokens: Optional[torch.Tensor]) -> None:
        if self.use_global and global_tokens is None:
            raise ValueError('a global attention block needs global_tokens')

    def _global_queries(self, global_tokens: torch.Tensor,
                        query_size: Optional[Tuple[int, int]],
                        num_windows: int) -> torch.Tensor:
        """(B, N, C) global tokens -> (B * nW, heads, Nq, head_dims) queries.

        Window k of image b attends with image b's tokens. Cropped before
        the expand, which is a view; the reshape copies only when B > 1.
        """
        B, N, _ = global_tokens.shape
        q = global_tokens.view(B, N, self.num_heads, self.head_dims)
        q = self._crop_queries(q.transpose(1, 2), query_size)
        q = q.unsqueeze(1).expand(-1, num_windows // B, -1, -1, -1)
        return q.reshape(num_windows, *q.shape[2:])

    def attend(self,
               x: torch.Tensor,
               global_tokens: Optional[torch.Tensor] = None,
               query_size: Optional[Tuple[int, int]] = None) -> torch.Tensor:
        """Attention within windows, before the output projection.

        Args:
            x: (B * nW, N, C) windows, image-major (all windows of image 0
                first).
            global_tokens: (B, N, C), required when ``use_global``.
            query_size: (qh, qw): compute outputs only for the top-left
                qh x qw tokens of each window; every token stays a key.
                For border windows whose other tokens are padding that the
                caller crops away (:meth:`attend_border` does the same
                without keys for the padding). None: all N tokens.

        Returns:
            (B * nW, heads, Nq, head_dims), Nq = qh * qw (N when
            ``query_size`` is None).
        """
        self._check_tokens(global_tokens)
        if self.use_global:
            k, v = self._split_heads(self.kv(x), 2).unbind(0)
            q = self._global_queries(global_tokens, query_size, x.shape[0])
        else:
            q, k, v = self._split_heads(self.qkv(x), 3).unbind(0)
            q = self._crop_queries(q, query_size)
        bias = self._crop_queries(self.relative_position_bias(), query_size)
        return self._softmax_attention(q, k, v, bias.to(q.dtype))

    def border_bias(self, query_size: Tuple[int, int]) -> torch.Tensor:
        """(1, heads, Nq, Nq + 1) bias of a border window whose top-left
        qh x qw tokens are real (Nq = qh*qw) and whose padding is folded
        into one last key (see :meth:`attend_border`).

        Gathered straight from the table, not cropped from
        :meth:`relative_position_bias`: a border window needs Nq of the N
        rows, and a map smaller than one window (stage 4 at 384x576) needs
        no full bias at all; the gradient goes to the small table instead
        of a full (heads, N, N) bias.
        """
        w = self.window_size
        qh, qw = query_size
        # (Nq, w, w): row i is query i's index of every window position
        index = self.relative_position_index.view(w, w, w, w)[:qh, :qw]
        index = index.reshape(qh * qw, w, w)
        # Real keys, then the padding: the rows below the real ones and the
        # columns right of them. Slices, no boolean mask: static shapes.
        index = torch.cat([index[:, :qh, :qw].flatten(1),
                           index[:, qh:].flatten(1),
                           index[:, :qh, qw:].flatten(1)], 1)
        table = self.relative_position_bias_table.t()  # (heads, (2w-1)^2)
        bias = table.index_select(1, index.flatten()).view(
            self.num_heads, qh * qw, w * w)
        real, padded = bias.split([qh * qw, w * w - qh * qw], -1)
        folded = padded.logsumexp(-1, keepdim=True)
        return torch.cat([real, folded], -1).unsqueeze(0)

    def attend_border(self, x: torch.Tensor,
                      global_tokens: Optional[torch.Tensor],
                      query_size: Tuple[int, int]) -> torch.Tensor:
        """:meth:`attend` for border windows given only their real tokens.

        A border window holds qh x qw real tokens (top left) and zero
        padding, which the reference path keeps as keys. Every padded token
        has the same key and value, the projection of zero (its bias), and
        differs only in its position bias, so all of them fold exactly into
        one key whose bias is log(sum over the padded positions of
        exp(bias)), per head and query: same softmax, same output, without
        projecting or attending to the padding.

        Args:
            x: (B * nW, qh*qw, C) real tokens of each window, image-major.
            global_tokens: (B, N, C), required when ``use_global``.
            query_size: (qh, qw), smaller than the window.

        Returns:
            (B * nW, heads, qh*qw, head_dims), as :meth:`attend`.
        """
        self._check_tokens(global_tokens)
        proj = self.kv if self.use_global else self.qkv
        parts = 2 if self.use_global else 3
        qkv = self._split_heads(proj(x), parts)
        # (parts, 1, heads, 1, head_dims): what a zero token projects to
        pad = self._split_heads(proj(x.new_zeros(1, 1, x.shape[-1])), parts)
        B_ = x.shape[0]
        k, v = (torch.cat([qkv[i], pad[i].expand(B_, -1, -1, -1)], 2)
                for i in (-2, -1))
        if self.use_global:
            q = self._global_queries(global_tokens, query_size, B_)
        else:
            q = qkv[0]
        bias = self.border_bias(query_size)
        return self._softmax_attention(q, k, v, bias.to(q.dtype))

    def _softmax_attention(self, q: torch.Tensor, k: torch.Tensor,
                           v: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """softmax(q k^T * scale + bias) v: q (B_, heads, Nq, d), k and v
        (B_, heads, Nk, d), bias (1, heads, Nq, Nk) shared by the windows."""
        attn_drop = self.attn_drop if self.training else 0.
        if (self.use_sdpa and bias.requires_grad and q.device.type == 'cpu'
                and attn_drop == 0. and fused_bias.AVAILABLE):
            # SDPA would fall back to its math kernel for a mask that needs
            # a gradient; this keeps the fused one (CUDA's kernels have it).
            return fused_bias.bias_attention(q, k, v, bias)
        if self.use_sdpa:
            return F.scaled_dot_product_attention(
                q, k, v, attn_mask=bias, dropout_p=attn_drop)
        attn = (q * self.scale) @ k.transpose(-2, -1) + bias
        attn = F.dropout(attn.softmax(dim=-1), attn_drop)
        return attn @ v

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """Output projection (and dropout) of merged heads: (..., C)."""
        return self.proj_drop(self.proj(x))

    def forward(self,
                x: torch.Tensor,
                global_tokens: Optional[torch.Tensor] = None,
                query_size: Optional[Tuple[int, int]] = None) -> torch.Tensor:
        """(B * nW, N, C) windows -> (B * nW, Nq, C); see :meth:`attend`."""
        x = self.attend(x, global_tokens, query_size)
        B_, _, Nq, _ = x.shape
        return self.project(x.transpose(1, 2).reshape(B_, Nq, -1))
