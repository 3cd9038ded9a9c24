"""Our GC ViT-T COCO configs against the paper's released ones, setting by
setting.

The paper's repository (NVlabs/GCVit, commit 8e1941f) releases two detection
configs for mmdet 2.19, both GC ViT-T: Mask R-CNN and Cascade Mask R-CNN.
Each row below is one setting: the paper's file that sets it (under
``detection/``), what that file says, the path of the same setting in our
mmdet 3.x config, and the value both have. The values are facts read from the
paper's files, written in mmdet 3.x's vocabulary where it renamed things
(``AutoAugment`` -> ``RandomChoice``, ``Resize(multiscale_mode='value')`` ->
``RandomChoiceResize``, ``Normalize``/``Pad`` -> the data preprocessor,
``lr_config`` -> ``param_scheduler``). The few rows where ours differs on
purpose say ``DIFFERS`` and docs/detection.md gives the reason. Every setting
of our model config is covered by a row (the test fails on a new one).
"""
import inspect
import os.path as osp
from collections import namedtuple

import pytest
import torch
from mmengine.config import Config

from detection_utils import REPO

Row = namedtuple('Row', 'paper_file paper_says path value')
ABSENT = '<not set>'  # the setting must not be in our config
DIFFERS = 'DIFFERS: '  # prefix of paper_says: ours differs, docs say why

MASK = 'configs/gcvit/mask_rcnn_gcvit_tiny_3x_coco.py'
CASCADE = 'configs/gcvit/cascade_mask_rcnn_gcvit_tiny_3x_coco.py'
MASK_MODEL = 'configs/_base_/models/mask_rcnn_gcvit.py'
CASCADE_MODEL = 'configs/_base_/models/cascade_mask_rcnn_gcvit.py'
DATA = 'configs/_base_/datasets/coco_instance.py'
SCHEDULE = 'configs/_base_/schedules/schedule_3x.py'
RUNTIME = 'configs/_base_/default_runtime.py'
BACKBONE = 'models/gc_vit.py'  # the detection GCViT's defaults

OURS = {
    'mask_rcnn': 'configs/mask_rcnn/gcvit_t_coco.py',
    'cascade': 'configs/cascade/gcvit_t_coco.py',
}

SCALES = [(480, 1333), (512, 1333), (544, 1333), (576, 1333), (608, 1333),
          (640, 1333), (672, 1333), (704, 1333), (736, 1333), (768, 1333),
          (800, 1333)]


def backbone_rows(config):
    return [
        Row(config, "type='GCViT', dim=64, depths=[3, 4, 19, 5], "
            'num_heads=[2, 4, 8, 16], mlp_ratio=3.0 (GC ViT-T)',
            'model.backbone', dict(type='GCViT', arch='tiny')),
        Row(config, 'drop_path_rate=0.2', 'model.backbone.drop_path_rate',
            0.2),
        Row(BACKBONE, 'window_size=(24, 24, 24, 24), resolution=224, '
            'window_size_pre=(7, 7, 14, 7) (bias tables resized from '
            'the ImageNet windows)', 'model.backbone',
            dict(window_size=24, pretrain_img_size=224,
                 pretrain_window_size=None)),
        Row(config, 'out_indices=(0, 1, 2, 3), qkv_bias=True, drop_rate=0., '
            'attn_drop_rate=0., frozen_stages=-1', 'model.backbone',
            dict(out_indices=(0, 1, 2, 3), qkv_bias=True, drop_rate=0.,
                 attn_drop_rate=0., frozen_stages=-1)),
        Row(BACKBONE, 'no gradient checkpointing', 'model.backbone.with_cp',
            False),
        Row(config, DIFFERS + "pretrained='./gcvit_tiny_best_1k.pth.tar' "
            '(a local file)', 'model.backbone.init_cfg',
            dict(type='Pretrained', checkpoint='https://huggingface.co/'
                 'nvidia/GCViT/resolve/main/gcvit_1k_tiny.pth.tar')),
        Row(config, 'neck=dict(in_channels=[64, 128, 256, 512])',
            'model.neck.in_channels', [64, 128, 256, 512]),
    ]


