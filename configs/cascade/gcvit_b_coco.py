# Cascade Mask R-CNN + FPN, GC ViT-B, COCO, 3x. The paper reports 52.9 / 45.8
# box / mask AP but released no config for it: the paper's T recipe
# (gcvit_t_coco.py) with the base arch and its ImageNet drop path rate, as
# the paper's T configs use T's.
_base_ = './gcvit_t_coco.py'
pretrained = 'https://huggingface.co/nvidia/GCViT/resolve/main/gcvit_1k_base.pth.tar'  # noqa
model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.5,
        init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=[128, 256, 512, 1024]))
