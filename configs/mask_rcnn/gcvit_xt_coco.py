# Mask R-CNN + FPN, GC ViT-XT, COCO, 3x recipe (see gcvit_t_coco.py).
_base_ = './gcvit_t_coco.py'
pretrained = 'https://huggingface.co/nvidia/GCViT/resolve/main/gcvit_1k_xtiny.pth.tar'  # noqa
model = dict(
    backbone=dict(
        arch='xtiny',
        drop_path_rate=0.2,
        init_cfg=dict(checkpoint=pretrained)))