def data_rows(config):
    crop_branch = 'train_dataloader.dataset.pipeline.3.transforms.1'
    return [
        Row(DATA, "img_norm_cfg mean, std, to_rgb=True; Pad(size_divisor=32)"
            ' (masks too)', 'model.data_preprocessor',
            dict(type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
                 std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_mask=True,
                 pad_size_divisor=32)),
        Row(config, 'LoadImageFromFile, LoadAnnotations(with_bbox, '
            'with_mask), RandomFlip(flip_ratio=0.5), AutoAugment(2 policies)',
            'train_dataloader.dataset.pipeline',
            {'0.type': 'LoadImageFromFile', '1.type': 'LoadAnnotations',
             '1.with_bbox': True, '1.with_mask': True,
             '2.type': 'RandomFlip', '2.prob': 0.5, '3.type': 'RandomChoice',
             '4.type': 'PackDetInputs', 'length': 5}),
        Row(config, 'policy 1: Resize(img_scale=[(480, 1333) .. (800, '
            "1333)] step 32, multiscale_mode='value', keep_ratio=True)",
            'train_dataloader.dataset.pipeline.3.transforms.0',
            {'0.type': 'RandomChoiceResize', '0.scales': SCALES,
             '0.keep_ratio': True, 'length': 1}),
        Row(config, 'policy 2: Resize([(400, 1333), (500, 1333), (600, '
            "1333)]), RandomCrop(crop_type='absolute_range', crop_size=(384,"
            ' 600), allow_negative_crop=True), Resize(the policy 1 scales, '
            'override=True)', crop_branch,
            {'0.type': 'RandomChoiceResize',
             '0.scales': [(400, 1333), (500, 1333), (600, 1333)],
             '0.keep_ratio': True, '1.type': 'RandomCrop',
             '1.crop_type': 'absolute_range', '1.crop_size': (384, 600),
             '1.allow_negative_crop': True, '2.type': 'RandomChoiceResize',
             '2.scales': SCALES, '2.keep_ratio': True, 'length': 3}),
        Row(DATA, 'samples_per_gpu=2, workers_per_gpu=2', 'train_dataloader',
            dict(batch_size=2, num_workers=2)),
        Row(DATA, "CocoDataset, instances_train2017.json, filter of mmdet "
            "2.x's CocoDataset (no empty images, min side 32)",
            'train_dataloader.dataset',
            {'type': 'CocoDataset',
             'ann_file': 'annotations/instances_train2017.json',
             'filter_cfg.filter_empty_gt': True, 'filter_cfg.min_size': 32}),
        Row(DATA, "test: MultiScaleFlipAug(img_scale=(1333, 800), flip="
            'False, Resize(keep_ratio=True)); 1 image per GPU',
            'test_dataloader',
            {'batch_size': 1, 'dataset.pipeline.1.type': 'Resize',
             'dataset.pipeline.1.scale': (1333, 800),
             'dataset.pipeline.1.keep_ratio': True,
             'dataset.ann_file': 'annotations/instances_val2017.json'}),
        Row(DATA, "evaluation = dict(metric=['bbox', 'segm'])",
            'val_evaluator', dict(type='CocoMetric', metric=['bbox', 'segm'])),
    ]


def schedule_rows(config):
    return [
        Row(SCHEDULE, "warmup='linear', warmup_iters=2500, "
            'warmup_ratio=0.001', 'param_scheduler.0',
            dict(type='LinearLR', start_factor=0.001, by_epoch=False,
                 begin=0, end=2500)),
        Row(config, "lr_config = dict(step=[27, 33]) (policy 'step', gamma "
            '0.1)', 'param_scheduler.1',
            dict(type='MultiStepLR', by_epoch=True, milestones=[27, 33],
                 gamma=0.1, begin=0, end=36)),
        Row(SCHEDULE, "runner = dict(type='EpochBasedRunner', max_epochs=36);"
            ' evaluation every epoch', 'train_cfg',
            dict(type='EpochBasedTrainLoop', max_epochs=36, val_interval=1)),
        Row(config, "type='AdamW', lr=0.0001, betas=(0.9, 0.999), "
            'weight_decay=0.05', 'optim_wrapper.optimizer',
            dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999),
                 weight_decay=0.05)),
        Row(SCHEDULE, 'optimizer_config = dict(grad_clip=None)',
            'optim_wrapper.clip_grad', ABSENT),
        Row(RUNTIME, 'checkpoint_config = dict(interval=1); TextLoggerHook '
            'interval=50', 'default_hooks',
            {'checkpoint.interval': 1, 'logger.interval': 50}),
    ]


