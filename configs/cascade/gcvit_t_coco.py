# Cascade Mask R-CNN + FPN with a GC ViT-T backbone on COCO: the paper's
# released recipe (NVlabs/GCVit detection/configs/gcvit/
# cascade_mask_rcnn_gcvit_tiny_3x_coco.py, mmdet 2.19), in mmdet 3.x. mmdet's
# ConvNeXt-T cascade config already has the paper's heads (three stages of
# 4conv1fc box heads with SyncBN and GIoU loss) and the same DETR-style
# multi-scale + crop 3x schedule and batch. Stated here: the backbone, the
# paper's warm-up and its optimizer, which replaces ConvNeXt's (layer-wise lr
# decay, lr 2e-4, AMP). Every setting against the paper's: docs/detection.md
# "The paper's recipe".
_base_ = 'mmdet::convnext/cascade-mask-rcnn_convnext-t-p4-w7_fpn_4conv1fc-giou_amp-ms-crop-3x_coco.py'  # noqa
# (replaces the base's mmpretrain import: ConvNeXt is not used)
custom_imports = dict(imports=['gcvit_mm'], allow_failed_imports=False)

# Never a partial checkpoint; --resume survives a kill mid-save (issue 8).
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))
# Input checks and one-line errors for bad input, also under mmdet's and
# mmseg's own tools/train.py (gcvit_mm.engine.InputCheckRunner).
runner_type = 'InputCheckRunner'

pretrained = 'https://huggingface.co/nvidia/GCViT/resolve/main/gcvit_1k_tiny.pth.tar'  # noqa

model = dict(
    backbone=dict(
        _delete_=True,
        type='GCViT',
        arch='tiny',
        window_size=24,
        pretrain_img_size=224,
        drop_path_rate=0.2,  # the paper's; also gc_vit_tiny's ImageNet rate
        out_indices=(0, 1, 2, 3),
        with_cp=False,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[64, 128, 256, 512]))

# The paper's schedule_3x.py warms up linearly for 2500 iterations from
# 0.001 (mmdet's ConvNeXt config: 1000).
param_scheduler = [
    dict(_base_.param_scheduler[0], end=2500), _base_.param_scheduler[1]
]

# The paper's optimizer, in fp32 (its Cascade config sets no fp16). No weight
# decay where a parameter name holds 'relative_position_bias_table' or 'norm':
# the bias tables and the backbone's LayerNorms. The heads' SyncBN layers are
# named 'bn' and are decayed, as in the paper's run.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=0.0001, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(
        custom_keys={
            'relative_position_bias_table': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.)
        }))
