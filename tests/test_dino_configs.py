"""The DINO configs: they build, state mmdet's DINO recipe with our backbone,
give every parameter the lr and weight decay they promise, and the GC ViT-L
config loads ImageNet-21K weights of the 512 px geometry."""
import glob
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from conftest import randomize_
from checkpoint_formats import to_paper
from detection_utils import REPO

COCO_CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs/dino/gcvit_*_coco.py')))
URL = 'https://huggingface.co/nvidia/GCViT/resolve/main/{}.pth.tar'
# variant in the file name -> (arch, drop path, checkpoint, channels of the
# stride 8/16/32 stages)
VARIANTS = {
    't': ('tiny', 0.2, 'gcvit_1k_tiny', [128, 256, 512]),
    's': ('small', 0.3, 'gcvit_1k_small', [192, 384, 768]),
    'b': ('base', 0.5, 'gcvit_1k_base', [256, 512, 1024]),
    'l21k': ('large', 0.2, 'gcvit_21k_large_512', [384, 768, 1536]),
}


def rel(path):
    return osp.relpath(path, REPO)


def variant(path):
    return osp.basename(path).split('_')[1]


def build(cfg_model):
    from mmdet.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmdet'):
        return MODELS.build(cfg_model)


def test_the_expected_configs_exist():
    names = {rel(p) for p in COCO_CONFIGS}
    expected = {f'configs/dino/gcvit_{v}_4scale_{e}_coco.py'
                for v in 'tsb' for e in ('12e', '36e')}
    expected.add('configs/dino/gcvit_l21k_4scale_36e_coco.py')
    assert names == expected
    assert osp.exists(osp.join(REPO, 'configs/dino/gcvit_xxt_shapes.py'))


@pytest.mark.parametrize('path', COCO_CONFIGS, ids=rel)
def test_coco_config_states_the_dino_recipe(path):
    cfg = Config.fromfile(path)
    arch, drop_path, ckpt, channels = VARIANTS[variant(path)]
    assert cfg.model.type == 'DINO'
    assert cfg.model.get('num_feature_levels', 4) == 4  # mmdet's default
    assert cfg.model.encoder.layer_cfg.self_attn_cfg.num_levels == 4
    assert cfg.model.decoder.layer_cfg.cross_attn_cfg.num_levels == 4
    bb = cfg.model.backbone
    # stride 8, 16, 32 as mmdet's 4-scale R-50 (out_indices (1, 2, 3))
    assert (bb.type, bb.arch, bb.out_indices, bb.window_size) == (
        'GCViT', arch, (1, 2, 3), 24)
    assert bb.pretrain_img_size == (512 if arch == 'large' else 224)
    assert bb.drop_path_rate == drop_path
    assert bb.with_cp == (arch == 'large')
    assert bb.init_cfg == dict(type='Pretrained', checkpoint=URL.format(ckpt))
    assert cfg.model.neck.in_channels == channels
    assert cfg.model.neck.num_outs == 4
    opt = cfg.optim_wrapper
    assert opt.type == 'AmpOptimWrapper'
    assert (opt.optimizer.type, opt.optimizer.lr,
            opt.optimizer.weight_decay) == ('AdamW', 1e-4, 1e-4)
    assert opt.clip_grad == dict(max_norm=0.1, norm_type=2)
    assert cfg.train_dataloader.batch_size == 2
    assert cfg.auto_scale_lr.base_batch_size == 16
    epochs, milestone = (36, 30) if '_36e_' in path else (12, 11)
    assert cfg.train_cfg.max_epochs == epochs
    (step, ) = cfg.param_scheduler
    assert (step.type, step.end, step.milestones) == ('MultiStepLR', epochs,
                                                      [milestone])


# the 36-epoch configs build the 12-epoch models
MODELS_TO_BUILD = [p for p in COCO_CONFIGS if '_36e_' not in p or 'l21k' in p
                   ] + [osp.join(REPO, 'configs/dino/gcvit_xxt_shapes.py')]


@pytest.mark.parametrize('path', MODELS_TO_BUILD, ids=rel)
def test_config_builds_a_4_scale_dino(path):
    cfg = Config.fromfile(path)
    cfg.model.backbone.init_cfg = None  # the weights are not reachable here
    model = build(cfg.model).eval()
    assert type(model.backbone).__name__ == 'GCViT'
    assert model.backbone.out_channels == list(cfg.model.neck.in_channels)
    with torch.no_grad():
        feats = model.extract_feat(torch.rand(1, 3, 64, 96))
    assert [tuple(f.shape) for f in feats] == [
        (1, 256, 8, 12), (1, 256, 4, 6), (1, 256, 2, 3), (1, 256, 1, 2)]


