"""Write our state dict in the paper's and timm's layouts, for tests.

Written from the two layouts' descriptions (REFERENCE.md), independently of
gcvit_mm.checkpoint.convert, so a mapping bug there cannot hide here.
"""
import re
from typing import Dict

import torch

from gcvit_mm.models.layers.window_attention import relative_position_index

_PAPER_MBCONV = {'dw_conv': 'conv.0', 'se.fc1': 'conv.2.fc.0',
                 'se.fc2': 'conv.2.fc.2', 'pw_conv': 'conv.3'}
_TIMM_MBCONV = {'dw_conv': 'conv_dw', 'se.fc1': 'se.fc1', 'se.fc2': 'se.fc2',
                'pw_conv': 'conv_pw'}


def _mbconv(rest: str, table: Dict[str, str]) -> str:
    for ours, theirs in table.items():
        if rest.startswith(ours + '.'):
            return theirs + rest[len(ours):]
    raise KeyError(rest)


def _classifier_keys(sd, dim, norm_key, head_key):
    sd[f'{norm_key}.weight'] = torch.ones(dim)
    sd[f'{norm_key}.bias'] = torch.zeros(dim)
    sd[f'{head_key}.weight'] = torch.zeros(1000, dim)
    sd[f'{head_key}.bias'] = torch.zeros(1000)


def to_paper(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    out = {}
    for key, value in state_dict.items():
        if re.match(r'^norm\d\.', key):
            continue  # dense-only output norms
        if key.startswith('stem.conv.'):
            key = 'patch_embed.proj.' + key[len('stem.conv.'):]
        elif key.startswith('stem.reduce.'):
            key = 'patch_embed.conv_down.' + key[len('stem.reduce.'):]
        elif m := re.match(r'^stages\.(\d+)\.downsample\.(.*)$', key):
            key = f'levels.{int(m[1]) - 1}.downsample.{m[2]}'
        elif m := re.match(r'^stages\.(\d+)\.token_generator\.mbconvs\.(\d+)'
                           r'\.(.*)$', key):
            key = (f'levels.{m[1]}.q_global_gen.to_q_global.{m[2]}.'
                   f'{_mbconv(m[3], _PAPER_MBCONV)}')
        elif m := re.match(r'^stages\.(\d+)\.blocks\.(.*)$', key):
            key = f'levels.{m[1]}.blocks.{m[2]}'.replace('.attn.kv.',
                                                         '.attn.qkv.')
        if '.mbconv.' in key:
            head, rest = key.split('.mbconv.')
            key = f'{head}.{_mbconv(rest, _PAPER_MBCONV)}'
        out[key] = value.clone()
        if key.endswith('relative_position_bias_table'):
            side = int(value.shape[0]**0.5)
            out[key.replace('bias_table', 'index')] = relative_position_index(
                (side + 1) // 2)
    _classifier_keys(out, state_dict['norm3.weight'].numel(), 'norm', 'head')
    return {'state_dict': out, 'epoch': 310,
            'args': __import__('argparse').Namespace(model='gc_vit')}


def to_timm(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    out = {}
    for key, value in state_dict.items():
        if re.match(r'^norm\d\.', key):
            continue
        key = re.sub(r'^stem\.conv\.', 'stem.conv1.', key)
        key = re.sub(r'^stem\.reduce\.', 'stem.down.', key)
        if m := re.match(r'^(stages\.\d+)\.token_generator\.mbconvs\.(\d+)\.'
                         r'(.*)$', key):
            key = (f'{m[1]}.global_block.blocks.conv{int(m[2]) + 1}.'
                   f'{_mbconv(m[3], _TIMM_MBCONV)}')
        if '.mbconv.' in key:
            head, rest = key.split('.mbconv.')
            key = f'{head}.conv_block.{_mbconv(rest, _TIMM_MBCONV)}'
        key = key.replace('.attn.kv.', '.attn.qkv.')
        key = key.replace('.attn.relative_position_bias_table',
                          '.attn.rel_pos.relative_position_bias_table')
        key = re.sub(r'\.gamma([12])$', r'.ls\1.gamma', key)
        if '.se.fc' in key:
            value = value[:, :, None, None]  # timm's SE uses 1x1 convs
        out[key] = value.clone()
    _classifier_keys(out, state_dict['norm3.weight'].numel(), 'stages.3.norm',
                     'head.fc')
    return out
