# UperNet + GC ViT-XT on ADE20K; everything else as gcvit_t_ade20k.py.
_base_ = './gcvit_t_ade20k.py'
checkpoint_file = 'https://huggingface.co/nvidia/GCViT/resolve/main/gcvit_1k_xtiny.pth.tar'  # noqa
model = dict(
    backbone=dict(
        arch='xtiny',
        drop_path_rate=0.2,  # its ImageNet rate
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)))
