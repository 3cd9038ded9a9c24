"""Key conversion from the paper's and timm's GC ViT checkpoints to ours.

Our layout (``GCViT.state_dict()``)::

    stem.conv, stem.reduce.{norm1, mbconv.{dw_conv, se.fc1, se.fc2, pw_conv},
                            reduction, norm2}
    stages.{i}.downsample.*            (ReduceSize, stages 1..3)
    stages.{i}.token_generator.mbconvs.{k}.*
    stages.{i}.blocks.{j}.{norm1, attn.qkv | attn.kv, attn.proj,
                           attn.relative_position_bias_table, norm2,
                           mlp.fc1, mlp.fc2, gamma1, gamma2}
    norm{i}                            (output norms, new for dense tasks)

Paper format: ``patch_embed.*``, ``levels.{i}.*`` with the down-sampler at
the *end* of level i, ``[q_global_gen.]to_q_global.{k}.conv.*``, persistent
``relative_position_index`` buffers, SE as Linear. timm format: ``stem.*``,
``stages.{i}.*`` with the down-sampler at the *start* of stage i (as ours),
``global_block.blocks.conv{k+1}``, ``rel_pos.*``, ``ls{1,2}.gamma``, SE as
1x1 conv. Both name the global blocks' k/v projection ``qkv``; we call it
``kv``. Classification-only keys (``head.*`` and the final ``norm``) are
dropped: dense models put a fresh LayerNorm on every output.

A whole detector's or segmentor's state dict (the paper's detection code,
mmdet 2.19, saves ``backbone.patch_embed.*``, ``backbone.levels.*`` and
``backbone.norm{0..3}`` next to ``neck.*``, ``rpn_head.*``, ``roi_head.*``)
converts with :func:`convert_model_state_dict`: the backbone part is renamed
in place, every other tensor is kept as it is. No head needs a rename: mmdet
3.x names the FPN, RPN and RoI heads of Mask R-CNN and Cascade Mask R-CNN as
mmdet 2.x did (its model zoo serves the 2.x checkpoints of those models, e.g.
``configs/swin/metafile.yml``), and mmseg 1.x names UperNet's as mmseg 0.x
(``configs/swin/metafile.yaml`` serves v0.5 checkpoints).
"""
import re
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import torch

PAPER, TIMM, OURS = 'paper', 'timm', 'gcvit_mm'

# Inside fused-MBConv units (stem, down-samplers, token generators).
_PAPER_MBCONV = [(r'\.conv\.0\.', '.mbconv.dw_conv.'),
                 (r'\.conv\.2\.fc\.0\.', '.mbconv.se.fc1.'),
                 (r'\.conv\.2\.fc\.2\.', '.mbconv.se.fc2.'),
                 (r'\.conv\.3\.', '.mbconv.pw_conv.')]
_TIMM_MBCONV = [(r'\.conv_block\.conv_dw\.', '.mbconv.dw_conv.'),
                (r'\.conv_block\.se\.fc1\.', '.mbconv.se.fc1.'),
                (r'\.conv_block\.se\.fc2\.', '.mbconv.se.fc2.'),
                (r'\.conv_block\.conv_pw\.', '.mbconv.pw_conv.')]

_RULES = {
    PAPER: [
        (r'^patch_embed\.proj\.', 'stem.conv.'),
        (r'^patch_embed\.conv_down\.', 'stem.reduce.'),
        (r'^levels\.(\d+)\.downsample\.',
         lambda m: f'stages.{int(m.group(1)) + 1}.downsample.'),
        # Later releases wrap the generator in `q_global_gen`; early ones
        # hang `to_q_global` on the level directly.
        (r'^levels\.(\d+)\.(?:q_global_gen\.)?to_q_global\.(\d+)\.conv\.',
         r'stages.\1.token_generator.mbconvs.\2.conv.'),
        (r'^levels\.(\d+)\.blocks\.', r'stages.\1.blocks.'),
    ] + _PAPER_MBCONV,
    TIMM: [
        (r'^stem\.conv1\.', 'stem.conv.'),
        (r'^stem\.down\.', 'stem.reduce.'),
        (r'^stages\.(\d+)\.global_block\.blocks\.conv(\d+)\.',
         lambda m: f'stages.{m.group(1)}.token_generator.mbconvs.'
         f'{int(m.group(2)) - 1}.conv_block.'),
        (r'\.attn\.rel_pos\.', '.attn.'),
        (r'\.ls1\.gamma$', '.gamma1'),
        (r'\.ls2\.gamma$', '.gamma2'),
    ] + _TIMM_MBCONV,
}

# Keys that only serve ImageNet classification or are derived buffers.
_DROP = {
    PAPER: re.compile(r'^(head\.|norm\.)|relative_position_index$'),
    TIMM: re.compile(r'^(head\.|stages\.3\.norm\.)'
                     r'|relative_position_index$'),
    OURS: re.compile(r'relative_position_index$'),
}

# Token generators hold bare fused-MBConvs: the level rules above map them to
# `mbconvs.{k}.conv.` (paper) / `mbconvs.{k}.conv_block.` (timm) so that the
# shared fused-MBConv rules apply, and this drops the extra `mbconv.` level.
_GENERATOR_FIXUP = (r'\.mbconvs\.(\d+)\.mbconv\.', r'.mbconvs.\1.')


