"""Convert a GC ViT checkpoint (the paper's or timm's format) to gcvit_mm's.

Usage:
    python tools/convert_checkpoint.py gcvit_1k_tiny.pth.tar gcvit_t_mm.pth

Offline and safe: the source is read with ``torch.load(weights_only=True)``.
The output holds ``{'state_dict': ..., 'meta': {...}}`` and loads with
``init_cfg=dict(type='Pretrained', checkpoint='gcvit_t_mm.pth')``.
"""
import argparse
import os
import sys

import torch

from gcvit_mm.checkpoint import convert_state_dict
from gcvit_mm.checkpoint.load import extract_state_dict, load_checkpoint_file


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='paper (levels.*) or timm (stages.*) '
                        'checkpoint: local path or http(s) URL')
    parser.add_argument('dst', help='output .pth path')
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    try:
        raw = extract_state_dict(load_checkpoint_file(args.src))
        state_dict, fmt, dropped = convert_state_dict(raw)
    except (ValueError, FileNotFoundError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    os.makedirs(os.path.dirname(os.path.abspath(args.dst)), exist_ok=True)
    torch.save(
        dict(state_dict=state_dict, meta=dict(source=args.src, format=fmt)),
        args.dst)
    print(f'{args.src}: {fmt} format, {len(state_dict)} tensors -> '
          f'{args.dst} (dropped {len(dropped)}: {", ".join(dropped) or "-"})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
