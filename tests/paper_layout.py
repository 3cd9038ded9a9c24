"""Checkpoints in the paper's layouts with random values, for tests.

The GC ViT key names, shapes and dtypes come from
``tests/data/paper_gcvit_layouts.json``, dumped from the paper's own model
definitions (NVlabs/GCVit), not from our code or our conversion. The mmdet
2.x head keys of a small Mask R-CNN are written from mmdet 2.x's module names
(``FPN.lateral_convs``/``fpn_convs`` of ``ConvModule``s, ``RPNHead.rpn_conv``/
``rpn_cls``/``rpn_reg``, ``ConvFCBBoxHead.shared_convs``/``shared_fcs``/
``fc_cls``/``fc_reg``, ``FCNMaskHead.convs``/``upsample``/``conv_logits``;
a ``ConvModule`` with a norm has no conv bias and names a GroupNorm ``gn``).
"""
import json
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Sequence, Tuple

import torch

LAYOUTS = osp.join(osp.dirname(osp.abspath(__file__)), 'data',
                   'paper_gcvit_layouts.json')
# (key, shape, dtype) per tensor, in state_dict order
Layout = List[Tuple[str, Tuple[int, ...], str]]


def layout(name: str) -> Layout:
    """(key, shape, dtype) of one layout in the fixture, in state_dict
    order."""
    with open(LAYOUTS) as f:
        tensors = json.load(f)['layouts'][name]['tensors']
    return [(key, tuple(shape), dtype) for key, shape, dtype in tensors]


def random_state_dict(entries: Layout, seed: int = 0,
                      prefix: str = '') -> Dict[str, torch.Tensor]:
    """Random values of the right shape: normal weights of std 0.02, norm
    weights near 1, integer buffers (``relative_position_index``) in the
    index range of their window. Every tensor is distinct, so a value that
    reaches the wrong key or gets lost shows."""
    gen = torch.Generator().manual_seed(seed)
    out = OrderedDict()
    for key, shape, dtype in entries:
        if dtype == 'int64':
            window = int(round(shape[0]**0.5))
            value = torch.randint(0, (2 * window - 1)**2, shape,
                                  generator=gen)
        elif key.endswith('.weight') and len(shape) == 1:  # LayerNorm, GN
            value = 1 + 0.1 * torch.randn(shape, generator=gen)
        else:
            value = 0.02 * torch.randn(shape, generator=gen)
        out[prefix + key] = value
    return out


def mmdet2_mask_rcnn_heads(in_channels: Sequence[int], channels: int,
                           num_classes: int, num_anchors: int,
                           box_convs: int, box_fcs: int, fc_channels: int,
                           mask_convs: int, group_norm: bool,
                           roi_size: int = 7) -> Layout:
    """Keys and shapes of the neck and heads of an mmdet 2.x Mask R-CNN with
    a sigmoid RPN and a ``ConvFCBBoxHead`` of ``box_convs`` shared convs and
    ``box_fcs`` shared fcs: the paper's (``Shared2FCBBoxHead``, no norms) or
    ``configs/mask_rcnn/gcvit_xxt_shapes.py``'s (4conv1fc, GroupNorm in the
    FPN and heads)."""
    f32 = 'float32'

    def conv_gn(name, cin, k):
        if not group_norm:
            return conv(f'{name}.conv', channels, cin, k)
        return [(f'{name}.conv.weight', (channels, cin, k, k), f32),
                (f'{name}.gn.weight', (channels, ), f32),
                (f'{name}.gn.bias', (channels, ), f32)]

    def linear(name, cout, cin):
        return [(f'{name}.weight', (cout, cin), f32),
                (f'{name}.bias', (cout, ), f32)]

    def conv(name, cout, cin, k):
        return [(f'{name}.weight', (cout, cin, k, k), f32),
                (f'{name}.bias', (cout, ), f32)]

    keys = []
    for i, cin in enumerate(in_channels):
        keys += conv_gn(f'neck.lateral_convs.{i}', cin, 1)
    for i in range(len(in_channels)):
        keys += conv_gn(f'neck.fpn_convs.{i}', channels, 3)
    keys += conv('rpn_head.rpn_conv', channels, channels, 3)
    keys += conv('rpn_head.rpn_cls', num_anchors, channels, 1)
    keys += conv('rpn_head.rpn_reg', 4 * num_anchors, channels, 1)
    box = 'roi_head.bbox_head'
    keys += linear(f'{box}.fc_cls', num_classes + 1, fc_channels)
    keys += linear(f'{box}.fc_reg', 4 * num_classes, fc_channels)
    for i in range(box_convs):
        keys += conv_gn(f'{box}.shared_convs.{i}', channels, 3)
    for i in range(box_fcs):
        keys += linear(f'{box}.shared_fcs.{i}', fc_channels,
                       fc_channels if i else channels * roi_size * roi_size)
    mask = 'roi_head.mask_head'
    for i in range(mask_convs):
        keys += conv_gn(f'{mask}.convs.{i}', channels, 3)
    keys += [(f'{mask}.upsample.weight', (channels, channels, 2, 2), f32),
             (f'{mask}.upsample.bias', (channels, ), f32)]
    keys += conv(f'{mask}.conv_logits', num_classes, channels, 1)
    return keys


def mmcv1_checkpoint(state_dict: Dict[str, torch.Tensor],
                     classes: Sequence[str]) -> dict:
    """What mmcv 1.x's ``save_checkpoint`` writes after an mmdet 2.19
    epoch: ``meta`` (versions, classes, config text, epoch), the weights,
    and the AdamW state keyed by parameter index."""
    first = next(iter(state_dict.values()))
    return {
        'meta': dict(mmdet_version='2.19.0', mmcv_version='1.4.8',
                     CLASSES=tuple(classes), epoch=36, iter=72,
                     config="model = dict(type='MaskRCNN')"),
        'state_dict': state_dict,
        'optimizer': {
            'state': {0: dict(step=72, exp_avg=torch.zeros_like(first),
                              exp_avg_sq=torch.zeros_like(first))},
            'param_groups': [dict(lr=1e-6, betas=(0.9, 0.999), eps=1e-8,
                                  weight_decay=0.05, amsgrad=False,
                                  params=[0])]},
    }
