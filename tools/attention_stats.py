# How sharp is a trained GC ViT's attention? Per stage and block type (local,
# global): the entropy of the attention weights on a few validation images,
# and of the relative position bias alone, each divided by log(N) of the
# N-token window, so 1.0 means every query averages its window uniformly and
# 0 means it looks at one token. Also the std of the bias tables (init: 0.02).
#   python tools/attention_stats.py CONFIG CHECKPOINT [--images 8]
# Used for issue 9 (docs/from_scratch.md): after the 800 iterations of the
# toy job the attention is still almost uniform (0.93-1.0).
import argparse
import math
from collections import defaultdict

import torch

from gcvit_mm.utils import fail, load_config, report_user_errors, scope_of


def normalized_entropy(probs: torch.Tensor) -> float:
    """Mean entropy over queries of (..., Nq, N) probabilities / log(N)."""
    ent = -(probs * probs.clamp_min(1e-12).log()).sum(-1)
    return ent.mean().item() / math.log(probs.shape[-1])


def record_attention(attn, name: str, stats: dict) -> None:
    """Wrap ``attn.attend`` (a WindowAttention) so each call also records
    the normalized entropy of its softmax(q k^T / sqrt(d) + bias) and of
    softmax(bias) under ``name``. The wrapped call's result is unchanged."""
    attend = attn.attend

    def attend_and_record(x, global_tokens=None, query_size=None):
        bias = attn._crop_queries(attn.relative_position_bias(),
                                  query_size)  # (1, heads, Nq, N)
        if attn.use_global:
            k = attn._split_heads(attn.kv(x), 2)[0]
            q = attn._global_queries(global_tokens, query_size, x.shape[0])
        else:
            q, k = attn._split_heads(attn.qkv(x), 3).unbind(0)[:2]
            q = attn._crop_queries(q, query_size)
        logits = (q * attn.scale) @ k.transpose(-2, -1) + bias
        stats[name].append((normalized_entropy(logits.softmax(-1)),
                            normalized_entropy(bias.softmax(-1))))
        return attend(x, global_tokens, query_size)

    attn.attend = attend_and_record


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--images', type=int, default=8,
                        help='validation images to run (default 8)')
    args = parser.parse_args(argv)

    with report_user_errors():
        cfg = load_config(args.config, None)
        scope = scope_of(cfg)
    if scope != 'mmdet':
        fail('attention_stats.py runs detection configs (mmdet scope)')
    from mmdet.apis import inference_detector, init_detector
    from mmdet.registry import DATASETS
    if cfg.model.backbone.get('type') == 'GCViT':
        # Every window through WindowAttention.attend, border windows
        # padded as the paper does: entropies over the same N keys
        # everywhere (the default border='fold' attends in border windows
        # with attend_border, over their real tokens and one folded key).
        cfg.model.backbone.border = 'pad'
    model = init_detector(cfg, args.checkpoint, device='cpu')
    backbone = model.backbone
    if not hasattr(backbone, 'stages'):
        fail(f'{args.config}: the backbone is {type(backbone).__name__}, '
             f'not GCViT')
    stats = defaultdict(list)
    for i, stage in enumerate(backbone.stages):
        for block in stage.blocks:
            kind = 'global' if block.use_global else 'local'
            record_attention(block.attn, f'stage {i} {kind}', stats)

    dataset = DATASETS.build(cfg.val_dataloader.dataset)
    paths = [dataset.get_data_info(i)['img_path']
             for i in range(min(args.images, len(dataset)))]
    with torch.no_grad():
        inference_detector(model, paths)

    print(f'{len(paths)} val images; entropy / log(N), 1 = uniform average '
          f'over the window')
    print(f'{"blocks":16s} {"attention":>9s} {"bias alone":>10s} '
          f'{"bias std":>8s}')
    for i, stage in enumerate(backbone.stages):
        for kind in ('local', 'global'):
            name = f'stage {i} {kind}'
            tables = [b.attn.relative_position_bias_table for b in stage.blocks
                      if b.use_global == (kind == 'global')]
            if not stats[name]:
                continue
            attn_ent, bias_ent = (sum(v) / len(v) for v in zip(*stats[name]))
            std = torch.cat([t.flatten() for t in tables]).std().item()
            print(f'{name:16s} {attn_ent:9.3f} {bias_ent:10.3f} {std:8.3f}')


if __name__ == '__main__':
    main()