def _param_groups(path, arch=None):
    """{parameter name: (lr, weight decay)} as the optimizer receives them."""
    from mmengine.optim import build_optim_wrapper
    cfg = Config.fromfile(path)
    cfg.model.backbone.init_cfg = None
    if arch:
        cfg.model.backbone.arch = arch
    model = build(cfg.model)
    opt_cfg = cfg.optim_wrapper.copy()
    opt_cfg.type = 'OptimWrapper'  # AMP needs CUDA; the groups are the same
    with DefaultScope.overwrite_default_scope('mmdet'):
        wrapper = build_optim_wrapper(model, opt_cfg)
    name = {id(p): n for n, p in model.named_parameters()}
    norms = {id(p) for m in model.modules()
             if isinstance(m, (torch.nn.LayerNorm, torch.nn.GroupNorm))
             for p in m.parameters(recurse=False)}
    groups = {}
    for group in wrapper.optimizer.param_groups:
        for p in group['params']:
            kind = ('table' if name[id(p)].endswith('bias_table') else
                    'norm' if id(p) in norms else 'other')
            groups[name[id(p)]] = (kind, group['lr'], group['weight_decay'])
    assert len(groups) == len(name)
    return groups


def test_backbone_at_a_tenth_of_the_lr_without_decay_on_tables_and_norms():
    """mmengine gives a parameter only its longest matching custom key: the
    config must still decay nothing but weights, at lr x0.1 in the
    backbone."""
    groups = _param_groups(
        osp.join(REPO, 'configs/dino/gcvit_t_4scale_12e_coco.py'), 'xxtiny')
    seen = set()
    for name, (kind, lr, wd) in groups.items():
        in_backbone = name.startswith('backbone.')
        expected_lr = 1e-5 if in_backbone else 1e-4
        expected_wd = 1e-4 if kind == 'other' else 0.
        assert (lr, wd) == pytest.approx((expected_lr, expected_wd)), name
        seen.add((in_backbone, kind))
    # every case occurs: tables, norms and weights in the backbone; norms
    # (GroupNorm, LayerNorm) and weights outside it
    assert seen == {(True, 'table'), (True, 'norm'), (True, 'other'),
                    (False, 'norm'), (False, 'other')}
    tables = [n for n, g in groups.items() if g[0] == 'table']
    assert len(tables) == sum((2, 2, 6, 2))  # one per XXT block


def test_toy_config_trains_the_backbone_at_the_full_lr():
    groups = _param_groups(osp.join(REPO, 'configs/dino/gcvit_xxt_shapes.py'))
    for name, (kind, lr, wd) in groups.items():
        assert (lr, wd) == pytest.approx(
            (2e-4, 1e-4 if kind == 'other' else 0.)), name


def test_large_21k_config_loads_paper_weights_of_the_512_geometry(tmp_path):
    """gcvit_21k_large_512 was pretrained with windows (16, 16, 32, 16): its
    bias tables are resized to window 24 and its token generators (built
    for pretrain_img_size 512) take the weights as they are."""
    from gcvit_mm import GCViT
    src = randomize_(GCViT('large', pretrain_img_size=512))
    assert src.window_size == (16, 16, 32, 16)
    ckpt = tmp_path / 'gcvit_21k_large_512.pth.tar'
    torch.save(to_paper(src.state_dict()), ckpt)
    cfg = Config.fromfile(
        osp.join(REPO, 'configs/dino/gcvit_l21k_4scale_36e_coco.py'))
    cfg.model.backbone.init_cfg.checkpoint = str(ckpt)
    backbone = build(cfg.model.backbone)
    backbone.init_weights()
    assert backbone.pretrain_window_size == (16, 16, 32, 16)
    src_sd, sd = src.state_dict(), backbone.state_dict()
    resized = 0
    for key, value in sd.items():
        if re.match(r'^norm\d\.', key):
            continue  # output norms: not in ImageNet checkpoints
        if key.endswith('relative_position_bias_table'):
            heads = value.shape[1]
            assert value.shape == (47 * 47, heads), key
            assert src_sd[key].shape[0] in (31 * 31, 63 * 63), key
            resized += 1
        else:
            assert torch.equal(value, src_sd[key]), key
    assert resized == sum((3, 4, 19, 5))
    # pools 128 -> 16 and 64 -> 16; the stride-16 map, 32 = its pretrained
    # window, pools once as window 24 differs; stride 32 never pools
    assert [s.token_generator.num_pools for s in backbone.stages] == [
        3, 2, 1, 0]


def test_get_flops_counts_the_whole_dino(tiny_toy_data):
    """tools/get_flops.py runs DINO's transformer: its params are the
    model's, and its attention matmuls are the backbone's alone, the same
    as for the Mask R-CNN toy job, whose backbone is the same XXT."""
    from detection_utils import run_tool

    def flops(name):
        result = run_tool(['get_flops.py', osp.join(REPO, 'configs', name),
                           '--shape', 128, 160], tiny_toy_data)
        assert result.returncode == 0, result.stderr[-3000:]
        out = result.stdout
        return (float(re.search(r'Params: ([0-9.]+) M', out).group(1)),
                float(re.search(r'Attention matmuls.*?:\s+([0-9.]+) G',
                                out).group(1)), out)

    params, attention, out = flops('dino/gcvit_xxt_shapes.py')
    assert 'DETR-style: encoder, decoder and heads' in out
    cfg = Config.fromfile(osp.join(REPO, 'configs/dino/gcvit_xxt_shapes.py'))
    model = build(cfg.model)
    assert params == pytest.approx(
        sum(p.numel() for p in model.parameters()) / 1e6, abs=0.05)
    _, mask_rcnn_attention, _ = flops('mask_rcnn/gcvit_xxt_shapes.py')
    assert attention == mask_rcnn_attention > 0
