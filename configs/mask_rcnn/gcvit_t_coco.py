# Mask R-CNN + FPN with a GC ViT-T backbone on COCO: the paper's released
# recipe (NVlabs/GCVit detection/configs/gcvit/mask_rcnn_gcvit_tiny_3x_coco.py,
# mmdet 2.19), in mmdet 3.x. mmdet's Swin-T "ms-crop-3x" config already holds
# the rest of it: the same Mask R-CNN heads and sizes, DETR-style multi-scale
# + crop augmentation, 36 epochs with steps at 27 and 33, AdamW lr 1e-4
# wd 0.05, 2 images per GPU (x 8 GPUs = 16, auto_scale_lr base 16). Stated
# here: the backbone, the paper's warm-up, no-decay rule and AMP. Every
# setting against the paper's: docs/detection.md "The paper's recipe".
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
        drop_path_rate=0.2,  # the paper's; also gc_vit_tiny's ImageNet rate
        out_indices=(0, 1, 2, 3),
        with_cp=False,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[64, 128, 256, 512]))

# The paper's schedule_3x.py warms up linearly for 2500 iterations from
# 0.001 (mmdet's Swin config: 1000).
param_scheduler = [
    dict(_base_.param_scheduler[0], end=2500), _base_.param_scheduler[1]
]

# The paper's optimizer: no weight decay on norms (custom key 'norm': every
# LayerNorm of the backbone; the heads have none). Its second key, 'rpb',
# matches no parameter, so that run decayed the relative position bias tables
# and so do we, to reproduce its 47.9 box / 43.2 mask AP (the Cascade config
# exempts them). AMP as its Fp16OptimizerHook: a static loss scale of 512.
optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale=512.,
    paramwise_cfg=dict(
        _delete_=True, custom_keys={'norm': dict(decay_mult=0.)}))
