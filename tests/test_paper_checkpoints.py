"""Checkpoints in the paper's real layouts load and evaluate here.

The layouts are tests/data/paper_gcvit_layouts.json, dumped from the paper's
own model definitions (see tests/paper_layout.py), so a misreading of the
layout shared by our converter and our test writer
(tests/checkpoint_formats.py) cannot pass: the released ImageNet GC ViT-T
layout (and its early variant) loads through ``init_cfg`` into
``GCViT('tiny')`` with every tensor covered, and a Mask R-CNN trained with
the paper's mmdet 2.19 code converts with tools/convert_checkpoint.py and
evaluates through tools/test.py."""
import hashlib
import os.path as osp

import pytest
import torch

from checkpoint_formats import to_paper
from detection_utils import REPO, run_tool, write_small_config
from gcvit_mm import GCViT
from gcvit_mm.checkpoint import (convert_model_state_dict,
                                 foreign_backbone_format)
from paper_layout import (layout, mmcv1_checkpoint, mmdet2_mask_rcnn_heads,
                          random_state_dict)

RELEASED = 'gcvit_1k_tiny.pth.tar'
EARLY = 'gcvit_1k_tiny.pth.tar, early release'
# Dropped on conversion: the classifier and its norm (dense models put a new
# LayerNorm on every output), and the derived index buffers.
CLASSIFIER_ONLY = ('head.weight', 'head.bias', 'norm.weight', 'norm.bias')


def fingerprint(tensor: torch.Tensor) -> tuple:
    data = tensor.detach().contiguous().numpy().tobytes()
    return tuple(tensor.shape), hashlib.sha1(data).hexdigest()


@pytest.mark.parametrize('name', [RELEASED, EARLY])
def test_released_imagenet_layout_loads_into_gcvit_tiny(tmp_path, name):
    """Every tensor of GCViT('tiny') but the new output norms gets its value
    from the checkpoint, and every tensor of the checkpoint but the
    classifier and the index buffers reaches the model, unchanged."""
    source = random_state_dict(layout(name), seed=1)
    path = tmp_path / 'gcvit_1k_tiny.pth.tar'
    torch.save({'state_dict': source}, path)
    model = GCViT('tiny', init_cfg=dict(type='Pretrained',
                                        checkpoint=str(path)))
    model.init_weights()  # strict: a missing or extra tensor is an error
    expected = {fingerprint(v) for k, v in source.items()
                if k not in CLASSIFIER_ONLY
                and not k.endswith('relative_position_index')}
    loaded = {k: fingerprint(v) for k, v in model.state_dict().items()
              if not k.startswith(('norm0.', 'norm1.', 'norm2.', 'norm3.'))}
    assert len(expected) == len(loaded) == 504 - 4 - 31
    assert set(loaded.values()) == expected
    # and each at its place: written back in the paper's layout by
    # to_paper (whose names are the released file's, see the next test)
    back = to_paper(model.state_dict())['state_dict']
    for key, value in source.items():
        if key not in CLASSIFIER_ONLY and 'relative_position_index' not in key:
            assert torch.equal(back[key.replace('.to_q_global.',
                                                '.q_global_gen.to_q_global.')
                                    if name == EARLY else key], value), key
    # the k/v projection of a global block is 2C wide, a local block's 3C
    blocks = model.stages[2].blocks
    assert torch.equal(blocks[1].attn.kv.weight,
                       source['levels.2.blocks.1.attn.qkv.weight'])
    assert torch.equal(blocks[0].attn.qkv.weight,
                       source['levels.2.blocks.0.attn.qkv.weight'])


def test_our_paper_writer_writes_the_real_layout():
    """tests/checkpoint_formats.to_paper, which the round-trip tests use,
    writes exactly the keys, shapes and dtypes of the released file."""
    ours = to_paper(GCViT('tiny').state_dict())['state_dict']
    written = {(k, tuple(v.shape), str(v.dtype).replace('torch.', ''))
               for k, v in ours.items()}
    assert written == set(layout(RELEASED))


