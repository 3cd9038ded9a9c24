# The main job's side-by-side: gcvit_xxt_shapes.py with only the backbone
# swapped for an mmdet ResNet-18 trained from scratch (GroupNorm like the
# FPN and heads, no ImageNet weights). Same heads, data, schedule, lr and
# seed, and about the same parameter count (11.2M vs 11.5M backbone params):
#   python tools/train.py configs/mask_rcnn/r18_shapes.py
_base_ = './gcvit_xxt_shapes.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='ResNet',
        depth=18,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        norm_cfg=dict(type='GN', num_groups=32, requires_grad=True),
        norm_eval=False,
        style='pytorch',
        init_cfg=None),
    neck=dict(in_channels=[64, 128, 256, 512]))