def mask_rcnn_rows():
    model = MASK_MODEL
    return backbone_rows(MASK) + data_rows(MASK) + schedule_rows(MASK) + [
        Row(MASK, "paramwise_cfg custom_keys {'rpb': decay_mult=0., 'norm': "
            "decay_mult=0.}; 'rpb' matches no parameter, so the bias tables "
            'are decayed', 'optim_wrapper.paramwise_cfg',
            {'custom_keys': {'norm': dict(decay_mult=0.)},
             'norm_decay_mult': ABSENT, 'bias_decay_mult': ABSENT}),
        Row(MASK, "optimizer_config type='Fp16OptimizerHook', grad_clip=None"
            ' (mmcv 1.x: static loss scale 512)', 'optim_wrapper',
            dict(type='AmpOptimWrapper', loss_scale=512.)),
        Row(model, "type='MaskRCNN'", 'model.type', 'MaskRCNN'),
    ] + two_stage_rows(model, rpn_loss=dict(type='L1Loss', loss_weight=1.0),
                       allowed_border=-1, proposals=1000) + [
        Row(model, 'StandardRoIHead, Shared2FCBBoxHead(fc_out_channels=1024'
            ', roi_feat_size=7, num_classes=80, reg_class_agnostic=False), '
            'L1Loss', 'model.roi_head',
            {'type': 'StandardRoIHead', 'bbox_head.type': 'Shared2FCBBoxHead',
             'bbox_head.in_channels': 256, 'bbox_head.fc_out_channels': 1024,
             'bbox_head.roi_feat_size': 7, 'bbox_head.num_classes': 80,
             'bbox_head.bbox_coder.type': 'DeltaXYWHBBoxCoder',
             'bbox_head.bbox_coder.target_means': [0.] * 4,
             'bbox_head.bbox_coder.target_stds': [0.1, 0.1, 0.2, 0.2],
             'bbox_head.reg_class_agnostic': False,
             'bbox_head.loss_cls': dict(type='CrossEntropyLoss',
                                        use_sigmoid=False, loss_weight=1.0),
             'bbox_head.loss_bbox': dict(type='L1Loss', loss_weight=1.0)}),
        Row(model, 'rcnn: MaxIoUAssigner(0.5, 0.5, 0.5, match_low_quality='
            'True), RandomSampler(512, 0.25), mask_size=28',
            'model.train_cfg.rcnn', rcnn_train(0.5, match_low_quality=True)),
    ]


def cascade_rows():
    model = CASCADE_MODEL
    rows = backbone_rows(CASCADE) + data_rows(CASCADE) + schedule_rows(
        CASCADE) + [
        Row(CASCADE, "paramwise_cfg custom_keys {'relative_position_bias_"
            "table': decay_mult=0., 'norm': decay_mult=0.}",
            'optim_wrapper.paramwise_cfg',
            {'custom_keys': {'relative_position_bias_table':
                             dict(decay_mult=0.), 'norm': dict(decay_mult=0.)},
             'norm_decay_mult': ABSENT, 'bias_decay_mult': ABSENT}),
        Row(SCHEDULE, 'no fp16 and no Fp16OptimizerHook: fp32',
            'optim_wrapper', dict(type='OptimWrapper', loss_scale=ABSENT)),
        Row(model, "type='CascadeRCNN'", 'model.type', 'CascadeRCNN'),
        Row(model, "CascadeRoIHead, num_stages=3, stage_loss_weights=[1, "
            '0.5, 0.25]', 'model.roi_head',
            dict(type='CascadeRoIHead', num_stages=3,
                 stage_loss_weights=[1, 0.5, 0.25])),
    ] + two_stage_rows(model, rpn_loss=dict(type='SmoothL1Loss',
                                            beta=1.0 / 9.0, loss_weight=1.0),
                       allowed_border=0, proposals=2000) + [
        Row(model, DIFFERS + 'nms_across_levels=False, nms_post=2000 '
            "(mmdet 2.19's RPNHead reads neither; mmdet 3.x has neither)",
            'model.train_cfg.rpn_proposal',
            dict(nms_across_levels=ABSENT, nms_post=ABSENT)),
        Row(model, DIFFERS + 'test rpn: nms_across_levels=False, '
            'nms_post=1000 (read by neither mmdet)', 'model.test_cfg.rpn',
            dict(nms_across_levels=ABSENT, nms_post=ABSENT)),
    ]
    stds = [[0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1],
            [0.033, 0.033, 0.067, 0.067]]
    for i, iou in enumerate((0.5, 0.6, 0.7)):
        rows += [
            Row(CASCADE, f'bbox_head[{i}]: ConvFCBBoxHead(num_shared_convs=4, '
                'num_shared_fcs=1, conv_out_channels=256, fc_out_channels='
                "1024, reg_decoded_bbox=True, norm_cfg=dict(type='SyncBN'), "
                f'GIoULoss(loss_weight=10.0), target_stds={stds[i]})',
                f'model.roi_head.bbox_head.{i}',
                {'type': 'ConvFCBBoxHead', 'num_shared_convs': 4,
                 'num_shared_fcs': 1, 'in_channels': 256,
                 'conv_out_channels': 256, 'fc_out_channels': 1024,
                 'roi_feat_size': 7, 'num_classes': 80,
                 'bbox_coder.type': 'DeltaXYWHBBoxCoder',
                 'bbox_coder.target_means': [0.] * 4,
                 'bbox_coder.target_stds': stds[i],
                 'reg_class_agnostic': False, 'reg_decoded_bbox': True,
                 'norm_cfg': dict(type='SyncBN', requires_grad=True),
                 'loss_cls': dict(type='CrossEntropyLoss', use_sigmoid=False,
                                  loss_weight=1.0),
                 'loss_bbox': dict(type='GIoULoss', loss_weight=10.0)}),
            Row(model, f'rcnn[{i}]: MaxIoUAssigner({iou}, {iou}, {iou}, '
                'match_low_quality=False), RandomSampler(512, 0.25), '
                'mask_size=28', f'model.train_cfg.rcnn.{i}',
                rcnn_train(iou, match_low_quality=False)),
        ]
    return rows


