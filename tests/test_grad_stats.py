"""tools/grad_stats.py: every trainable parameter is in one group, and the
update it reports is the one AdamW's first step must make."""
import math

import pytest

from detection_utils import load_tool, write_small_config
from gcvit_mm.engine.hooks.grad_stats_hook import group_of

TOOL = load_tool('grad_stats')


def test_gcvit_parameters_are_grouped_by_stage_and_block_type():
    assert [group_of(n) for n in (
        'backbone.stages.2.blocks.3.attn.kv.weight',
        'backbone.stages.2.blocks.4.mlp.fc1.bias',
        'backbone.stages.0.blocks.0.norm1.weight',
        'backbone.stages.1.downsample.reduction.weight',
        'backbone.stages.3.token_generator.mbconvs.0.dw_conv.weight',
        'backbone.stem.conv.weight', 'backbone.layer3.0.conv1.weight',
        'roi_head.bbox_head.fc_cls.weight')] == [
            'backbone.stage2.global.attention', 'backbone.stage2.local.mlp',
            'backbone.stage0.local.norms', 'backbone.stage1.downsample',
            'backbone.stage3.token_generator', 'backbone.stem',
            'backbone.layer3', 'roi_head']


def test_first_step_update_is_adamw_lr_per_element(tmp_path, monkeypatch,
                                                   tiny_toy_data):
    monkeypatch.setenv('GCVIT_MM_DATA', tiny_toy_data)
    cfg = write_small_config(tmp_path / 'small.py', 'mask_rcnn')
    hook = TOOL.main([cfg, '--iters', '1'])
    # Every trainable parameter counted once.
    from mmdet.apis import init_detector
    model = init_detector(cfg, None, device='cpu')
    assert sum(hook.numel.values()) == sum(
        p.numel() for p in model.parameters() if p.requires_grad)
    assert {f'backbone.stage{i}.{k}.{p}' for i in range(4)
            for k in ('local', 'global')
            for p in ('attention', 'mlp', 'norms')} <= set(hook.grad)
    # Adam's first step moves every element with a gradient by lr (m / sqrt(v)
    # = g / |g|); LayerNorm weights start at 1 and biases at 0 and have no
    # weight decay, so |update| / |w| = lr * sqrt(2C) / sqrt(C) = lr * sqrt(2).
    # lr = 4e-4 x the warm-up's start factor 0.01. Tolerance 1%: a float32
    # weight at 1.0 moves in steps of its ulp (6e-8 down, 1.2e-7 up), so
    # 4e-6 becomes 67 or 34 ulps (up to 1.5% off per element).
    for i in range(4):
        ratio = hook.update[f'backbone.stage{i}.local.norms'][0]
        assert ratio == pytest.approx(4e-6 * math.sqrt(2), rel=1e-2)
        assert all(g[0] > 0 for g in hook.grad.values())
