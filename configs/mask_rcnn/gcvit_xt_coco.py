# Mask R-CNN + FPN, GC ViT-XT, COCO, 3x. The paper released no config for
# this size: the paper's T recipe (gcvit_t_coco.py) with the xtiny arch and
# its ImageNet drop path rate, as the paper's T configs use T's.
_base_ = './gcvit_t_coco.py'
pretrained = 'https://huggingface.co/nvidia/GCViT/resolve/main/gcvit_1k_xtiny.pth.tar'  # noqa
model = dict(
    backbone=dict(
        arch='xtiny',
        drop_path_rate=0.2,
        init_cfg=dict(checkpoint=pretrained)))
