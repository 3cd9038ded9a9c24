# Cascade Mask R-CNN + FPN with a GC ViT-T backbone on COCO, the paper's 3x
# recipe. mmdet's ConvNeXt-T cascade config already has the paper's heads
# (4conv1fc box heads with SyncBN and GIoU loss, three stages) and the same
# DETR-style multi-scale + crop 3x schedule with AMP; we replace its backbone
# and its optimizer (ConvNeXt's layer-wise lr decay, lr 2e-4) with the
# paper's AdamW lr 1e-4, wd 0.05, no decay on bias tables and norms.
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
        drop_path_rate=0.3,
        out_indices=(0, 1, 2, 3),
        with_cp=False,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[64, 128, 256, 512]))

optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    paramwise_cfg=dict(
        norm_decay_mult=0.,
        custom_keys={'relative_position_bias_table': dict(decay_mult=0.)}),
    optimizer=dict(
        type='AdamW', lr=0.0001, betas=(0.9, 0.999), weight_decay=0.05))
