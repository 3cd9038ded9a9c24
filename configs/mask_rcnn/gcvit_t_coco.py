# Mask R-CNN + FPN with a GC ViT-T backbone on COCO: the paper's 3x recipe.
# mmdet's Swin-T "ms-crop-3x" config already is that recipe: DETR-style
# multi-scale + crop augmentation, 36 epochs with steps at 27 and 33, 1000
# iterations of linear warm-up, AdamW lr 1e-4 wd 0.05, 2 images per GPU
# (x 8 GPUs = 16, auto_scale_lr base 16). Only the backbone, the no-decay
# rule and AMP differ.
_base_ = 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py'
custom_imports = dict(imports=['gcvit_mm'], allow_failed_imports=False)

# Never a partial checkpoint; --resume survives a kill mid-save (issue 8).
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))
# Input checks and one-line errors for bad input, also under mmdet's and
# mmseg's own tools/train.py (gcvit_mm.engine.InputCheckRunner).
runner_type = 'InputCheckRunner'

# ImageNet-1K weights, pretrained with windows (7, 7, 14, 7); the relative
# position tables are resized to window 24 on load. A local path works too.
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

# No weight decay on relative position bias tables and on norm layers (the
# backbone's LayerNorms and any BN/SyncBN in the heads).
optim_wrapper = dict(
    type='AmpOptimWrapper',
    paramwise_cfg=dict(
        _delete_=True,
        norm_decay_mult=0.,
        custom_keys={'relative_position_bias_table': dict(decay_mult=0.)}))
