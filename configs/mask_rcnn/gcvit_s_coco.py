# Mask R-CNN + FPN, GC ViT-S, COCO, 3x. The paper released no config for
# this size: the paper's T recipe (gcvit_t_coco.py) with the small arch and
# its ImageNet drop path rate, as the paper's T configs use T's.
_base_ = './gcvit_t_coco.py'
pretrained = 'https://huggingface.co/nvidia/GCViT/resolve/main/gcvit_1k_small.pth.tar'  # noqa
model = dict(
    backbone=dict(
        arch='small',
        drop_path_rate=0.3,
        init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 768]))