def two_stage_rows(model, rpn_loss, allowed_border, proposals):
    """The FPN, RPN, RoI extractors, mask head and test settings, which the
    two released models share but for the RPN's box loss, its allowed
    border and the number of training proposals."""
    return [
        Row(model, "FPN(in_channels=[64, 128, 256, 512], out_channels=256, "
            'num_outs=5)', 'model.neck',
            dict(type='FPN', out_channels=256, num_outs=5)),
        Row(model, "RPNHead(in_channels=256, feat_channels=256), anchors "
            'scales=[8], ratios=[0.5, 1.0, 2.0], strides=[4, 8, 16, 32, 64];'
            f" sigmoid CE, {rpn_loss['type']}", 'model.rpn_head',
            {'type': 'RPNHead', 'in_channels': 256, 'feat_channels': 256,
             'anchor_generator': dict(type='AnchorGenerator', scales=[8],
                                      ratios=[0.5, 1.0, 2.0],
                                      strides=[4, 8, 16, 32, 64]),
             'bbox_coder': dict(type='DeltaXYWHBBoxCoder',
                                target_means=[0.] * 4, target_stds=[1.] * 4),
             'loss_cls': dict(type='CrossEntropyLoss', use_sigmoid=True,
                              loss_weight=1.0),
             'loss_bbox': rpn_loss}),
        Row(model, 'RoIAlign 7 (boxes) / 14 (masks), sampling_ratio=0, '
            'featmap_strides=[4, 8, 16, 32]', 'model.roi_head',
            {f'{kind}_roi_extractor': dict(
                type='SingleRoIExtractor', out_channels=256,
                featmap_strides=[4, 8, 16, 32],
                roi_layer=dict(type='RoIAlign', output_size=size,
                               sampling_ratio=0))
             for kind, size in (('bbox', 7), ('mask', 14))}),
        Row(model, 'FCNMaskHead(num_convs=4, in_channels=256, '
            'conv_out_channels=256, num_classes=80), CE use_mask',
            'model.roi_head.mask_head',
            dict(type='FCNMaskHead', num_convs=4, in_channels=256,
                 conv_out_channels=256, num_classes=80,
                 loss_mask=dict(type='CrossEntropyLoss', use_mask=True,
                                loss_weight=1.0))),
        Row(model, 'rpn: MaxIoUAssigner(0.7, 0.3, 0.3, match_low_quality='
            f'True), RandomSampler(256, 0.5), allowed_border={allowed_border}',
            'model.train_cfg.rpn',
            {'assigner': dict(type='MaxIoUAssigner', pos_iou_thr=0.7,
                              neg_iou_thr=0.3, min_pos_iou=0.3,
                              match_low_quality=True, ignore_iof_thr=-1),
             'sampler': dict(type='RandomSampler', num=256, pos_fraction=0.5,
                             neg_pos_ub=-1, add_gt_as_proposals=False),
             'allowed_border': allowed_border, 'pos_weight': -1,
             'debug': False}),
        Row(model, f'rpn_proposal: nms_pre=2000, max_per_img={proposals}, '
            'nms 0.7, min_bbox_size=0', 'model.train_cfg.rpn_proposal',
            dict(nms_pre=2000, max_per_img=proposals, min_bbox_size=0,
                 nms=dict(type='nms', iou_threshold=0.7))),
        Row(model, 'test: rpn nms_pre=1000, max_per_img=1000, nms 0.7; rcnn'
            ' score_thr=0.05, nms 0.5, max_per_img=100, mask_thr_binary=0.5',
            'model.test_cfg',
            {'rpn': dict(nms_pre=1000, max_per_img=1000, min_bbox_size=0,
                         nms=dict(type='nms', iou_threshold=0.7)),
             'rcnn': dict(score_thr=0.05, max_per_img=100,
                          mask_thr_binary=0.5,
                          nms=dict(type='nms', iou_threshold=0.5))}),
    ]


