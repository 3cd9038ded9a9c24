# The embedded toy instance-segmentation set (gcvit_mm.datasets.toy_coco):
# 128x128 images of circles, squares and triangles, COCO format, generated
# under $GCVIT_MM_DATA/toy_coco/ (default data/toy_coco/) on first use.
#
# The names carry a `toy_` prefix so that a config can list this file next
# to a COCO config in `_base_` (mmengine forbids duplicate keys among bases)
# and take the settings over, e.g.
#   train_dataloader = dict(_delete_=True, **_base_.toy_train_dataloader)
# The config must import the dataset class:
#   custom_imports = dict(imports=['gcvit_mm', 'gcvit_mm.datasets.toy_coco'])
toy_img_size = 128
toy_data_root = '{{$GCVIT_MM_DATA:data}}/toy_coco/'
toy_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(toy_img_size, toy_img_size), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
toy_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(toy_img_size, toy_img_size), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
toy_train_dataloader = dict(
    batch_size=2,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type='ToyShapesCocoDataset',
        data_root=toy_data_root,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=8),
        pipeline=toy_train_pipeline))
toy_val_dataloader = dict(
    batch_size=4,
    num_workers=1,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='ToyShapesCocoDataset',
        data_root=toy_data_root,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        test_mode=True,
        pipeline=toy_test_pipeline))
toy_val_evaluator = dict(
    type='CocoMetric',
    ann_file=toy_data_root + 'annotations/instances_val.json',
    metric=['bbox', 'segm'],
    format_only=False)
