"""GC ViT backbone (Global Context Vision Transformer, Hatamizadeh et al.,
ICML 2023) for OpenMMLab dense prediction."""
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.logging import MMLogger
from mmengine.model import BaseModule
from mmengine.model.weight_init import constant_init, trunc_normal_, trunc_normal_init
from mmengine.registry import MODELS

from ...checkpoint import load_pretrained
from ..layers import (ConvStem, GCViTStage, WindowAttention,
                      imagenet_windows, token_generator_layout)

NUM_STAGES = 4
ARCH_KEYS = ('dim', 'depths', 'num_heads', 'mlp_ratio', 'layer_scale')


@MODELS.register_module()
class GCViT(BaseModule):
    """GC ViT: hierarchical ViT alternating local window attention with
    global-query attention; features at strides 4, 8, 16, 32.

    Registered in mmengine's root MODELS registry, so configs build it under
    ``default_scope='mmdet'`` and ``default_scope='mmseg'`` alike.

    Args:
        arch (str | dict): One of :attr:`arch_zoo` ('xxtiny', 'xtiny',
            'tiny', 'tiny2', 'small', 'small2', 'base', 'large') or a dict
            with keys dim, depths, num_heads, mlp_ratio, layer_scale.
        in_channels (int): Image channels. Default: 3.
        window_size (int | Sequence[int], optional): Window per stage.
            Default: the ImageNet windows at ``pretrain_img_size``, (7, 7,
            14, 7) at 224; the paper's COCO recipe uses 24.
        pretrain_img_size (int): Image size the weights were pretrained at;
            with ``pretrain_window_size`` it fixes the global token
            generators' pooling stacks (see :func:`token_generator_layout`).
            Default: 224.
        pretrain_window_size (int | Sequence[int], optional): Windows the
            weights were pretrained with. Default: the ImageNet windows of
            the published checkpoints, ``pretrain_img_size / (32, 32, 16,
            32)``. Training from scratch, set ``pretrain_img_size`` to the
            training size and this to ``window_size``: every generator then
            pools its map to exactly one window instead of pooling too far
            and upsampling, as timm builds a model for that image size (on
            the toy job it made no measurable difference: see
            docs/from_scratch.md).
        qkv_bias (bool): Bias in q/k/v projections. Default: True.
        drop_rate (float): Dropout after projections. Default: 0.
        attn_drop_rate (float): Dropout on attention weights. Default: 0.
        drop_path_rate (float): Stochastic depth, linear over blocks.
            Default: 0.2.
        out_indices (Sequence[int]): Stages whose (normed) outputs are
            returned. Default: (0, 1, 2, 3).
        frozen_stages (int): Freeze the stem and the first ``frozen_stages``
            stages (-1: nothing; 0: the stem only). Default: -1.
        with_cp (bool): Gradient checkpointing in every block: less memory,
            same results. Default: False.
        use_sdpa (bool): Attention kernel: PyTorch's fused attention
            (False: plain reference math). Default: True.
        border (str): Border-window strategy, independent of the kernel:
            'fold' (fast) or 'pad' (exportable with dynamic shapes; the
            paper's FLOP count), same outputs; see
            ``gcvit_mm.models.layers.block.BORDERS``. Default: 'fold'.
        init_cfg (dict, optional): ``dict(type='Pretrained',
            checkpoint=PATH_OR_URL)`` loads the paper's, timm's or our
            checkpoint format, always with ``torch.load(weights_only=True)``.
            The checkpoint must be of this arch: a tensor whose shape differs
            is an error, and so is any tensor of the backbone that the
            checkpoint lacks (the new output norms ``norm{i}`` aside) or any
            tensor of the checkpoint that the backbone lacks, e.g.
            ``'xxtiny'`` weights in an ``'xtiny'`` model (same width, fewer
            blocks). A partial load on purpose says so, as in mmengine's
            ``load_checkpoint(strict=...)``: ``dict(type='Pretrained',
            checkpoint=..., strict=False)`` allows missing and unexpected
            tensors, logged as warnings (shapes must still match).

    Example:
        >>> model = GCViT('tiny', window_size=24)
        >>> outs = model(torch.rand(1, 3, 100, 130))
        >>> [tuple(o.shape) for o in outs]
        [(1, 64, 25, 33), (1, 128, 13, 17), (1, 256, 7, 9), (1, 512, 4, 5)]
    """

    arch_zoo: Dict[str, dict] = {
        'xxtiny': dict(dim=64, depths=(2, 2, 6, 2), num_heads=(2, 4, 8, 16),
                       mlp_ratio=3., layer_scale=None),
        'xtiny': dict(dim=64, depths=(3, 4, 6, 5), num_heads=(2, 4, 8, 16),
                      mlp_ratio=3., layer_scale=None),
        'tiny': dict(dim=64, depths=(3, 4, 19, 5), num_heads=(2, 4, 8, 16),
                     mlp_ratio=3., layer_scale=None),
        'tiny2': dict(dim=64, depths=(3, 4, 29, 5), num_heads=(2, 4, 8, 16),
                      mlp_ratio=3., layer_scale=None),
        'small': dict(dim=96, depths=(3, 4, 19, 5), num_heads=(3, 6, 12, 24),
                      mlp_ratio=2., layer_scale=1e-5),
        'small2': dict(dim=96, depths=(3, 4, 23, 5),
                       num_heads=(3, 6, 12, 24), mlp_ratio=3.,
                       layer_scale=1e-5),
        'base': dict(dim=128, depths=(3, 4, 19, 5), num_heads=(4, 8, 16, 32),
                     mlp_ratio=2., layer_scale=1e-5),
        'large': dict(dim=192, depths=(3, 4, 19, 5),
                      num_heads=(6, 12, 24, 48), mlp_ratio=2.,
                      layer_scale=1e-5),
    }

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 in_channels: int = 3,
                 window_size: Optional[Union[int, Sequence[int]]] = None,
                 pretrain_img_size: int = 224,
                 pretrain_window_size: Optional[Union[int,
                                                      Sequence[int]]] = None,
                 qkv_bias: bool = True,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.2,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 with_cp: bool = False,
                 use_sdpa: bool = True,
                 border: str = 'fold',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.arch_settings, self.window_size, self.out_indices = \
            self.check_args(arch, window_size, out_indices, frozen_stages)
        if self.window_size is None:
            self.window_size = imagenet_windows(pretrain_img_size)
        dim, depths, num_heads = (self.arch_settings[k]
                                  for k in ('dim', 'depths', 'num_heads'))
        self.frozen_stages = frozen_stages
        self.in_channels = in_channels
        self.pretrain_img_size = pretrain_img_size
        self.pretrain_window_size = (
            imagenet_windows(pretrain_img_size)
            if pretrain_window_size is None else self._per_stage(
                pretrain_window_size, 'pretrain_window_size'))
        self.num_features: List[int] = [dim * 2**i for i in range(NUM_STAGES)]
        self.out_channels = [self.num_features[i] for i in self.out_indices]

        self.stem = ConvStem(in_channels, dim)
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.stages = nn.ModuleList()
        for i in range(NUM_STAGES):
            first = sum(depths[:i])
            self.stages.append(
                GCViTStage(
                    in_channels=self.num_features[max(i - 1, 0)],
                    depth=depths[i],
                    num_heads=num_heads[i],
                    window_size=self.window_size[i],
                    generator_layout=token_generator_layout(
                        i, pretrain_img_size, self.window_size[i],
                        self.pretrain_window_size[i]),
                    downsample=i > 0,
                    drop_paths=rates[first:first + depths[i]],
                    with_cp=with_cp,
                    mlp_ratio=self.arch_settings['mlp_ratio'],
                    layer_scale=self.arch_settings['layer_scale'],
                    qkv_bias=qkv_bias,
                    drop=drop_rate,
                    attn_drop=attn_drop_rate,
                    use_sdpa=use_sdpa,
                    border=border))
        # A fresh LayerNorm per output, as in Swin and the paper's dense
        # code; the classifier's final norm is not reused.
        for i in self.out_indices:
            self.add_module(f'norm{i}', nn.LayerNorm(self.num_features[i]))
        self._freeze_stages()

    @classmethod
    def check_args(cls, arch: Union[str, dict],
                   window_size: Optional[Union[int, Sequence[int]]],
                   out_indices: Sequence[int], frozen_stages: int) -> tuple:
        """Validate the arguments that need no layers: (arch settings,
        window per stage, out_indices), or a ``ValueError``/``TypeError``
        naming the fix. A classmethod so that tools check configs before
        building anything."""
        arch_settings = cls._parse_arch(arch)
        if window_size is not None:  # None: the ImageNet windows
            window_size = cls._per_stage(window_size, 'window_size')
        out_indices = cls._check_out_indices(out_indices)
        if not -1 <= frozen_stages <= NUM_STAGES:
            raise ValueError(f'frozen_stages must be in [-1, {NUM_STAGES}], '
                             f'got {frozen_stages}')
        return arch_settings, window_size, out_indices

    @classmethod
    def _parse_arch(cls, arch: Union[str, dict]) -> dict:
        if isinstance(arch, str):
            if arch not in cls.arch_zoo:
                raise ValueError(f'Unknown GCViT arch {arch!r}; choose one of '
                                 f'{sorted(cls.arch_zoo)} or pass a dict with '
                                 f'keys {ARCH_KEYS}')
            return dict(cls.arch_zoo[arch])
        if not isinstance(arch, dict):
            raise TypeError(f'arch must be a str or dict, got {type(arch)}')
        missing = set(ARCH_KEYS) - set(arch)
        unknown = set(arch) - set(ARCH_KEYS)
        if missing or unknown:
            raise ValueError(
                f'Custom GCViT arch needs exactly the keys {ARCH_KEYS}; '
                f'missing {sorted(missing)}, unknown {sorted(unknown)}')
        arch = dict(arch)
        for key in ('depths', 'num_heads'):
            arch[key] = cls._per_stage(arch[key], f'arch[{key!r}]')
        return arch

    @staticmethod
    def _per_stage(value: Union[int, Sequence[int]], name: str) -> tuple:
        if isinstance(value, int):
            value = (value, ) * NUM_STAGES
        value = tuple(value)
        if len(value) != NUM_STAGES or not all(
                isinstance(v, int) and v > 0 for v in value):
            raise ValueError(f'{name} must be a positive int or {NUM_STAGES} '
                             f'positive ints (one per stage), got {value}')
        return value

    @staticmethod
    def _check_out_indices(out_indices: Sequence[int]) -> tuple:
        if isinstance(out_indices, int):
            out_indices = (out_indices, )
        out_indices = tuple(out_indices)
        bad = [i for i in out_indices if not 0 <= i < NUM_STAGES]
        if bad or not out_indices or len(set(out_indices)) != len(out_indices):
            raise ValueError(f'out_indices must be distinct stage indices in '
                             f'0..{NUM_STAGES - 1}, got {out_indices}')
        return out_indices

    def _freeze_stages(self) -> None:
        """Stop gradients and keep eval mode in the stem and the first
        ``frozen_stages`` stages (and their output norms)."""
        frozen: List[nn.Module] = []
        if self.frozen_stages >= 0:
            frozen.append(self.stem)
        for i in range(self.frozen_stages):
            frozen.append(self.stages[i])
            if i in self.out_indices:
                frozen.append(getattr(self, f'norm{i}'))
        for module in frozen:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'GCViT':
        """Set train/eval mode, keeping frozen stages in eval mode."""
        super().train(mode)
        self._freeze_stages()
        return self

    def init_weights(self) -> None:
        """Initialise like Swin (trunc-normal Linear and bias tables, unit
        LayerNorm), then load ``init_cfg=dict(type='Pretrained',
        checkpoint=..., strict=True)`` in the paper's, timm's or our format
        (see the class docstring)."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                trunc_normal_init(module, std=.02, bias=0.)
            elif isinstance(module, nn.LayerNorm):
                constant_init(module, 1.0)
            if isinstance(module, WindowAttention):
                trunc_normal_(module.relative_position_bias_table, std=.02)
        if self.init_cfg is not None and self.init_cfg.get(
                'type') == 'Pretrained':
            load_pretrained(self, self.init_cfg['checkpoint'],
                            MMLogger.get_current_instance(),
                            strict=self.init_cfg.get('strict', True))
            self._is_init = True
        else:
            super().init_weights()

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        """(B, in_channels, H, W) -> one (B, C_i, H_i, W_i) map per out index,
        H_i the size a stack of i + 2 stride-2 convs gives (ceil(H / 2^(i+2)))."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f'GCViT expects images (B, {self.in_channels}, H, W) '
                f'(in_channels={self.in_channels}), got {tuple(x.shape)}; '
                f'set in_channels to match your data')
        x = self.stem(x)
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_indices:
                norm = getattr(self, f'norm{i}')
                outs.append(norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
                            .contiguous())
        return outs