def test_paper_detector_backbone_converts_to_our_detector_keys():
    """The real GC ViT-T layout inside a paper-trained detector (window 24,
    47x47 bias tables, output norms norm0-3) becomes exactly the keys and
    shapes of our window-24 GCViT('tiny'), in place; other tensors stay."""
    source = random_state_dict(layout('mask_rcnn_gcvit_tiny_3x_coco '
                                      'backbone'), prefix='backbone.')
    neck = {'neck.lateral_convs.0.conv.weight': torch.rand(256, 64, 1, 1)}
    converted, fmt, dropped = convert_model_state_dict(
        {**neck, **source, 'rpn_head.rpn_conv.bias': torch.rand(256)})
    assert fmt == 'paper' and len(dropped) == 31
    ours = GCViT('tiny', window_size=24).state_dict()
    keys = list(converted)
    assert keys[0] == 'neck.lateral_convs.0.conv.weight'
    assert keys[-1] == 'rpn_head.rpn_conv.bias'
    assert {k: tuple(v.shape) for k, v in converted.items()
            if k.startswith('backbone.')} == {
                f'backbone.{k}': tuple(v.shape) for k, v in ours.items()}
    table = 'stages.3.blocks.4.attn.relative_position_bias_table'
    assert converted[f'backbone.{table}'].shape == (47 * 47, 16)
    # what tools/test.py asks about a checkpoint (also saved from DDP)
    whole = {**neck, **source}
    assert foreign_backbone_format(whole) == 'paper'
    assert foreign_backbone_format(
        {f'module.{k}': v for k, v in whole.items()}) == 'paper'
    assert foreign_backbone_format(converted) is None
    assert foreign_backbone_format(source) is None  # a backbone alone


def test_paper_mask_rcnn_t_converts_to_our_t_configs_model():
    """The paper's GC ViT-T Mask R-CNN as its mmdet 2.19 code saves it
    (the real backbone layout, mmdet 2.x's 80-class FPN, RPN, 2fc box and
    4conv mask heads) converts into exactly the tensors of the model of
    configs/mask_rcnn/gcvit_t_coco.py: no head is renamed."""
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    paper = [('backbone.' + k, s, d) for k, s, d in
             layout('mask_rcnn_gcvit_tiny_3x_coco backbone')]
    paper += mmdet2_mask_rcnn_heads(
        in_channels=(64, 128, 256, 512), channels=256, num_classes=80,
        num_anchors=3, box_convs=0, box_fcs=2, fc_channels=1024,
        mask_convs=4, group_norm=False)
    converted, _, _ = convert_model_state_dict(
        {k: torch.empty(s) for k, s, _ in paper})
    cfg = Config.fromfile(osp.join(REPO, 'configs/mask_rcnn/gcvit_t_coco.py'))
    cfg.model.backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model)
    assert {k: tuple(v.shape) for k, v in converted.items()} == {
        k: tuple(v.shape) for k, v in model.state_dict().items()}


# A paper-layout key -> where our converted checkpoint must have its value.
SAME_VALUE = {
    'backbone.patch_embed.proj.weight': 'backbone.stem.conv.weight',
    'backbone.patch_embed.conv_down.conv.2.fc.0.weight':
        'backbone.stem.reduce.mbconv.se.fc1.weight',
    'backbone.patch_embed.conv_down.norm1.bias':
        'backbone.stem.reduce.norm1.bias',
    'backbone.patch_embed.conv_down.norm2.weight':
        'backbone.stem.reduce.norm2.weight',
    'backbone.levels.1.downsample.norm1.weight':
        'backbone.stages.2.downsample.norm1.weight',
    'backbone.levels.0.downsample.reduction.weight':
        'backbone.stages.1.downsample.reduction.weight',
    'backbone.levels.2.downsample.norm2.weight':
        'backbone.stages.3.downsample.norm2.weight',
    'backbone.levels.0.q_global_gen.to_q_global.2.conv.3.weight':
        'backbone.stages.0.token_generator.mbconvs.2.pw_conv.weight',
    'backbone.levels.3.q_global_gen.to_q_global.0.conv.0.weight':
        'backbone.stages.3.token_generator.mbconvs.0.dw_conv.weight',
    'backbone.levels.1.blocks.0.attn.qkv.weight':
        'backbone.stages.1.blocks.0.attn.qkv.weight',
    'backbone.levels.1.blocks.1.attn.qkv.bias':
        'backbone.stages.1.blocks.1.attn.kv.bias',
    'backbone.levels.3.blocks.1.attn.relative_position_bias_table':
        'backbone.stages.3.blocks.1.attn.relative_position_bias_table',
    'backbone.levels.2.blocks.1.mlp.fc2.weight':
        'backbone.stages.2.blocks.1.mlp.fc2.weight',
    'backbone.norm3.weight': 'backbone.norm3.weight',
    'neck.fpn_convs.3.gn.bias': 'neck.fpn_convs.3.gn.bias',
    'rpn_head.rpn_reg.weight': 'rpn_head.rpn_reg.weight',
    'roi_head.bbox_head.fc_cls.weight': 'roi_head.bbox_head.fc_cls.weight',
    'roi_head.mask_head.upsample.weight': 'roi_head.mask_head.upsample.weight',
}


