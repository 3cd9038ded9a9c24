# UperNet + GC ViT-T on ADE20K, 512x512 crops, 160k iterations, 8 GPUs x 2
# images. Mirrors mmseg's Swin UperNet config
# (swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py):
# the same bases, optimizer, schedule and batch; only the backbone, the
# window, the test mode and AMP differ. The paper released no segmentation
# code or config.
_base_ = [
    'mmseg::_base_/models/upernet_swin.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py'
]
custom_imports = dict(imports=['gcvit_mm'], allow_failed_imports=False)

# Never a partial checkpoint; --resume survives a kill mid-save (issue 8).
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))
# Input checks and one-line errors for bad input, also under mmdet's and
# mmseg's own tools/train.py (gcvit_mm.engine.InputCheckRunner).
runner_type = 'InputCheckRunner'

crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
# ImageNet-1K weights in the paper's format (windows 7, 7, 14, 7); the
# relative position bias tables are resized bicubically to the window below
# when they are loaded.
checkpoint_file = 'https://huggingface.co/nvidia/GCViT/resolve/main/gcvit_1k_tiny.pth.tar'  # noqa
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        _delete_=True,
        type='GCViT',
        arch='tiny',
        # Window 16 in every stage (the paper's COCO recipe uses 24). A
        # 512x512 crop gives 128/64/32/16 feature maps: 16 tiles all four
        # exactly, so no block pads (the padded zeros would take part as
        # keys: window 24 pads the 16x16 stride-32 map to 24x24), and each
        # stage's global token generator pools its map to exactly 16x16
        # (3/2/1/0 pools) with no bicubic resize: the pretraining geometry
        # (224 -> 7x7 tokens) scaled by 512/224. Attention also costs less.
        window_size=16,
        pretrain_img_size=224,
        drop_path_rate=0.3,  # as Swin-T's UperNet (ImageNet: 0.2)
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)),
    decode_head=dict(in_channels=[64, 128, 256, 512], num_classes=150),
    auxiliary_head=dict(in_channels=256, num_classes=150),
    # Sliding 512x512 windows at test time (as mmseg's ConvNeXt/BEiT UperNet
    # configs): every crop has the training geometry above. 'whole' mode
    # (Swin's) also works on any size (blocks pad, token maps are resized).
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(341, 341)))

# AdamW, no weight decay on relative position bias tables and norms (the
# LayerNorms of blocks, downsamplers and outputs: every name with 'norm').
# AMP as mmseg states it; train on GPUs (AmpOptimWrapper needs one).
optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(
        type='AdamW', lr=0.00006, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(
        custom_keys={
            'relative_position_bias_table': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.)
        }))

param_scheduler = [
    dict(
        type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(
        type='PolyLR',
        eta_min=0.0,
        power=1.0,
        begin=1500,
        end=160000,
        by_epoch=False,
    )
]

# By default, models are trained on 8 GPUs with 2 images per GPU.
# Single-scale test: short side 512 (test_pipeline of the ADE20K base).
# Multi-scale + flip test: `tools/test.py CONFIG CKPT --tta` uses the base's
# tta_pipeline (ratios 0.5-1.75, horizontal flip) and tta_model.
train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
