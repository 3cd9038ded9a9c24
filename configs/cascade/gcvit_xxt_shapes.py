# Cascade Mask R-CNN + GC ViT-XXT on the embedded toy dataset, from scratch,
# sized for a 2-core CPU (see ../mask_rcnn/gcvit_xxt_shapes.py):
#   python tools/train.py configs/cascade/gcvit_xxt_shapes.py
# The cascade recipe of gcvit_t_coco.py (4conv1fc heads with SyncBN, which
# tools/train.py reverts to BN without CUDA, and GIoU loss) with the XXT
# backbone, GroupNorm in the FPN (from scratch) and toy-sized channels and
# samples; data and schedule as ../mask_rcnn/gcvit_xxt_shapes.py.
_base_ = ['./gcvit_t_coco.py', '../_base_/datasets/toy_shapes.py']
custom_imports = dict(
    imports=['gcvit_mm', 'gcvit_mm.datasets.toy_coco'],
    allow_failed_imports=False)

fpn_channels = 128
model = dict(
    backbone=dict(
        arch='xxtiny',
        window_size=(8, 8, 8, 4),
        drop_path_rate=0.1,
        init_cfg=None),
    neck=dict(
        out_channels=fpn_channels,
        norm_cfg=dict(type='GN', num_groups=32, requires_grad=True)),
    rpn_head=dict(
        in_channels=fpn_channels,
        feat_channels=fpn_channels,
        anchor_generator=dict(scales=[4])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=fpn_channels),
        bbox_head=[
            dict(head, in_channels=fpn_channels, conv_out_channels=fpn_channels,
                 fc_out_channels=512, num_classes=3)
            for head in _base_.model.roi_head.bbox_head
        ],
        mask_roi_extractor=dict(out_channels=fpn_channels),
        mask_head=dict(
            num_convs=2,
            in_channels=fpn_channels,
            conv_out_channels=fpn_channels,
            num_classes=3)),
    train_cfg=dict(
        rpn=dict(sampler=dict(num=64)),
        rpn_proposal=dict(nms_pre=1000, max_per_img=200),
        rcnn=[
            dict(stage, sampler=dict(stage.sampler, num=64))
            for stage in _base_.model.train_cfg.rcnn
        ]),
    test_cfg=dict(
        rpn=dict(nms_pre=500, max_per_img=100),
        rcnn=dict(max_per_img=20)))

train_dataloader = dict(_delete_=True, **_base_.toy_train_dataloader)
val_dataloader = dict(_delete_=True, **_base_.toy_val_dataloader)
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, **_base_.toy_val_evaluator)
test_evaluator = val_evaluator

max_epochs = 4
train_cfg = dict(max_epochs=max_epochs, val_interval=2)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=50),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True,
         milestones=[3], gamma=0.1)
]
optim_wrapper = dict(
    optimizer=dict(lr=4e-4),
    # no decay on any norm (GN, BN) or bias table, as the Mask R-CNN toy job
    paramwise_cfg=dict(
        _delete_=True,
        norm_decay_mult=0.,
        custom_keys={'relative_position_bias_table': dict(decay_mult=0.)}),
    clip_grad=dict(max_norm=10.))
auto_scale_lr = dict(base_batch_size=2)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=2, max_keep_ckpts=1))
log_processor = dict(window_size=10)