def rcnn_train(iou, match_low_quality):
    return {
        'assigner': dict(type='MaxIoUAssigner', pos_iou_thr=iou,
                         neg_iou_thr=iou, min_pos_iou=iou,
                         match_low_quality=match_low_quality,
                         ignore_iof_thr=-1),
        'sampler': dict(type='RandomSampler', num=512, pos_fraction=0.25,
                        neg_pos_ub=-1, add_gt_as_proposals=True),
        'mask_size': 28, 'pos_weight': -1, 'debug': False}


ROWS = {'mask_rcnn': mask_rcnn_rows(), 'cascade': cascade_rows()}


def _gcvit_default(name):
    from gcvit_mm import GCViT
    param = inspect.signature(GCViT.__init__).parameters.get(name)
    return ABSENT if param is None else param.default


def lookup(cfg, path):
    """The value at a dotted path (list items by index, ``length`` for a
    list's length); a GCViT argument that the config does not set has the
    backbone's default; any other missing setting is ABSENT."""
    node = cfg
    parts = path.split('.')
    for i, part in enumerate(parts):
        if isinstance(node, (list, tuple)):
            if part == 'length':
                return len(node)
            node = node[int(part)] if int(part) < len(node) else ABSENT
        elif isinstance(node, dict) and part in node:
            node = node[part]
        elif parts[:i] == ['model', 'backbone'] and i == len(parts) - 1:
            return _gcvit_default(part)
        else:
            return ABSENT
        if node is ABSENT:
            return ABSENT
    return plain(node)


def plain(value):
    """ConfigDicts as dicts, tuples as lists (mmengine keeps either)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if k != '_scope_'}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def expectations(row):
    """(path, value) pairs a row asserts."""
    if isinstance(row.value, dict):
        return [(f'{row.path}.{k}', v) for k, v in row.value.items()]
    return [(row.path, row.value)]


def _id(row):
    return f'{row.path} [{osp.basename(row.paper_file)}]'


@pytest.fixture(scope='module')
def configs():
    return {name: Config.fromfile(osp.join(REPO, path)).to_dict()
            for name, path in OURS.items()}


@pytest.mark.parametrize(
    'name, row', [(name, row) for name, rows in ROWS.items() for row in rows],
    ids=lambda x: x if isinstance(x, str) else _id(x))
def test_config_has_the_papers_value(configs, name, row):
    for path, value in expectations(row):
        got = lookup(configs[name], path)
        want = value if value == ABSENT else plain(value)
        assert got == want, (
            f'{OURS[name]}: {path} is {got!r}; the paper '
            f'(detection/{row.paper_file}) has {row.paper_says}')


@pytest.mark.parametrize('name', list(OURS))
def test_every_model_setting_has_a_row(configs, name):
    """A setting of ``model`` no row names (a new key in the mmdet base
    config, or one we add) must get a row before it can pass."""
    covered = {path for row in ROWS[name] for path, _ in expectations(row)}

    def leaves(node, path):
        if isinstance(node, dict):
            for key, value in node.items():
                if key != '_scope_':
                    yield from leaves(value, f'{path}.{key}')
        elif (isinstance(node, (list, tuple)) and node
              and isinstance(node[0], dict)):
            for i, value in enumerate(node):
                yield from leaves(value, f'{path}.{i}')
        else:
            yield path

    def is_covered(leaf):
        parts = leaf.split('.')
        return any('.'.join(parts[:n]) in covered
                   for n in range(1, len(parts) + 1))

    missing = [p for p in leaves(configs[name]['model'], 'model')
               if not is_covered(p)]
    assert not missing, missing


def test_tiny_arch_is_the_papers():
    from gcvit_mm import GCViT
    assert GCViT.arch_zoo['tiny'] == dict(
        dim=64, depths=(3, 4, 19, 5), num_heads=(2, 4, 8, 16), mlp_ratio=3.,
        layer_scale=None)


def test_differences_are_explained_in_the_docs():
    """Each DIFFERS row's setting has its line in docs/detection.md."""
    with open(osp.join(REPO, 'docs/detection.md')) as f:
        docs = f.read()
    section = docs.split("### The paper's recipe")[1].split('\n### ')[0]
    for rows in ROWS.values():
        for row in rows:
            if row.paper_says.startswith(DIFFERS):
                settings = ([k for k in row.value if k != 'type']
                            if isinstance(row.value, dict) else
                            [row.path.split('.')[-1]])
                for setting in settings:
                    assert f'`{setting}`' in section, (setting, row.path)


