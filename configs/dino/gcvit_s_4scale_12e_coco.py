# DINO 4-scale, GC ViT-S, COCO, 12 epochs (see gcvit_t_4scale_12e_coco.py).
_base_ = './gcvit_t_4scale_12e_coco.py'
pretrained = 'https://huggingface.co/nvidia/GCViT/resolve/main/gcvit_1k_small.pth.tar'  # noqa
model = dict(
    backbone=dict(
        arch='small',
        drop_path_rate=0.3,
        init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=[192, 384, 768]))
