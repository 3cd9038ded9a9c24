# UperNet + GC ViT-B on ADE20K; everything else as gcvit_t_ade20k.py.
_base_ = './gcvit_t_ade20k.py'
checkpoint_file = 'https://huggingface.co/nvidia/GCViT/resolve/main/gcvit_1k_base.pth.tar'  # noqa
model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.5,  # its ImageNet rate
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))
