"""Convert a GC ViT checkpoint to gcvit_mm's layout: an ImageNet one (the
paper's or timm's format), or a whole detector or segmentor whose backbone is
in the paper's layout (e.g. trained with the paper's mmdet 2.19 code).

Usage:
    python tools/convert_checkpoint.py gcvit_1k_tiny.pth.tar gcvit_t_mm.pth
    python tools/convert_checkpoint.py paper_mask_rcnn.pth mask_rcnn_mm.pth

Offline and safe: the source is read with ``torch.load(weights_only=True)``.
An ImageNet checkpoint becomes ``{'state_dict': ..., 'meta': {...}}`` for
``init_cfg=dict(type='Pretrained', checkpoint='gcvit_t_mm.pth')``. A whole
model keeps every tensor outside its backbone (and its ``meta``), renamed
only in the backbone, so that ``python tools/test.py CONFIG mask_rcnn_mm.pth``
evaluates it and ``load_from`` fine-tunes from it.
"""
import argparse
import os
import sys

import torch

from gcvit_mm.checkpoint.convert_file import convert_checkpoint
from gcvit_mm.checkpoint.load import load_checkpoint_file


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='paper (levels.*) or timm (stages.*) '
                        'checkpoint, or a detector/segmentor with such a '
                        'backbone: local path or http(s) URL')
    parser.add_argument('dst', help='output .pth path')
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    try:
        checkpoint, summary = convert_checkpoint(
            load_checkpoint_file(args.src), args.src)
    except (ValueError, FileNotFoundError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    os.makedirs(os.path.dirname(os.path.abspath(args.dst)), exist_ok=True)
    torch.save(checkpoint, args.dst)
    print(f'{args.src}: {summary} -> {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