# The option docs/detection.md gives to exempt the tables in Mask R-CNN too.
EXEMPT_TABLES = {
    'optim_wrapper.paramwise_cfg.custom_keys.relative_position_bias_table.'
    'decay_mult': 0.}


@pytest.mark.parametrize('name, options, table_decay', [
    ('mask_rcnn', {}, 0.05), ('cascade', {}, 0.),
    ('mask_rcnn', EXEMPT_TABLES, 0.)], ids=['mask_rcnn', 'cascade',
                                            'mask_rcnn-exempt-tables'])
def test_weight_decay_per_parameter_is_the_papers(name, options,
                                                  table_decay):
    """The optimizer built from the config gives each parameter the weight
    decay of the paper's run: 0 for every LayerNorm; the bias tables 0 in
    Cascade and 0.05 in Mask R-CNN (its key 'rpb' matched nothing); 0.05 for
    everything else, the Cascade heads' SyncBN included (named ``bn``, not
    ``norm``). Checked by module type, not by name."""
    from mmdet.registry import MODELS
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope
    cfg = Config.fromfile(osp.join(REPO, OURS[name]))
    cfg.merge_from_dict(options)
    cfg.model.backbone.init_cfg = None
    cfg.model.backbone.arch = 'xxtiny'  # the same names, fewer blocks
    opt_cfg = cfg.optim_wrapper.copy()
    opt_cfg.type = 'OptimWrapper'  # AMP needs CUDA; the groups are the same
    opt_cfg.pop('loss_scale', None)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model)
        wrapper = build_optim_wrapper(model, opt_cfg)
    decay = {id(p): group['weight_decay']
             for group in wrapper.optimizer.param_groups
             for p in group['params']}
    layer_norms = {id(p) for m in model.modules()
                   if isinstance(m, torch.nn.LayerNorm)
                   for p in m.parameters(recurse=False)}
    batch_norms = {id(p) for m in model.modules()
                   if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                   for p in m.parameters(recurse=False)}
    counts = dict(layer_norm=0, table=0, batch_norm=0, other=0)
    for pname, p in model.named_parameters():
        if id(p) in layer_norms:
            kind, want = 'layer_norm', 0.
        elif pname.endswith('relative_position_bias_table'):
            kind, want = 'table', table_decay
        elif id(p) in batch_norms:
            kind, want = 'batch_norm', 0.05
        else:
            kind, want = 'other', 0.05
        counts[kind] += 1
        assert decay[id(p)] == want, (pname, kind)
    assert counts['table'] == 12  # xxtiny: 2 + 2 + 6 + 2 blocks
    # the stem, 3 down-samplers (2 norms each), 12 blocks (2 each), 4 outputs
    assert counts['layer_norm'] == 2 * (2 + 2 * 3 + 2 * 12 + 4)
    # Cascade: 3 stages x 4 convs x SyncBN (weight, bias); Mask R-CNN: none
    assert counts['batch_norm'] == (24 if name == 'cascade' else 0)
