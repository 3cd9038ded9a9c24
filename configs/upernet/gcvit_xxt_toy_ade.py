# Toy: UperNet + GC ViT-XXT trained from scratch on a synthetic ADE20K-format
# dataset (7 classes, 200 train / 40 val images of 160x160, generated under
# data/toy_ade, or $GCVIT_MM_DATA/toy_ade, on first use). Sized for a 2-core
# CPU: it learns visibly in about ten minutes. The recipe is
# gcvit_t_ade20k.py's with everything scaled down; only what differs is here.
_base_ = './gcvit_t_ade20k.py'
custom_imports = dict(
    imports=['gcvit_mm', 'gcvit_mm.datasets.toy_ade'],
    allow_failed_imports=False)

crop_size = (128, 128)
# Plain BN in the heads (SyncBN needs a GPU process group).
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        arch='xxtiny',
        # 128x128 crops give 32/16/8/4 maps: window 4 tiles all four and the
        # token generators pool to exactly 4x4, i.e. the geometry of the
        # 512x512 configs (window 16) at a quarter of the size.
        window_size=4,
        drop_path_rate=0.1,
        init_cfg=None),  # from scratch: no download
    decode_head=dict(channels=128, num_classes=7, norm_cfg=norm_cfg),
    auxiliary_head=dict(channels=64, num_classes=7, norm_cfg=norm_cfg),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(85, 85)))

# The ADE20K pipelines with 512 -> 128.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(
        type='RandomResize',
        scale=(512, 128),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(512, 128), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs')
]
dataset_type = 'ToyADE20KDataset'
data_root = '{{$GCVIT_MM_DATA:data}}/toy_ade'
gen_cfg = dict(num_train=200, num_val=40, img_size=(160, 160), seed=0)
train_dataloader = dict(
    batch_size=4,
    num_workers=1,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        gen_cfg=gen_cfg,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=1,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        gen_cfg=gen_cfg,
        pipeline=test_pipeline))
test_dataloader = val_dataloader

# From scratch, so a larger lr than fine-tuning; fp32 (CPU).
max_iters = 1000
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=0.001, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg={{_base_.optim_wrapper.paramwise_cfg}})
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=50),
    dict(
        type='PolyLR',
        eta_min=0.0,
        power=1.0,
        begin=50,
        end=max_iters,
        by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters // 2)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=max_iters // 2, max_keep_ckpts=1))
env_cfg = dict(dist_cfg=dict(backend='gloo'))  # CPU processes
# Shown to the user at the end: predictions.png, curves.png (loss, mIoU).
custom_hooks = [dict(type='RunReportHook')]
randomness = dict(seed=0)  # the same run, and mIoU, every time
