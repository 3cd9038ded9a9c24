"""Every detection config loads, builds its model, and states the paper's
recipe (the T configs setting by setting, and the per-parameter weight decay:
test_paper_recipe.py)."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from detection_utils import REPO

COCO_CONFIGS = sorted(
    glob.glob(osp.join(REPO, 'configs/mask_rcnn/gcvit_*_coco.py')) +
    glob.glob(osp.join(REPO, 'configs/cascade/gcvit_*_coco.py')))
ALL_CONFIGS = sorted(
    glob.glob(osp.join(REPO, 'configs/mask_rcnn/gcvit_*.py')) +
    glob.glob(osp.join(REPO, 'configs/cascade/gcvit_*.py')))
ARCH = {'xxt': 'xxtiny', 'xt': 'xtiny', 't': 'tiny', 's': 'small', 'b': 'base'}
# Each arch's ImageNet rate, as the paper's T configs use T's.
DROP_PATH = {'xxtiny': 0.2, 'xtiny': 0.2, 'tiny': 0.2, 'small': 0.3,
             'base': 0.5}
URL = 'https://huggingface.co/nvidia/GCViT/resolve/main/gcvit_1k_{}.pth.tar'


def rel(path):
    return osp.relpath(path, REPO)


def build_model(cfg):
    from mmdet.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmdet'):
        return MODELS.build(cfg.model)


def test_the_expected_configs_exist():
    names = {rel(p) for p in ALL_CONFIGS}
    expected = {f'configs/mask_rcnn/gcvit_{v}_coco.py'
                for v in ('xxt', 'xt', 't', 's', 'b')}
    expected |= {f'configs/cascade/gcvit_{v}_coco.py' for v in ('t', 's', 'b')}
    expected |= {'configs/mask_rcnn/gcvit_t_1x_coco.py',
                 'configs/mask_rcnn/gcvit_xxt_shapes.py',
                 'configs/cascade/gcvit_xxt_shapes.py'}
    assert expected <= names, sorted(expected - names)


@pytest.mark.parametrize('path', ALL_CONFIGS, ids=rel)
def test_config_builds_its_model(path):
    cfg = Config.fromfile(path)
    backbone = cfg.model.backbone
    backbone.init_cfg = None  # the published weights are not reachable here
    if 'shapes' not in path:
        backbone.arch = ARCH[osp.basename(path).split('_')[1]]
    model = build_model(cfg)
    assert type(model.backbone).__name__ == 'GCViT'
    assert list(cfg.model.neck.in_channels) == model.backbone.out_channels
    model.eval()
    with torch.no_grad():
        feats = model.extract_feat(torch.rand(1, 3, 64, 96))
    assert len(feats) == 5 and feats[0].shape[-2:] == (16, 24)
    assert all(torch.isfinite(f).all() for f in feats)


def test_resnet18_side_by_side_differs_from_the_main_job_only_in_backbone():
    """configs/mask_rcnn/r18_shapes.py reproduces the main job with a
    ResNet-18 from scratch: everything else (heads, data, schedule, lr,
    seed) must stay the main job's, and its model must build."""
    main = Config.fromfile(
        osp.join(REPO, 'configs/mask_rcnn/gcvit_xxt_shapes.py')).to_dict()
    r18 = Config.fromfile(
        osp.join(REPO, 'configs/mask_rcnn/r18_shapes.py')).to_dict()
    for cfg in (main, r18):
        backbone = cfg['model'].pop('backbone')
        cfg['model']['neck'].pop('in_channels')
    assert (backbone['type'], backbone['depth'], backbone['init_cfg'],
            backbone['norm_cfg']['type']) == ('ResNet', 18, None, 'GN')
    assert r18 == main
    assert main['randomness'] == dict(seed=0)
    model = build_model(Config.fromfile(
        osp.join(REPO, 'configs/mask_rcnn/r18_shapes.py')))
    with torch.no_grad():
        feats = model.eval().extract_feat(torch.rand(1, 3, 64, 96))
    assert [tuple(f.shape) for f in feats] == [
        (1, 128, 16, 24), (1, 128, 8, 12), (1, 128, 4, 6), (1, 128, 2, 3),
        (1, 128, 1, 2)]


@pytest.mark.parametrize('path', COCO_CONFIGS, ids=rel)
def test_coco_configs_state_the_papers_3x_recipe(path):
    cfg = Config.fromfile(path)
    variant = osp.basename(path).split('_')[1]
    arch = ARCH[variant]
    bb = cfg.model.backbone
    assert (bb.type, bb.arch, bb.window_size, bb.pretrain_img_size) == (
        'GCViT', arch, 24, 224)
    assert bb.drop_path_rate == DROP_PATH[arch]
    assert bb.init_cfg == dict(type='Pretrained', checkpoint=URL.format(arch))
    opt = cfg.optim_wrapper
    # the paper's Mask R-CNN trains with AMP, its Cascade in fp32
    assert opt.type == ('OptimWrapper' if 'cascade' in path
                        else 'AmpOptimWrapper')
    assert (opt.optimizer.type, opt.optimizer.lr,
            opt.optimizer.weight_decay) == ('AdamW', 1e-4, 0.05)
    assert cfg.train_dataloader.batch_size == 2
    assert cfg.auto_scale_lr.base_batch_size == 16
    warmup, steps = cfg.param_scheduler
    assert warmup.type == 'LinearLR' and not warmup.by_epoch
    assert warmup.end == (1000 if '_1x_' in path else 2500)
    if '_1x_' in path:
        assert cfg.train_cfg.max_epochs == 12
        assert steps.milestones == [8, 11]
    else:
        assert cfg.train_cfg.max_epochs == 36
        assert steps.milestones == [27, 33]
        pipeline = [t['type'] for t in cfg.train_dataloader.dataset.pipeline]
        assert 'RandomChoice' in pipeline  # DETR-style multi-scale + crop
    if 'cascade' in path:
        heads = cfg.model.roi_head.bbox_head
        assert len(heads) == 3
        for head in heads:
            assert (head.num_shared_convs, head.num_shared_fcs) == (4, 1)
            assert head.norm_cfg.type == 'SyncBN'
            assert head.loss_bbox.type == 'GIoULoss'


def test_pretrained_init_cfg_loads_a_local_checkpoint(tmp_path):
    """init_cfg may point at a local file: ImageNet-window (7, 7, 14, 7)
    weights load into the window-24 detector, bias tables resized."""
    from gcvit_mm import GCViT
    src = GCViT('xxtiny')  # the ImageNet windows
    torch.nn.init.normal_(src.stages[0].blocks[0].attn.qkv.weight)
    ckpt = tmp_path / 'gcvit_xxtiny_in1k.pth'
    torch.save({'state_dict': src.state_dict()}, ckpt)
    cfg = Config.fromfile(osp.join(REPO, 'configs/mask_rcnn/gcvit_xxt_coco.py'))
    cfg.model.backbone.init_cfg.checkpoint = str(ckpt)
    model = build_model(cfg)
    model.init_weights()
    attn = model.backbone.stages[0].blocks[0].attn
    assert torch.equal(attn.qkv.weight, src.stages[0].blocks[0].attn.qkv.weight)
    assert attn.relative_position_bias_table.shape == (47 * 47, 2)
