# The "main job" on the embedded toy dataset: Mask R-CNN + GC ViT-XXT trained
# from scratch on 128x128 shapes (3 classes, generated on first use, see
# ../_base_/datasets/toy_shapes.py), sized for a 2-core CPU:
#   python tools/train.py configs/mask_rcnn/gcvit_xxt_shapes.py
# Same backbone as gcvit_xxt_coco.py; differs in data, schedule, fp32, the
# no-decay rule, windows that fit 128 px, 128 FPN channels, GroupNorm in the
# FPN and heads (the usual help when training from scratch, here with a
# 4conv1fc box head), and fewer anchors, proposals and samples.
_base_ = ['./gcvit_xxt_coco.py', '../_base_/datasets/toy_shapes.py']
custom_imports = dict(
    imports=['gcvit_mm', 'gcvit_mm.datasets.toy_coco'],
    allow_failed_imports=False)

# Windows tile the 32/16/8/4 maps of a 128x128 image (window 24 would pad
# the stride-32 map from 4x4 to 24x24).
fpn_channels = 128
norm_cfg = dict(type='GN', num_groups=32, requires_grad=True)
model = dict(
    backbone=dict(
        window_size=(8, 8, 8, 4),
        drop_path_rate=0.1,
        init_cfg=None),  # from scratch: no ImageNet weights needed
    neck=dict(out_channels=fpn_channels, norm_cfg=norm_cfg),
    rpn_head=dict(
        in_channels=fpn_channels,
        feat_channels=fpn_channels,
        anchor_generator=dict(scales=[4])),  # 16..256 px anchors
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=fpn_channels),
        bbox_head=dict(
            type='Shared4Conv1FCBBoxHead',
            in_channels=fpn_channels,
            conv_out_channels=fpn_channels,
            fc_out_channels=512,
            norm_cfg=norm_cfg,
            num_classes=3),
        mask_roi_extractor=dict(out_channels=fpn_channels),
        mask_head=dict(
            num_convs=2,
            in_channels=fpn_channels,
            conv_out_channels=fpn_channels,
            norm_cfg=norm_cfg,
            num_classes=3)),
    train_cfg=dict(
        rpn=dict(sampler=dict(num=64)),
        rpn_proposal=dict(nms_pre=1000, max_per_img=200),
        rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(
        rpn=dict(nms_pre=500, max_per_img=100),
        rcnn=dict(max_per_img=20)))

train_dataloader = dict(_delete_=True, **_base_.toy_train_dataloader)
val_dataloader = dict(_delete_=True, **_base_.toy_val_dataloader)
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, **_base_.toy_val_evaluator)
test_evaluator = val_evaluator

# 4 epochs of 200 iterations (400 images, 2 per batch), lr / 10 for the last.
max_epochs = 4
train_cfg = dict(max_epochs=max_epochs, val_interval=2)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=50),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True,
         milestones=[3], gamma=0.1)
]
# fp32 (AMP needs a GPU), so not the COCO config's AMP wrapper and its loss
# scale. No weight decay on any norm (the GroupNorms too) or bias table: the
# rule this job was tuned and measured with.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=4e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(
        norm_decay_mult=0.,
        custom_keys={'relative_position_bias_table': dict(decay_mult=0.)}),
    clip_grad=dict(max_norm=10.))
auto_scale_lr = dict(base_batch_size=2)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=2, max_keep_ckpts=1))
log_processor = dict(window_size=10)
# Shown to the user at the end: predictions.png, curves.png (loss, mAP).
custom_hooks = [dict(type='RunReportHook')]
# A fixed seed, so the run and its mAP repeat (and r18_shapes.py, the
# ResNet-18 side-by-side, sees the same data order).
randomness = dict(seed=0)
