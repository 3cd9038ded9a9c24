# DINO 4-scale, GC ViT-B, COCO, 12 epochs (see gcvit_t_4scale_12e_coco.py).
_base_ = './gcvit_t_4scale_12e_coco.py'
pretrained = 'https://huggingface.co/nvidia/GCViT/resolve/main/gcvit_1k_base.pth.tar'  # noqa
model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.5,
        init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=[256, 512, 1024]))
