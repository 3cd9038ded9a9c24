# UperNet + GC ViT-S on ADE20K; everything else as gcvit_t_ade20k.py.
_base_ = './gcvit_t_ade20k.py'
checkpoint_file = 'https://huggingface.co/nvidia/GCViT/resolve/main/gcvit_1k_small.pth.tar'  # noqa
model = dict(
    backbone=dict(
        arch='small',
        drop_path_rate=0.3,  # its ImageNet rate
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)),
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    auxiliary_head=dict(in_channels=384))
