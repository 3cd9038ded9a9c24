# DINO (4 scales) with a GC ViT-T backbone on COCO, 12 epochs: mmdet's DINO
# recipe (dino-4scale_r50_8xb2-12e_coco.py: AdamW lr 1e-4 wd 1e-4, backbone
# lr x0.1, grad clip 0.1, 8 GPUs x 2 images, auto_scale_lr base 16, step at
# epoch 11) with only the backbone, the no-decay rule and AMP changed. The
# paper released no DINO config (its repository has no DINO code).
_base_ = 'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py'
custom_imports = dict(imports=['gcvit_mm'], allow_failed_imports=False)

# Never a partial checkpoint; --resume survives a kill mid-save (issue 8).
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))
# Input checks and one-line errors for bad input, also under mmdet's and
# mmseg's own tools/train.py (gcvit_mm.engine.InputCheckRunner).
runner_type = 'InputCheckRunner'

# ImageNet-1K weights, pretrained with windows (7, 7, 14, 7); the relative
# position tables are resized to window 24 (our dense recipe) on load.
pretrained = 'https://huggingface.co/nvidia/GCViT/resolve/main/gcvit_1k_tiny.pth.tar'  # noqa

# 4 scales as mmdet builds them for ResNet-50: strides 8, 16, 32 from the
# backbone (out_indices 1-3) and a 4th, stride 64, that the ChannelMapper
# makes with a stride-2 conv on the last. The stride-4 stage is not
# returned, so its output norm is not built (no unused parameters in DDP).
model = dict(
    backbone=dict(
        _delete_=True,
        type='GCViT',
        arch='tiny',
        window_size=24,
        pretrain_img_size=224,
        drop_path_rate=0.2,  # as the paper's T detectors (its ImageNet rate)
        out_indices=(1, 2, 3),
        with_cp=False,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[128, 256, 512]))

# No weight decay on relative position bias tables and norm layers. mmengine
# applies only the longest custom key that matches a parameter name and then
# skips norm_decay_mult, so `backbone` (DINO's lr x0.1) alone would decay the
# backbone's LayerNorms (norm0-norm3 in GCViT; no other module of DINO names
# a norm `normN`): their keys are longer, win, and repeat lr_mult=0.1.
backbone_no_decay = dict(lr_mult=0.1, decay_mult=0.)
optim_wrapper = dict(
    type='AmpOptimWrapper',
    paramwise_cfg=dict(
        _delete_=True,
        norm_decay_mult=0.,
        custom_keys={
            'backbone': dict(lr_mult=0.1),
            'relative_position_bias_table': backbone_no_decay,
            **{
                f'.norm{i}.{p}': backbone_no_decay
                for i in range(4) for p in ('weight', 'bias')
            },
        }))