@pytest.fixture(scope='module')
def paper_detector(tmp_path_factory, tiny_toy_data):
    """A small Mask R-CNN as the paper's mmdet 2.19 code saves it (the
    small-config arch at window 24; the toy config's heads), its conversion,
    and tools/test.py on both."""
    tmp = tmp_path_factory.mktemp('paper_detector')
    state = random_state_dict(layout('small detector backbone, window 24'),
                              prefix='backbone.')
    state.update(random_state_dict(mmdet2_mask_rcnn_heads(
        in_channels=(32, 64, 128, 256), channels=128, num_classes=3,
        num_anchors=3, box_convs=4, box_fcs=1, fc_channels=512, mask_convs=2,
        group_norm=True), seed=2))
    src, dst = tmp / 'paper_mask_rcnn.pth', tmp / 'mask_rcnn_mm.pth'
    torch.save(mmcv1_checkpoint(state, ('circle', 'square', 'triangle')), src)
    cfg = write_small_config(tmp / 'small.py', 'mask_rcnn')
    # window 24, as the paper's detectors; the 2 first validation images
    options = ['--cfg-options', 'model.backbone.window_size=24',
               'test_dataloader.dataset.indices=2']
    runs = dict(
        before=run_tool(['test.py', cfg, src, '--work-dir', tmp / 'w0'] +
                        options, tiny_toy_data),
        convert=run_tool(['convert_checkpoint.py', src, dst], tiny_toy_data),
        after=run_tool(['test.py', cfg, dst, '--work-dir', tmp / 'w1'] +
                       options, tiny_toy_data))
    return state, src, dst, runs


def test_paper_detector_unconverted_is_refused_naming_the_converter(
        paper_detector):
    _, src, _, runs = paper_detector
    result = runs['before']
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    errors = [line for line in result.stderr.splitlines() if 'error:' in line]
    assert len(errors) == 1 and errors[0].startswith('error: '), errors
    assert (f"checkpoint '{src}' holds a GC ViT backbone in the paper's "
            f'layout; convert it first: python tools/convert_checkpoint.py '
            f'{src} converted.pth, then use converted.pth') in errors[0]
    assert 'coco/bbox_mAP' not in result.stdout


def test_paper_detector_converts_and_evaluates(paper_detector):
    state, src, dst, runs = paper_detector
    convert, test = runs['convert'], runs['after']
    assert convert.returncode == 0, convert.stderr[-3000:]
    assert convert.stdout.strip() == (
        f'{src}: paper format, a whole model: 178 backbone tensors in our '
        f'layout, 58 other tensors kept as they were; dropped 8 '
        f'relative_position_index buffers (derived); not copied: optimizer '
        f'-> {dst}')
    saved = torch.load(dst, weights_only=True)
    converted = saved['state_dict']
    for paper_key, our_key in SAME_VALUE.items():
        assert torch.equal(converted[our_key], state[paper_key]), paper_key
    # every tensor but the index buffers arrives once, with its value
    kept = [fingerprint(v) for k, v in state.items()
            if not k.endswith('relative_position_index')]
    assert sorted(kept) == sorted(fingerprint(v) for v in converted.values())
    assert saved['meta']['CLASSES'] == ('circle', 'square', 'triangle')
    assert (saved['meta']['format'], saved['meta']['source']) == (
        'paper', str(src))

    assert test.returncode == 0, test.stderr[-3000:]
    out = test.stdout + test.stderr
    assert 'coco/bbox_mAP: ' in out and 'coco/segm_mAP: ' in out, out[-3000:]
