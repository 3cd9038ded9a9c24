# Mask R-CNN + FPN, GC ViT-T, COCO: the 12-epoch single-scale baseline
# (1333x800, flip only; steps at 8 and 11), otherwise as gcvit_t_coco.py.
# The paper released no 1x config: pipeline and schedule (1000 warm-up
# iterations) are mmdet's Swin-T 1x (mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py).
_base_ = './gcvit_t_coco.py'

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

max_epochs = 12
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
        end=1000),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        by_epoch=True,
        milestones=[8, 11],
        gamma=0.1)
]