def detect_format(state_dict: Dict[str, torch.Tensor]) -> str:
    """Tell the paper's, timm's and our key layouts apart."""
    keys = list(state_dict)
    if any(k.startswith(('levels.', 'patch_embed.')) for k in keys):
        return PAPER
    if any(k.startswith('stem.conv1.') or '.global_block.' in k
           for k in keys):
        return TIMM
    if any(k.startswith('stem.conv.') or '.token_generator.' in k
           for k in keys):
        return OURS
    raise ValueError(
        'Not a GC ViT checkpoint: expected keys like `levels.*` (paper), '
        '`stages.*.global_block.*` (timm) or `stages.*.token_generator.*` '
        f'(gcvit_mm); first keys are {keys[:5]}')


BACKBONE = 'backbone.'


def strip_prefixes(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Unwrap DDP ``module.`` and detector ``backbone.`` prefixes."""
    if any(k.startswith(BACKBONE) for k in state_dict):
        state_dict = {
            k[len(BACKBONE):]: v
            for k, v in state_dict.items() if k.startswith(BACKBONE)
        }
    return _strip_ddp(state_dict)


def _strip_ddp(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    if state_dict and all(k.startswith('module.') for k in state_dict):
        state_dict = {k[len('module.'):]: v for k, v in state_dict.items()}
    return state_dict


def _rename(key: str, rules: List[Tuple]) -> str:
    for pattern, repl in rules:
        key = re.sub(pattern, repl, key)
    return re.sub(*_GENERATOR_FIXUP, key)


def convert_state_dict(
        state_dict: Dict[str, torch.Tensor]
) -> Tuple[Dict[str, torch.Tensor], str, List[str]]:
    """Convert a paper/timm/our GC ViT state dict to our layout.

    Returns:
        (converted state dict, detected format, dropped keys).
    """
    state_dict = strip_prefixes(state_dict)
    fmt = detect_format(state_dict)
    converted: Dict[str, torch.Tensor] = OrderedDict()
    dropped = []
    for key, value in state_dict.items():
        if _DROP[fmt].search(key):
            dropped.append(key)
            continue
        if fmt != OURS:
            key = _rename(key, _RULES[fmt])
            if '.se.fc' in key and value.dim() == 4:
                value = value.flatten(1)  # timm's 1x1 conv -> Linear
        converted[key] = value
    _rename_global_kv(converted)
    return converted, fmt, dropped


def _rename_global_kv(state_dict: Dict[str, torch.Tensor]) -> None:
    """Global (odd) blocks project only k, v: ``attn.qkv`` -> ``attn.kv``."""
    for key in list(state_dict):
        m = re.match(r'^(stages\.\d+\.blocks\.(\d+)\.attn\.)qkv\.(.*)$', key)
        if m and int(m.group(2)) % 2 == 1:
            state_dict[f'{m.group(1)}kv.{m.group(3)}'] = state_dict.pop(key)


def is_model_state_dict(state_dict: Dict[str, torch.Tensor]) -> bool:
    """Whether a state dict holds a whole model (``backbone.*`` next to
    other tensors, e.g. a detector's) rather than a backbone alone."""
    keys = list(_strip_ddp(state_dict))
    return (any(k.startswith(BACKBONE) for k in keys)
            and not all(k.startswith(BACKBONE) for k in keys))


def foreign_backbone_format(
        state_dict: Dict[str, torch.Tensor]) -> Optional[str]:
    """``'paper'`` or ``'timm'`` when the GC ViT backbone of a whole model's
    state dict is in that layout (it needs :func:`convert_model_state_dict`
    before it fits our GCViT); None for ours, or for no GC ViT backbone."""
    if not is_model_state_dict(state_dict):
        return None
    try:
        fmt = detect_format(strip_prefixes(_strip_ddp(state_dict)))
    except ValueError:
        return None
    return None if fmt == OURS else fmt


def convert_model_state_dict(
        state_dict: Dict[str, torch.Tensor]
) -> Tuple[Dict[str, torch.Tensor], str, List[str]]:
    """Convert the GC ViT backbone inside a whole model's state dict (a
    detector's or segmentor's, e.g. one trained with the paper's mmdet 2.19
    code) to our layout, in place: ``backbone.*`` renamed by
    :func:`convert_state_dict` at the position of the old backbone keys,
    every other tensor (neck, heads) kept with its name and value.

    Returns:
        (converted state dict, the backbone's format, dropped keys with
        their ``backbone.`` prefix: the derived ``relative_position_index``
        buffers).

    Raises:
        ValueError: no ``backbone.*`` tensors, or not a GC ViT backbone.
    """
    state_dict = _strip_ddp(state_dict)
    if not any(k.startswith(BACKBONE) for k in state_dict):
        raise ValueError('not a whole model: no `backbone.*` tensors')
    backbone, fmt, dropped = convert_state_dict(strip_prefixes(state_dict))
    converted: Dict[str, torch.Tensor] = OrderedDict()
    for key, value in state_dict.items():
        if not key.startswith(BACKBONE):
            converted[key] = value
        elif backbone:  # the first backbone key: all of them go here
            converted.update((BACKBONE + k, v) for k, v in backbone.items())
            backbone = {}
    return converted, fmt, [BACKBONE + k for k in dropped]
